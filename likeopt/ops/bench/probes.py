"""Figures read from the mesh's own processes: cache counters, memory and CPU time.

The mesh is found from the one thing the bench is given, Envoy's port: the process
listening on it is Envoy, its parent is ``likeopt up``, and that launcher's children
are the mesh. So the figures always belong to the mesh under test, never to another
mesh on the same machine (shared development machines run several).

Processes are read through psutil rather than by parsing /proc by hand:

* Memory is the resident set size of every process, Envoy and Redis included: the same
  number ``process_resident_memory_bytes`` exports, read the same way for processes that
  have no metrics endpoint.
* CPU time is user plus system time, to show where the work went.
* A service's metrics port is read from that process's own environment (the hit rate,
  likeopt/caching/hit_rate.py, reads cache_svc's and retrieval_svc's counters there).

A process can end at any moment while it is being read; every reader then answers
"nothing" (None, empty) rather than raising.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from likeopt.runtime.addresses import host_port, reachable_host
from likeopt.runtime.config import Config, metrics_port


@dataclass(frozen=True)
class MeshProcess:
    """One process of the mesh, named as the report shows it."""

    name: str
    pid: int


def listening_pid(port: int) -> int | None:
    """The process holding a listening TCP socket on ``port`` (any address), if this machine has one."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            if connection.pid is not None:
                return connection.pid
    return None


def parent_pid(pid: int) -> int:
    return psutil.Process(pid).ppid()


def children(pid: int) -> list[int]:
    """The direct children of a process (none when it is gone)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def process_name(argv: list[str]) -> str:
    """``python -m cache_svc`` -> cache_svc; an envoy or valkey/redis-server binary -> envoy or redis."""
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return "launcher" if module == "likeopt.ops.cli" else module
    program = Path(argv[0]).name if argv else "?"
    if program.startswith(("valkey-server", "redis-server")):
        return "redis"
    script = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    if program.startswith("python") and script:
        program = Path(script).name  # a script run by its interpreter, as `python .venv/bin/likeopt up`
    return "launcher" if program == "likeopt" else program


def mesh_processes(envoy_port: int) -> list[MeshProcess]:
    """Every process of the mesh whose Envoy listens on ``envoy_port``, the launcher included."""
    envoy = listening_pid(envoy_port)
    if envoy is None:
        return []
    launcher = parent_pid(envoy)
    pids = [launcher, *sorted(children(launcher))]
    return [MeshProcess(process_name(_argv(pid)), pid) for pid in pids]


def rss_mb(pid: int) -> float | None:
    """Resident memory in MiB, or None when the process is gone."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time so far, or None when the process is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def own_cpu_seconds() -> float:
    """User and system CPU seconds of this process so far, all its threads."""
    times = os.times()
    return times.user + times.system


def environment(pid: int) -> dict[str, str]:
    """A process's environment as it started (empty when it cannot be read)."""
    try:
        return psutil.Process(pid).environ()
    except psutil.Error:
        return {}


def working_directory(pid: int) -> Path:
    """Where a process runs: its relative paths (a data directory) start there."""
    return Path(psutil.Process(pid).cwd())


def metrics_urls(processes: list[MeshProcess], service: str) -> list[str]:
    """The metrics URLs of a gRPC service's processes (replicas too), from the settings in their own environment."""
    urls = []
    setting = f"LIKEOPT_{service.removesuffix('_svc').upper()}_METRICS_PORT"
    default = str(metrics_port(service, Config.from_env({})))  # the port of a process that does not set it
    for process in processes:
        if process.name != service or not (env := environment(process.pid)):
            continue
        port = env.get(setting) or default
        host = env.get("LIKEOPT_HOST") or "127.0.0.1"
        if port != "0":
            urls.append(f"http://{host_port(reachable_host(host), port)}/metrics")
    return urls


def _argv(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []
