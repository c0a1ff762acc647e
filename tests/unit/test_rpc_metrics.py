"""The status every gRPC call is counted under, however the call ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from prometheus_client import REGISTRY

from likeopt.runtime.metrics import MetricsInterceptor


def calls(method: str, code: str) -> float:
    return REGISTRY.get_sample_value("likeopt_rpc_calls_total", {"method": method, "code": code}) or 0.0


async def endless(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    """Replies with no await between them: a cancel lands while the server writes, not inside this generator."""
    while True:
        yield b"x" * 64


async def read_one_and_cancel(times: int) -> None:
    server = grpc.aio.server(interceptors=[MetricsInterceptor()])
    handler = grpc.unary_stream_rpc_method_handler(endless)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Metrics", {"Endless": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for _ in range(times):
                call = channel.unary_stream("/test.Metrics/Endless")(b"")
                await anext(aiter(call))
                call.cancel()
            for _ in range(200):  # the server learns of each cancel a moment later
                if calls("Endless", "CANCELLED") + calls("Endless", "UNKNOWN") >= times:
                    break
                await asyncio.sleep(0.01)
    finally:
        await server.stop(0)


def test_a_stream_the_client_cancels_mid_write_counts_as_cancelled_not_unknown() -> None:
    asyncio.run(read_one_and_cancel(5))
    assert calls("Endless", "CANCELLED") == 5
    assert calls("Endless", "UNKNOWN") == 0
