"""gRPC health checking that answers as the port called: a service's own, or Envoy's.

Envoy's one port serves RetrievalService and GenerationService and sends health calls to generation_svc,
marked as reflection calls are (likeopt.runtime.reflection). There a service another process serves is
asked of that process, and the empty name (the whole server) is SERVING only when every service of the
port is; so ``grpc-health-probe -addr=localhost:8080`` and a load balancer's gRPC check see the mesh. On a
service's own port the answers are its own, as grpc's servicer gives them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from likeopt.runtime.reflection import came_through_ingress

PEER_TIMEOUT_S = 2.0
"""How long a check through Envoy waits for the process serving the service asked about."""
WATCH_POLL_S = 5.0
"""How often a watch through Envoy asks again (the other process's changes are not pushed here)."""

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class PortHealth(HealthServicer):
    """grpc's health servicer; calls that came through Envoy are answered for Envoy's whole port, asking
    peers (service name → channel of the process serving it) about the services this process does not serve."""

    def __init__(self, peers: Mapping[str, grpc.aio.Channel] | None = None) -> None:
        super().__init__()
        self._peers = {name: health_pb2_grpc.HealthStub(channel) for name, channel in (peers or {}).items()}
        self._changed = asyncio.Condition()
        self._changes = 0
        """How many times a status has changed here: a watch waits only when none changed since it looked."""
        self._draining = False

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if not (self._peers and came_through_ingress(context)):
            return await super().Check(request, context)
        status = await self.port_status(request.service)
        if status == SERVICE_UNKNOWN:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no service {request.service!r} on this port")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(  # type: ignore[override]
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """Every change of the status asked about, until the client leaves or a graceful shutdown begins.

        Clients' channels watch each replica (client-side health checking); a watch that outlived the drain's
        start would hold the server's stop for its whole grace period, so it ends then, after NOT_SERVING. It
        yields rather than writes, as the server's interceptors wrap streaming methods (likeopt.runtime.interceptors).
        """
        through_envoy = bool(self._peers) and came_through_ingress(context)
        last = None
        while True:
            seen = self._changes
            if through_envoy:
                status = await self.port_status(request.service)
            else:
                status = self._server_status.get(request.service, SERVICE_UNKNOWN)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self._draining:
                return
            await self._next_change(seen, WATCH_POLL_S if through_envoy else None)

    async def _next_change(self, seen: int, timeout_s: float | None) -> None:
        """Wait for a change after the seen'th; a peer's changes are not pushed, so a watch through Envoy also
        wakes after timeout_s."""
        async with self._changed:
            if self._changes != seen:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), timeout_s)
            except TimeoutError:
                pass

    async def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        await super().set(service, status)
        await self._changed_now()

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        self._draining = True
        await self._changed_now()

    async def _changed_now(self) -> None:
        async with self._changed:
            self._changes += 1
            self._changed.notify_all()

    async def port_status(self, service: str) -> int:
        """The status of a service of Envoy's port; the empty name is the worst of them all."""
        if service in self._peers:
            return await self._ask_peer(service)
        if service:
            return self._server_status.get(service, SERVICE_UNKNOWN)
        statuses = [self._server_status.get("", NOT_SERVING)]
        statuses += await asyncio.gather(*(self._ask_peer(name) for name in self._peers))
        return SERVING if all(status == SERVING for status in statuses) else NOT_SERVING

    async def _ask_peer(self, service: str) -> int:
        """The peer's answer for service; a peer that cannot be reached is not serving it."""
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            reply = await self._peers[service].Check(request, timeout=PEER_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return NOT_SERVING
        return int(reply.status)
