"""Health probes shared by ``likeopt up`` and container health checks.

``python -m likeopt.ops.healthcheck grpc HOST:PORT`` exits 0 when the gRPC health
service answers SERVING; ``… grpc-alive HOST:PORT`` when it answers at all, SERVING or
not; ``… http URL`` when the URL answers 200; ``… redis HOST:PORT`` when Redis answers
PING. docker-compose.yml and Kubernetes probes call this, so every deployment asks the
same question the launcher asks. Envoy's image has no Python: its checks are the bash
of :func:`envoy_ready_script`.
"""

from __future__ import annotations

import socket
import sys

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROBE_TIMEOUT_S = 1.0


def grpc_serving(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def grpc_alive(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the process answers gRPC health checking at all: a liveness probe's question. A service that is
    loading, draining or waiting for a server it needs answers NOT_SERVING and must not be restarted for it;
    one that does not answer is hung or gone."""
    try:
        with grpc.insecure_channel(address) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except grpc.RpcError:
        return False
    return True


def http_ok(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def redis_pong(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


PROBES = {"grpc": grpc_serving, "grpc-alive": grpc_alive, "http": http_ok, "redis": redis_pong}

ENVOY_READY_SCRIPT = r"""exec 3<>/dev/tcp/127.0.0.1/${LIKEOPT_ENVOY_ADMIN_PORT:-%(admin_port)d} &&
printf 'GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n' >&3 && grep -q %(states)s <&3
"""


def envoy_ready_script(admin_port: int, states: tuple[str, ...] = ("LIVE",)) -> str:
    """A bash check, for Envoy's image, that exits 0 when Envoy's admin port (LIKEOPT_ENVOY_ADMIN_PORT when the
    container has it, else admin_port) says /ready is one of states: ``LIVE`` once it serves, ``DRAINING`` after
    a pre-stop drain (alive still, which a liveness probe accepts). Envoy answers HTTP/1.0 with 426, so 1.1."""
    return ENVOY_READY_SCRIPT % {"admin_port": admin_port, "states": " ".join(f"-e {state}" for state in states)}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in PROBES:
        print("usage: python -m likeopt.ops.healthcheck {grpc|grpc-alive|redis} HOST:PORT | http URL", file=sys.stderr)
        return 2
    kind, target = argv
    healthy = PROBES[kind](target)
    if not healthy:
        print(f"{kind} {target}: not healthy", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
