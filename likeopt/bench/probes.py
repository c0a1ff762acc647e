"""Figures read from the mesh's own processes: cache counters, memory and CPU time.

The mesh is found from the one thing the bench is given, Envoy's port: the process
listening on it is Envoy, its parent is ``likeopt up``, and that launcher's children
are the mesh. So the figures always belong to the mesh under test, never to another
mesh on the same machine (shared development machines run several).

* Memory is ``VmRSS`` from ``/proc/<pid>/status`` for every process, Envoy and Redis
  included: the same number ``process_resident_memory_bytes`` exports, read the same
  way for processes that have no metrics endpoint.
* CPU time is ``utime + stime`` from ``/proc/<pid>/stat``, to show where the work went.
* A service's metrics port is read from that process's own environment (the hit rate,
  likeopt/bench/hit_rate.py, reads cache_svc's and retrieval_svc's counters there).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from likeopt.config import host_port, reachable_host

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_METRICS_PORTS = {"retrieval_svc": "9101", "cache_svc": "9103"}


@dataclass(frozen=True)
class MeshProcess:
    """One process of the mesh, named as the report shows it."""

    name: str
    pid: int


def listening_pid(port: int, proc: Path = PROC) -> int | None:
    """The process holding a listening TCP socket on ``port`` (any address), if this machine has one."""
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            rows = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for entry in proc.iterdir():
        if entry.name.isdigit() and inodes & _fd_links(entry):
            return int(entry.name)
    return None


def _fd_links(entry: Path) -> set[str]:
    """What the process's open file descriptors point at; each may close while being read."""
    links = set()
    try:
        descriptors = list((entry / "fd").iterdir())
    except OSError:
        return links
    for fd in descriptors:
        with contextlib.suppress(OSError):
            links.add(os.readlink(fd))
    return links


def parent_pid(pid: int, proc: Path = PROC) -> int:
    return int(_stat_fields(pid, proc)[1])


def children(pid: int, proc: Path = PROC) -> list[int]:
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name), proc)[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def process_name(argv: list[str]) -> str:
    """``python -m cache_svc`` -> cache_svc; an envoy or valkey/redis-server binary -> envoy or redis."""
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return "launcher" if module == "likeopt.cli" else module
    program = Path(argv[0]).name if argv else "?"
    if program.startswith(("valkey-server", "redis-server")):
        return "redis"
    return "launcher" if program == "likeopt" else program


def mesh_processes(envoy_port: int, proc: Path = PROC) -> list[MeshProcess]:
    """Every process of the mesh whose Envoy listens on ``envoy_port``, the launcher included."""
    envoy = listening_pid(envoy_port, proc)
    if envoy is None:
        return []
    launcher = parent_pid(envoy, proc)
    pids = [launcher, *sorted(children(launcher, proc))]
    return [MeshProcess(process_name(_argv(pid, proc)), pid) for pid in pids]


def rss_mb(pid: int, proc: Path = PROC) -> float | None:
    """Resident memory in MiB, or None when the process is gone."""
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User plus system CPU time so far, or None when the process is gone."""
    try:
        fields = _stat_fields(pid, proc)
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def environment(pid: int, proc: Path = PROC) -> dict[str, str]:
    """A process's environment as it started (empty when it cannot be read)."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def working_directory(pid: int, proc: Path = PROC) -> Path:
    """Where a process runs: its relative paths (a data directory) start there."""
    return Path(os.readlink(proc / str(pid) / "cwd"))


def metrics_urls(processes: list[MeshProcess], service: str, proc: Path = PROC) -> list[str]:
    """The metrics URLs of a gRPC service's processes (replicas too), from the settings in their own environment."""
    urls = []
    setting = f"LIKEOPT_{service.removesuffix('_svc').upper()}_METRICS_PORT"
    for process in processes:
        if process.name != service or not (env := environment(process.pid, proc)):
            continue
        port = env.get(setting) or DEFAULT_METRICS_PORTS[service]
        host = env.get("LIKEOPT_HOST") or "127.0.0.1"
        if port != "0":
            urls.append(f"http://{host_port(reachable_host(host), port)}/metrics")
    return urls


def _stat_fields(pid: int, proc: Path) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces): state is [0]."""
    return (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _argv(pid: int, proc: Path) -> list[str]:
    try:
        return [a for a in (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []
