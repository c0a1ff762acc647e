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
        if not (self._peers and came_through_ingress(context)):
            async for reply in super().Watch(request, context):  # type: ignore[attr-defined]
                yield reply
            return
        last = None
        while True:
            status = await self.port_status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            await asyncio.sleep(WATCH_POLL_S)

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
