"""The services' client channels: round robin over the replicas that are SERVING, and pings servers accept."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from likeopt.runtime.grpc_client import HEALTH_SERVICE_NAME, open_channel
from likeopt.runtime.grpc_server import SERVER_OPTIONS, server_interceptors
from likeopt.runtime.port_health import NOT_SERVING, SERVING, PortHealth


@asynccontextmanager
async def replica(name: str, status: int) -> AsyncIterator[tuple[PortHealth, str]]:
    """A server whose health says status for the whole server and SERVING for its own name alone, answering
    through the interceptors every service has."""
    health = PortHealth()
    server = grpc.aio.server(interceptors=server_interceptors(), options=SERVER_OPTIONS)
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


async def test_a_principal_of_many_groups_is_read_on_every_call() -> None:
    """Envoy passes a token's payload on as metadata; gRPC's own limits refused such metadata above 8 KiB at random
    and above 16 KiB always, so a user of many groups could not read (or only sometimes)."""
    async with replica("a", SERVING) as (_, a):
        channel = open_channel(a)
        stub = health_pb2_grpc.HealthStub(channel)
        for size in (12_000, 40_000):
            principal = (("x-likeopt-principal", "g" * size),)
            for _ in range(40):
                await stub.Check(health_pb2.HealthCheckRequest(service="a"), metadata=principal, timeout=5)
        await channel.close()


ROOT = Path(__file__).resolve().parents[2]
FROZEN_SERVER = """
import sys, time
from concurrent import futures
import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from likeopt.runtime.grpc_server import SERVER_OPTIONS
server = grpc.server(futures.ThreadPoolExecutor(2), options=SERVER_OPTIONS)
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
time.sleep(300)
"""


async def test_a_frozen_peers_connection_is_declared_dead() -> None:
    """A SIGSTOPped server keeps its connections open and answers nothing; only unanswered keepalive pings end
    them, and with them the calls waiting there (so the channel's other replicas get the calls)."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FROZEN_SERVER, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    try:
        assert server.stdout is not None
        channel = open_channel(f"127.0.0.1:{(await server.stdout.readline()).decode().strip()}")
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), wait_for_ready=True)
        assert (await anext(aiter(watch))).status == SERVING
        os.kill(server.pid, signal.SIGSTOP)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(anext(aiter(watch)), 60)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        await channel.close()
    finally:
        server.kill()
        await server.wait()
