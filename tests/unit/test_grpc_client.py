"""The services' client channels: round robin over the replicas that are SERVING, and pings servers accept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from likeopt.runtime.grpc_client import HEALTH_SERVICE_NAME, KEEPALIVE_TIME_MS, open_channel
from likeopt.runtime.grpc_server import SERVER_OPTIONS
from likeopt.runtime.port_health import NOT_SERVING, SERVING, PortHealth


@asynccontextmanager
async def replica(name: str, status: int) -> AsyncIterator[tuple[PortHealth, str]]:
    """A server whose health says status for the whole server and SERVING for its own name alone."""
    health, server = PortHealth(), grpc.aio.server(options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health.set(HEALTH_SERVICE_NAME, status)
    await health.set(name, SERVING)
    try:
        yield health, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def answered_by_a(stub: health_pb2_grpc.HealthStub) -> bool:
    """Whether a call reached replica a (only a knows the name 'a'; b answers NOT_FOUND)."""
    try:
        await stub.Check(health_pb2.HealthCheckRequest(service="a"), timeout=5, wait_for_ready=True)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


async def test_calls_skip_a_replica_that_is_not_serving_until_it_serves_again() -> None:
    async with replica("a", SERVING) as (_, a), replica("b", NOT_SERVING) as (b_health, b):
        channel = open_channel(f"{a},{b}")
        stub = health_pb2_grpc.HealthStub(channel)
        assert [await answered_by_a(stub) for _ in range(12)] == [True] * 12
        await b_health.set(HEALTH_SERVICE_NAME, SERVING)
        deadline = time.monotonic() + 30
        while await answered_by_a(stub):
            assert time.monotonic() < deadline, "replica b never had calls again once SERVING"
            await asyncio.sleep(0.05)
        await channel.close()


def test_servers_accept_pings_as_often_as_clients_send_them() -> None:
    """A server that thought the clients' keepalive pings too frequent would end their connections (GOAWAY)."""
    server = dict(SERVER_OPTIONS)
    assert server["grpc.http2.min_ping_interval_without_data_ms"] < KEEPALIVE_TIME_MS
    assert server["grpc.keepalive_permit_without_calls"] == 1
