"""The probes deployments run: readiness asks whether a service serves, liveness only whether it answers."""

from __future__ import annotations

import subprocess
import sys

from grpc_health.v1 import health_pb2

from likeopt.ops.healthcheck import grpc_alive, grpc_serving
from likeopt.ops.protos import ROOT
from tests.health_servers import frozen_server, health_server


def probe(kind: str, address: str) -> int:
    """The probe as Kubernetes runs it."""
    command = [sys.executable, "-m", "likeopt.ops.healthcheck", kind, address]
    return subprocess.run(command, cwd=ROOT, capture_output=True, timeout=60).returncode


def test_a_service_not_serving_is_alive_but_not_ready() -> None:
    """As a service is while it loads, drains or waits for Milvus: restarting it would mend nothing."""
    with health_server(health_pb2.HealthCheckResponse.NOT_SERVING) as address:
        assert grpc_alive(address) and not grpc_serving(address)
        assert probe("grpc-alive", address) == 0
        assert probe("grpc", address) == 1


def test_a_process_that_does_not_answer_is_not_alive() -> None:
    """A hung process: its port accepts connections (the kernel does that) but nothing answers on them."""
    with frozen_server() as address:
        assert not grpc_alive(address)
        assert probe("grpc-alive", address) == 1
