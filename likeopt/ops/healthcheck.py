"""Health probes shared by ``likeopt up`` and container health checks.

``python -m likeopt.ops.healthcheck grpc HOST:PORT`` exits 0 when the gRPC health
service answers SERVING; ``… http URL`` when the URL answers 200; ``… redis HOST:PORT``
when Redis answers PING. docker-compose.yml and Kubernetes probes call this, so
every deployment asks the same question the launcher asks.
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


PROBES = {"grpc": grpc_serving, "http": http_ok, "redis": redis_pong}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in PROBES:
        print("usage: python -m likeopt.ops.healthcheck {grpc|redis} HOST:PORT | http URL", file=sys.stderr)
        return 2
    kind, target = argv
    healthy = PROBES[kind](target)
    if not healthy:
        print(f"{kind} {target}: not healthy", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
