"""Server reflection, listing the services of the port the client called.

Envoy's one port serves RetrievalService and GenerationService together and sends reflection (and health)
calls to generation_svc, marked with INGRESS_HEADER. There the list names every service that port serves, so
``grpcurl -plaintext localhost:8080 list`` (and Postman, Kreya) find both; on a service's own port the
list is its own. Descriptors come from the process's default pool, which holds every likeopt.v1 file.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from likeopt.v1 import generation_pb2, retrieval_pb2

INGRESS_HEADER = "x-likeopt-ingress"
"""Set by Envoy on the reflection and health calls it forwards (likeopt/ops/envoy/envoy.tmpl.yaml)."""

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
INGRESS_SERVICES = (
    retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name,
    generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name,
    HEALTH_SERVICE,
    reflection.SERVICE_NAME,
)
"""What Envoy's port serves over gRPC: its /likeopt.v1.* routes, health checking and reflection."""


def came_through_ingress(context: grpc.aio.ServicerContext) -> bool:
    return any(key == INGRESS_HEADER for key, _ in context.invocation_metadata() or ())


class PortReflection(reflection_pb2_grpc.ServerReflectionServicer):
    """Reflection answering as the port called: this service's own, or Envoy's (INGRESS_SERVICES)."""

    def __init__(self, own: Sequence[str], at_ingress: Sequence[str]) -> None:
        self._own = reflection.aio.ReflectionServicer(list(own))
        self._ingress = reflection.aio.ReflectionServicer(list(at_ingress)) if at_ingress else self._own

    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterable[reflection_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        answering = self._ingress if came_through_ingress(context) else self._own
        async for reply in answering.ServerReflectionInfo(request_iterator, context):
            yield reply


def add_reflection(server: grpc.aio.Server, own: Sequence[str], answers_for_ingress: bool) -> None:
    """Reflection for own services (reflection's own name added); answers_for_ingress: Envoy sends its here."""
    names = [*own, reflection.SERVICE_NAME]
    at_ingress = INGRESS_SERVICES if answers_for_ingress else ()
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(PortReflection(names, at_ingress), server)
