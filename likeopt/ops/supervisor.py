"""The running children of ``likeopt up``: each started and waited for until healthy, within a deadline that holds
even if starting blocks (likeopt.ops.start_deadline); one that dies restarted, unless it keeps dying; all stopped in
reverse order, each let drain. Each runs in its own process group and gets SIGTERM if the launcher itself dies
(likeopt.ops.orphan_guard sets PR_SET_PDEATHSIG), so no orphan survives."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from likeopt.ops import envoy_drain
from likeopt.ops.child import Child
from likeopt.ops.healthcheck import grpc_serving, http_ok, redis_pong
from likeopt.ops.launch_error import LaunchError
from likeopt.ops.ports import port_in_use
from likeopt.ops.processes import ProcessSpec
from likeopt.ops.start_deadline import StartWatchdog
from likeopt.runtime.addresses import host_port
from likeopt.runtime.config import Config

START_TIMEOUT_S = 240.0
START_DEADLINE_S = START_TIMEOUT_S + 20.0
"""The hard limit on one child's start, spawning included; past it the watchdog stops the mesh."""
STOP_TIMEOUT_S = 25.0
KILL_WAIT_S = 5.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


class StopRequested(Exception):
    """A signal arrived while the mesh was still starting."""


def guarded(argv: list[str]) -> list[str]:
    """argv run through the orphan guard, so the child gets SIGTERM if the launcher dies.

    Not a preexec_fn: that forces a plain fork() of this process, whose gRPC threads (the health probes)
    can deadlock grpcio's fork handlers; without one, Popen spawns by vfork and runs no fork handlers.
    """
    return [sys.executable, "-m", "likeopt.ops.orphan_guard", str(os.getpid()), *argv]


def probe(spec: ProcessSpec, host: str) -> bool:
    """Whether the child answers as healthy right now."""
    if spec.probe == "grpc":
        return grpc_serving(host_port(host, spec.port))
    if spec.probe == "redis":
        return redis_pong(host_port(host, spec.port))
    return http_ok(spec.probe)


class Mesh:
    """The running children, started and stopped in order."""

    def __init__(self, config: Config, log_dir: Path, stop: threading.Event) -> None:
        self.config = config
        self.log_dir = log_dir
        self.stopping = stop
        self.children: list[Child] = []
        self.watchdog = StartWatchdog(self.kill_all)
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, spec: ProcessSpec, env: dict[str, str]) -> Child:
        """Start one child and wait until it is healthy, or raise LaunchError."""
        with self.watchdog.deadline(spec.name, START_DEADLINE_S):
            child = self._spawn(spec, env)
            self.children.append(child)
            self._wait_healthy(child)
        return child

    def restart(self, dead: Child) -> None:
        """Replace a child that died, as a supervisor should; a crash loop stops the mesh instead."""
        now = time.monotonic()
        recent = [t for t in dead.restarts if now - t < RESTART_WINDOW_S]
        if len(recent) >= MAX_RESTARTS:
            raise LaunchError(
                f"{dead.spec.name}: exited {len(recent) + 1} times within {RESTART_WINDOW_S:.0f} s "
                f"(last code {dead.process.returncode}); its log ends with:\n{dead.tail()}"
            )
        print(
            f"likeopt: {dead.spec.name} exited with code {dead.process.returncode}; restarting it",
            file=sys.stderr,
            flush=True,
        )
        dead.log_file.close()
        with self.watchdog.deadline(dead.spec.name, START_DEADLINE_S):
            child = self._spawn(dead.spec, dead.env)
            child.restarts = [*recent, now]
            self.children[self.children.index(dead)] = child
            self._wait_healthy(child)

    def _bind_host(self, spec: ProcessSpec) -> str:
        """Where a child listens: Redis on IPv4 loopback only, every other process on LIKEOPT_HOST."""
        return "127.0.0.1" if spec.name == "redis" else self.config.host

    def _spawn(self, spec: ProcessSpec, env: dict[str, str]) -> Child:
        self.watchdog.step("spawning")
        bind_host = self._bind_host(spec)
        try:
            busy = port_in_use(bind_host, spec.port)
        except LaunchError as exc:
            raise LaunchError(f"{spec.name}: {exc}") from None
        if busy:
            raise LaunchError(f"{spec.name}: port {spec.port} on {bind_host} is already in use")
        if shutil.which(spec.argv[0]) is None:
            raise LaunchError(f"{spec.name}: cannot run {spec.argv[0]}: no such executable")
        log_path = self.log_dir / f"{spec.name}.log"
        log_file = log_path.open("ab")
        log_start = log_file.tell()
        try:
            process = subprocess.Popen(
                guarded(spec.argv),
                env={**env, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log_file.close()
            raise LaunchError(f"{spec.name}: cannot run {spec.argv[0]}: {exc.strerror}") from exc
        return Child(spec, process, log_path, log_file, env, log_start)

    def _wait_healthy(self, child: Child) -> None:
        self.watchdog.step("waiting for its health check")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise StopRequested
            code = child.process.poll()
            if code is not None:
                raise LaunchError(
                    f"{child.spec.name}: exited with code {code} while starting; its log "
                    f"({child.log_path}) ends with:\n{child.tail()}"
                )
            if probe(child.spec, self._bind_host(child.spec)):
                child.ready = True
                return
            time.sleep(0.2)
        raise LaunchError(
            f"{child.spec.name}: not healthy after {START_TIMEOUT_S:.0f} s; log ends with:\n{child.tail()}"
        )

    def kill_all(self) -> None:
        """The watchdog's stop: SIGTERM every child's group, SIGKILL what is left after a short wait."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for child in self.children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, sig)
            deadline = time.monotonic() + KILL_WAIT_S
            while time.monotonic() < deadline and any(c.process.poll() is None for c in self.children):
                time.sleep(0.05)

    def _drain_envoy(self) -> None:
        admin = host_port("127.0.0.1", self.config.envoy_admin_port)
        if left := envoy_drain.drain(admin, envoy_drain.WAIT_S, traced=bool(self.config.otlp_endpoint)):
            print(f"likeopt: envoy still had {left} requests in flight after {envoy_drain.WAIT_S} s", file=sys.stderr)

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def log_rotated(self, path: Path) -> None:
        """The lines of the child writing to path moved to path.1: this run's lines in path begin at its start."""
        for child in self.children:
            if child.log_path == path:
                child.log_start = 0

    def stop(self) -> list[tuple[str, int]]:
        """SIGTERM each child in reverse start order, then SIGKILL stragglers' groups; Envoy first stops
        accepting and serves what it has in flight (envoy_drain), since SIGTERM would cut it.

        Returns the children that did not exit 0 (a clean stop drains and exits 0).
        """
        unclean = []
        for child in reversed(self.children):
            if child.process.poll() is None:
                if child.spec.name == "envoy" and child.ready:
                    self._drain_envoy()
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    print(f"likeopt: {child.spec.name} did not stop in time; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            code = child.process.wait()
            child.log_file.close()
            if code != 0 and child.ready:
                unclean.append((child.spec.name, code))
        return unclean
