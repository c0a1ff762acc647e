"""What a client reads of an upstream failure: a service's own words, but never gRPC's channel internals."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway import errors
from gateway.errors import ApiError, name_upstreams, public_details
from gateway.mcp_server import tool_failure
from likeopt.runtime.grpc_client import HEALTH_SERVICE_NAME, open_channel
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc

UNHEALTHY = "connections to all backends failing; last error: {}: backend unhealthy"
"""What the channel says when the replica it tried last answers health checks NOT_SERVING."""
SERVER_STOPPED = "an upstream service stopped before it answered"
NOT_SERVING = "retrieval_svc is not serving now (it is starting or stopping, or its own backend, such as Milvus,"

REFUSED = (
    "connections to all backends failing; last error: UNKNOWN: {}: Failed to connect to remote host: Connection refused"
)


def failure(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.fixture(autouse=True)
def upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "UPSTREAMS", {})
    name_upstreams("retrieval_svc", ["127.0.0.1:19103", "127.0.0.1:19113"])
    name_upstreams("generation_svc", ["generation_svc:50052"])
    name_upstreams("cache_svc", ["[::1]:50053"])


@pytest.mark.parametrize(
    ("details", "message"),
    [
        (REFUSED.format("ipv4:127.0.0.1:19103"), "retrieval_svc cannot be reached now; try again shortly"),
        (REFUSED.format("ipv4:127.0.0.1:19113"), "retrieval_svc cannot be reached now; try again shortly"),
        (REFUSED.format("ipv4:172.18.0.4:50052"), "generation_svc cannot be reached now; try again shortly"),
        (REFUSED.format("ipv6:%5B::1%5D:50053"), "cache_svc cannot be reached now; try again shortly"),
        (
            "retrieval failed: " + REFUSED.format("ipv4:127.0.0.1:19103"),
            "retrieval_svc cannot be reached now; try again shortly",
        ),
        ("errors resolving generation_svc:50052: [field:hostname lookup error]", "generation_svc cannot be reached"),
        (REFUSED.format("ipv4:127.0.0.1:9"), "an upstream service cannot be reached now; try again shortly"),
        ("Socket closed", "an upstream service cannot be reached now; try again shortly"),
        ("recvmsg:Connection reset by peer", "an upstream service cannot be reached now; try again shortly"),
        ("Stream removed (ping timeout)", "an upstream service cannot be reached now; try again shortly"),
        (UNHEALTHY.format("ipv4:127.0.0.1:19103"), NOT_SERVING),
        ("retrieval failed: " + UNHEALTHY.format("ipv4:127.0.0.1:19113"), NOT_SERVING),
    ],
)
def test_a_channel_that_could_not_reach_a_service_names_it_and_logs_the_details(
    caplog: pytest.LogCaptureFixture, details: str, message: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.errors"):
        error = ApiError.from_grpc(failure(grpc.StatusCode.UNAVAILABLE, details))
    assert (error.status, error.code) == (503, "UNAVAILABLE")
    assert error.message.startswith(message) and "ipv4" not in error.message and "backends" not in error.message
    assert [getattr(r, "fields", {}).get("details") for r in caplog.records] == [details]


@pytest.mark.parametrize(
    "details",
    [
        "the index is still loading",
        "conversations cannot be reached now; try again",
        "retrieval failed: the index is still loading",
        "model server unreachable: ConnectError('[Errno 111] Connection refused')",
    ],
)
def test_an_unavailable_a_service_sent_keeps_its_words(details: str) -> None:
    assert public_details(failure(grpc.StatusCode.UNAVAILABLE, details)) == details


async def test_a_replica_that_answers_not_serving_is_said_to_be_not_serving_rather_than_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retrieval_svc whose Milvus is down is up but NOT_SERVING: the gateway's health-checked channel drops it
    as it would an unreachable one, yet what it was told tells the two apart."""
    checks = health.aio.HealthServicer()
    await checks.set(HEALTH_SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    monkeypatch.setattr(errors, "UPSTREAMS", {})
    name_upstreams("retrieval_svc", [address])
    channel = open_channel(address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await retrieval_pb2_grpc.RetrievalServiceStub(channel).Search(
                retrieval_pb2.SearchRequest(query="x"), timeout=30
            )
    finally:
        await channel.close()
        await server.stop(0)
    error = ApiError.from_grpc(failed.value)
    assert (error.status, error.code) == (503, "UNAVAILABLE")
    assert error.message.startswith(NOT_SERVING) and "unhealthy" not in error.message


def test_an_mcp_tool_says_what_rest_says_of_a_service_out_of_reach() -> None:
    unhealthy = failure(grpc.StatusCode.UNAVAILABLE, UNHEALTHY.format("ipv4:127.0.0.1:19103"))
    said = str(tool_failure(unhealthy))
    assert said.startswith("UNAVAILABLE: " + NOT_SERVING) and "127.0.0.1" not in said
    crashed = str(tool_failure(failure(grpc.StatusCode.INTERNAL, "Traceback: KeyError 'x'")))
    assert "KeyError" not in crashed and "logs" in crashed
    assert str(tool_failure(failure(grpc.StatusCode.NOT_FOUND, "no document 'a'"))) == "NOT_FOUND: no document 'a'"


class Waiting(health.aio.HealthServicer):
    """A health check that is never answered: the call is still running when the server stops."""

    def __init__(self) -> None:
        super().__init__()
        self.called = asyncio.Event()

    async def Check(self, request: object, context: object) -> health_pb2.HealthCheckResponse:  # type: ignore[override]
        self.called.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")


async def test_a_call_cut_off_by_its_servers_stop_is_said_to_be_so_not_in_grpcs_words() -> None:
    """A call still running when its server's grace ends (an upload whose batch outlasts a rolling restart) is
    ended by gRPC with UNAVAILABLE "Cancelling all calls": its client must read that the service stopped and the
    request may or may not have taken effect, not gRPC's words."""
    waiting = Waiting()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(waiting, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    channel = open_channel(address)
    try:
        call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        await asyncio.wait_for(waiting.called.wait(), 30)
        await server.stop(0)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call
    finally:
        await channel.close()
    error = ApiError.from_grpc(failed.value)
    assert (error.status, error.code) == (503, "UNAVAILABLE")
    assert error.message.startswith(SERVER_STOPPED) and "Cancelling" not in error.message, error.message
