"""The gateway's long-lived channels to the services it translates for."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.errors import name_upstreams
from likeopt.runtime.config import Config, address_list
from likeopt.runtime.grpc_client import open_channel
from likeopt.v1 import cache_pb2_grpc, generation_pb2_grpc, retrieval_pb2_grpc

HEALTH_TIMEOUT_S = 1.0


@dataclass
class Upstreams:
    """One channel per upstream, opened at start-up and reused by every request."""

    channels: dict[str, grpc.aio.Channel]
    retrieval: retrieval_pb2_grpc.RetrievalServiceStub
    """Searches, balanced over every retrieval_svc replica."""
    retrieval_writer: retrieval_pb2_grpc.RetrievalServiceStub
    """Writes and index status: the first replica, the only one that accepts writes."""
    generation: generation_pb2_grpc.GenerationServiceStub
    cache: cache_pb2_grpc.CacheServiceStub
    written: int = 0
    """The highest index version a write through this gateway produced. Every search and answer asks for at
    least it (min_index_version), so a read-only retrieval replica that has not followed the writer yet catches
    up before answering: what a caller uploaded or deleted is what its next search and chat see."""

    def wrote(self, version: int) -> None:
        """A write (upsert, delete) through this gateway was acknowledged at version."""
        self.written = max(self.written, version)

    @classmethod
    def connect(cls, config: Config) -> Upstreams:
        retrieval = address_list(config.retrieval_addr)
        name_upstreams("retrieval_svc", retrieval)
        name_upstreams("generation_svc", address_list(config.generation_addr))
        name_upstreams("cache_svc", address_list(config.cache_addr))
        channels = {
            "retrieval_svc": open_channel(config.retrieval_addr),
            "retrieval_writer": open_channel(retrieval[0]),
            "generation_svc": open_channel(config.generation_addr),
            "cache_svc": open_channel(config.cache_addr),
        }
        return cls(
            channels=channels,
            retrieval=retrieval_pb2_grpc.RetrievalServiceStub(channels["retrieval_svc"]),
            retrieval_writer=retrieval_pb2_grpc.RetrievalServiceStub(channels["retrieval_writer"]),
            generation=generation_pb2_grpc.GenerationServiceStub(channels["generation_svc"]),
            cache=cache_pb2_grpc.CacheServiceStub(channels["cache_svc"]),
        )

    async def health(self) -> dict[str, str]:
        """Each upstream's health status name (SERVING, NOT_SERVING, UNAVAILABLE…)."""

        async def check(channel: grpc.aio.Channel) -> str:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        names = list(self.channels)
        statuses = await asyncio.gather(*(check(self.channels[n]) for n in names))
        return dict(zip(names, statuses, strict=True))

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
