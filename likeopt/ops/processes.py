"""The process table of the mesh: which programs run, with which arguments and environment.

``likeopt up`` runs exactly this table, and docker-compose.yml mirrors it (a test
compares the two), so there is one definition of how each process starts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from likeopt.runtime.addresses import host_port
from likeopt.runtime.config import Config

CHILD_ENV = {
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    # grpc.aio does not survive fork handlers; libraries that spawn helper processes while
    # loading (ctypes, torch) must not trigger them in a serving process.
    "GRPC_ENABLE_FORK_SUPPORT": "false",
}
CHILD_ENV_DEFAULTS = {
    # gRPC's C core logs INFO lines ("Got goaway ... ping_timeout") as plain text into the JSON logs; errors still
    # show. An operator may set it higher to debug a connection.
    "GRPC_VERBOSITY": "ERROR",
}


@dataclass(frozen=True)
class ProcessSpec:
    """One child process and how to tell it is ready."""

    name: str
    argv: list[str]
    port: int
    probe: str
    """``grpc`` (health Check SERVING), ``redis`` (PING) or an http:// URL that must answer 200."""
    env: dict[str, str] = field(default_factory=dict)


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


REDIS_PERSISTENCE = ("--appendonly", "yes", "--save", "")
"""Every write is appended to a file (fsync each second) and read back at start, so conversations (kept in the
cache for LIKEOPT_SESSION_TTL_S) outlive a restart; no snapshots besides."""
REDIS_BOUNDS = ("--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru")
"""The cache's L2 stays within 256 MB, evicting the least recently used keys (every entry is a cache
entry, safe to lose); docker-compose and Kubernetes run Redis with the same arguments (a test checks)."""


def redis_process(binary: Path, port: int, host: str, work_dir: Path) -> ProcessSpec:
    """A private Redis-protocol server: loopback only, bounded memory, its append-only file in work_dir (under
    LIKEOPT_RUN_DIR, kept from one start to the next), as docker-compose and Kubernetes run Redis."""
    argv = [
        str(binary),
        "--port", str(port),
        "--bind", host,
        *REDIS_PERSISTENCE,
        "--dir", str(work_dir),
        "--protected-mode", "yes",
        *REDIS_BOUNDS,
    ]  # fmt: skip
    return ProcessSpec("redis", argv, port, "redis")


@dataclass(frozen=True)
class Replica:
    """An extra copy of a gRPC service on its own ports (the first copy uses the configured ones)."""

    port: int
    metrics_port: int


REPLICABLE = {"retrieval": "retrieval_svc", "generation": "generation_svc"}


def replica_specs(service: str, replicas: list[Replica], config: Config) -> list[ProcessSpec]:
    """Extra copies of retrieval_svc or generation_svc; embedded retrieval copies only read and follow the
    writer's store (with Milvus every copy reads and writes)."""
    prefix = f"LIKEOPT_{service.upper()}"
    specs = []
    for number, replica in enumerate(replicas, start=2):
        env = {f"{prefix}_PORT": str(replica.port), f"{prefix}_METRICS_PORT": str(replica.metrics_port)}
        if service == "retrieval" and config.retrieval_backend == "embedded":
            env["LIKEOPT_RETRIEVAL_READ_ONLY"] = "1"
        module = REPLICABLE[service]
        specs.append(ProcessSpec(f"{module}-{number}", python_module(module), replica.port, "grpc", env))
    return specs


def service_processes(
    config: Config, envoy_binary: Path, envoy_config: Path, replicas: dict[str, list[Replica]] | None = None
) -> list[ProcessSpec]:
    """The mesh's own processes in start order: each starts after those it calls."""
    extra = replicas or {}
    return [
        ProcessSpec("cache_svc", python_module("cache_svc"), config.cache_port, "grpc"),
        ProcessSpec("retrieval_svc", python_module("retrieval_svc"), config.retrieval_port, "grpc"),
        *replica_specs("retrieval", extra.get("retrieval", []), config),
        ProcessSpec("generation_svc", python_module("generation_svc"), config.generation_port, "grpc"),
        *replica_specs("generation", extra.get("generation", []), config),
        ProcessSpec(
            "gateway",
            python_module("gateway"),
            config.gateway_port,
            f"http://{host_port(config.host, config.gateway_port)}/healthz",
        ),
        ProcessSpec(
            "envoy",
            [
                str(envoy_binary),
                "-c", str(envoy_config),
                "--log-level", "warn",
                "--concurrency", str(config.envoy_workers),
                "--disable-hot-restart",
                "--file-flush-interval-msec", "1000",
                "--drain-time-s", "5",
            ],
            config.envoy_port,
            f"http://127.0.0.1:{config.envoy_admin_port}/ready",
        ),
    ]  # fmt: skip
