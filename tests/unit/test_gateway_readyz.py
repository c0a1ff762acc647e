"""/api/v1/readyz asks every replica of each upstream by its own address, so its answer does not depend on which
replica a balanced call would have reached."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2
from starlette.testclient import TestClient

from gateway.app import build_app
from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2
from tests.health_servers import frozen_server, health_server, retrieval_not_serving

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def readiness(
    good: str, generation: str, polls: int = 6, retrieval: str | None = None
) -> list[tuple[int, dict[str, object]]]:
    """readyz polled several times: generation_svc at the replica list generation, retrieval_svc at retrieval, the
    other upstreams (and retrieval_svc unless given) good."""
    config = Config.from_env(
        {
            "LIKEOPT_API_KEY": "unit-test-key",
            "LIKEOPT_RETRIEVAL_ADDR": retrieval or good,
            "LIKEOPT_GENERATION_ADDR": generation,
            "LIKEOPT_CACHE_ADDR": good,
        }
    )
    with TestClient(build_app(config)) as client:
        replies = [client.get("/api/v1/readyz") for _ in range(polls)]
    return [(reply.status_code, reply.json()) for reply in replies]


def test_a_replica_not_serving_is_named_and_every_poll_says_the_same() -> None:
    with health_server(SERVING) as good, health_server(NOT_SERVING) as bad:
        replies = readiness(good, f"{good},{bad}")
    assert all(reply == replies[0] for reply in replies), replies
    status, body = replies[0]
    assert status == 200 and body["ready"] is True
    assert body["upstreams"]["generation_svc"] == "SERVING"
    assert body["replicas"]["generation_svc"] == {good: "SERVING", bad: "NOT_SERVING"}
    assert body["detail"] == [f"generation_svc: 1 of 2 replicas serving; {bad} NOT_SERVING"]


def test_a_frozen_replica_is_named_by_its_failed_check() -> None:
    with health_server(SERVING) as good, frozen_server() as frozen:
        replies = readiness(good, f"{good},{frozen}", polls=3)
    assert [status for status, _ in replies] == [200] * 3
    assert {tuple(body["detail"]) for _, body in replies} == {
        (f"generation_svc: 1 of 2 replicas serving; {frozen} DEADLINE_EXCEEDED",)
    }


def test_an_upstream_with_no_replica_serving_is_not_ready() -> None:
    with health_server(SERVING) as good, health_server(NOT_SERVING) as bad:
        [(status, body)] = readiness(good, bad, polls=1)
    assert status == 503 and body["ready"] is False
    assert body["upstreams"]["generation_svc"] == "NOT_SERVING"
    assert body["detail"] == [f"generation_svc: 0 of 1 replicas serving; {bad} NOT_SERVING"]


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (retrieval_pb2.IndexStatus(ready=False), " (loading the index)"),
        (
            retrieval_pb2.IndexStatus(ready=False, waiting_for="Milvus at http://10.0.0.9:19530: refused"),
            " (waiting for its retrieval backend)",
        ),
        (grpc.StatusCode.UNAVAILABLE, " (its retrieval backend is unavailable)"),
        (retrieval_pb2.IndexStatus(ready=True), ""),
        (grpc.StatusCode.UNIMPLEMENTED, ""),
    ],
)
def test_a_retrieval_replica_not_serving_says_why_without_its_backends_address(
    status: retrieval_pb2.IndexStatus | grpc.StatusCode, said: str
) -> None:
    """An operator reading readyz learned only NOT_SERVING; the reason is in words, since readyz is public and
    the backend's error names its address."""
    with health_server(SERVING) as good, retrieval_not_serving(status) as waiting:
        [(code, body)] = readiness(good, good, polls=1, retrieval=waiting)
    assert code == 503 and f"retrieval_svc: 0 of 1 replicas serving; {waiting} NOT_SERVING{said}" in body["detail"]
    assert "10.0.0.9" not in str(body)
