"""CacheService over gRPC: the two-layer cache, bad input answered as the contract says (likeopt.runtime.contract)."""

from __future__ import annotations

import grpc

from cache_svc.two_layer import CacheWrite, TwoLayerCache
from likeopt.runtime.contract import InvalidInput, rejects_invalid_input
from likeopt.v1 import cache_pb2, cache_pb2_grpc

REPLY_MARGIN_S = 0.05
"""Time kept back from a deletion's deadline for its reply to reach the caller in time."""

UNBOUNDED_CALL_RETRY_S = 1.0
"""How long a deletion whose caller set no deadline is retried while Redis does not answer."""


def _time_to_retry(context: grpc.aio.ServicerContext) -> float:
    """How long a deletion may keep asking Redis: the caller's deadline, less the time its reply needs."""
    remaining = context.time_remaining()
    return UNBOUNDED_CALL_RETRY_S if remaining is None else max(0.0, remaining - REPLY_MARGIN_S)


class CacheServicer(cache_pb2_grpc.CacheServiceServicer):
    """Thin translation between protobuf messages and TwoLayerCache."""

    def __init__(self, cache: TwoLayerCache) -> None:
        self.cache = cache

    @rejects_invalid_input
    async def Get(self, request: cache_pb2.GetRequest, context: grpc.aio.ServicerContext) -> cache_pb2.GetResponse:
        found = await self.cache.lookup(request.namespace, request.key)
        return cache_pb2.GetResponse(
            found=found.value is not None, value=found.value or b"", layer=found.layer, l2_unreached=found.l2_unreached
        )

    @rejects_invalid_input
    async def GetMany(
        self, request: cache_pb2.GetManyRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.GetManyResponse:
        values = await self.cache.get_many(request.namespace, list(request.keys))
        return cache_pb2.GetManyResponse(values=values)

    @rejects_invalid_input
    async def Set(self, request: cache_pb2.SetRequest, context: grpc.aio.ServicerContext) -> cache_pb2.SetResponse:
        if request.ttl_seconds < 0:
            raise InvalidInput("ttl_seconds must not be negative")
        stored = await self.cache.set(request.namespace, request.key, request.value, request.ttl_seconds)
        return cache_pb2.SetResponse(stored_l2=stored)

    @rejects_invalid_input
    async def SetMany(
        self, request: cache_pb2.SetManyRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.SetManyResponse:
        writes = [CacheWrite(e.namespace, e.key, e.value, e.ttl_seconds) for e in request.entries]
        stored = await self.cache.set_many(writes)
        return cache_pb2.SetManyResponse(stored_l2=stored)

    @rejects_invalid_input
    async def Delete(
        self, request: cache_pb2.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.DeleteResponse:
        deletion = await self.cache.delete(request.namespace, list(request.keys), _time_to_retry(context))
        return cache_pb2.DeleteResponse(deleted=deletion.existed, l2_unreached=deletion.l2_unreached)

    async def Stats(
        self, request: cache_pb2.StatsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.StatsResponse:
        stats = self.cache.stats()
        return cache_pb2.StatsResponse(
            hits=stats.hits,
            misses=stats.misses,
            hit_ratio=stats.hit_ratio,
            l1_entries=stats.l1_entries,
            l1_bytes=stats.l1_bytes,
            l1_evictions=stats.l1_evictions,
            l2_healthy=stats.l2_healthy,
            l2_configured=stats.l2_configured,
            namespaces=[
                cache_pb2.NamespaceStats(
                    namespace=name,
                    l1=cache_pb2.LayerStats(hits=counts.l1.hits, misses=counts.l1.misses),
                    l2=cache_pb2.LayerStats(hits=counts.l2.hits, misses=counts.l2.misses),
                )
                for name, counts in sorted(stats.namespaces.items())
            ],
        )
