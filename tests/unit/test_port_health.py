"""Health checks answered for Envoy's whole port: a peer process asked about its service, "" the worst of all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from likeopt.runtime import port_health
from likeopt.runtime.grpc_server import server_interceptors
from likeopt.runtime.port_health import NOT_SERVING, SERVING, PortHealth
from likeopt.runtime.reflection import INGRESS_HEADER

RETRIEVAL = "likeopt.v1.RetrievalService"
GENERATION = "likeopt.v1.GenerationService"
THROUGH_ENVOY = ((INGRESS_HEADER, "1"),)


@dataclass
class Ports:
    peer: HealthServicer
    peer_server: grpc.aio.Server
    health: health_pb2_grpc.HealthStub
    own: PortHealth | None = None

    async def check(self, service: str, through_envoy: bool = True) -> int:
        metadata = THROUGH_ENVOY if through_envoy else ()
        reply = await self.health.Check(health_pb2.HealthCheckRequest(service=service), metadata=metadata, timeout=5)
        return int(reply.status)


@asynccontextmanager
async def two_processes() -> AsyncIterator[Ports]:
    """retrieval_svc's health (the peer) and generation_svc's, which Envoy's health calls reach."""
    peer, peer_server = HealthServicer(), grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(peer, peer_server)
    peer_port = peer_server.add_insecure_port("127.0.0.1:0")
    await peer_server.start()
    await peer.set(RETRIEVAL, SERVING)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{peer_port}") as to_peer:
        own, server = PortHealth({RETRIEVAL: to_peer}), grpc.aio.server(interceptors=server_interceptors())
        health_pb2_grpc.add_HealthServicer_to_server(own, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await own.set(GENERATION, SERVING)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Ports(peer, peer_server, health_pb2_grpc.HealthStub(channel), own)
        await server.stop(0)
    await peer_server.stop(0)


async def test_through_envoy_each_service_is_answered_by_the_process_serving_it() -> None:
    async with two_processes() as ports:
        assert [await ports.check(name) for name in ("", RETRIEVAL, GENERATION)] == [SERVING] * 3
        await ports.peer.set(RETRIEVAL, NOT_SERVING)
        assert [await ports.check(name) for name in ("", RETRIEVAL, GENERATION)] == [NOT_SERVING, NOT_SERVING, SERVING]


async def test_on_its_own_port_a_service_answers_only_for_itself() -> None:
    async with two_processes() as ports:
        assert await ports.check(GENERATION, through_envoy=False) == SERVING
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await ports.check(RETRIEVAL, through_envoy=False)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_unknown_service_is_not_found_and_an_unreachable_peer_is_not_serving() -> None:
    async with two_processes() as ports:
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await ports.check("likeopt.v1.Nothing")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        await ports.peer_server.stop(0)
        assert await ports.check(RETRIEVAL) == NOT_SERVING and await ports.check("") == NOT_SERVING


@pytest.mark.parametrize(
    ("service", "metadata", "changed"),
    [
        ("", THROUGH_ENVOY, "peer"),  # through Envoy, the port's status follows the peer's
        (GENERATION, (), "own"),  # on its own port, as the clients' channels watch each replica
    ],
)
async def test_a_watch_sees_the_status_change(
    monkeypatch: pytest.MonkeyPatch, service: str, metadata: tuple[tuple[str, str], ...], changed: str
) -> None:
    monkeypatch.setattr(port_health, "WATCH_POLL_S", 0.05)
    async with two_processes() as ports:
        call = ports.health.Watch(health_pb2.HealthCheckRequest(service=service), metadata=metadata, timeout=5)
        replies = aiter(call)
        assert (await anext(replies)).status == SERVING
        assert ports.own is not None
        await (ports.peer.set(RETRIEVAL, NOT_SERVING) if changed == "peer" else ports.own.set(GENERATION, NOT_SERVING))
        assert (await asyncio.wait_for(anext(replies), 5)).status == NOT_SERVING
        call.cancel()


async def test_a_graceful_shutdown_ends_every_watch_after_saying_not_serving() -> None:
    """A watch left open would hold the server's drain for its whole grace period."""
    async with two_processes() as ports:
        call = ports.health.Watch(health_pb2.HealthCheckRequest(service=GENERATION), timeout=5)
        assert (await anext(aiter(call))).status == SERVING
        assert ports.own is not None
        await ports.own.enter_graceful_shutdown()
        statuses = [reply.status async for reply in call]
        assert statuses and set(statuses) == {NOT_SERVING}
        assert await call.code() == grpc.StatusCode.OK
