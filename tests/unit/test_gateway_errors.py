"""What a client reads of an upstream failure: a service's own words, but never gRPC's channel internals."""

from __future__ import annotations

import logging

import grpc
import pytest

from gateway import errors
from gateway.errors import ApiError, name_upstreams, public_details

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
