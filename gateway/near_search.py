"""Search replies the gateway has already rendered, served again while the index is unchanged.

A repeated search is most of the traffic (the seed's 80 % hit rate). Answering it here
skips two gRPC hops (gateway → retrieval_svc → cache_svc) and the protobuf-to-JSON work:
about 2 of the 3.1 CPU-ms a cached search cost across the mesh (benchmarks/README.md).

Freshness comes from retrieval_svc's WatchIndex stream, not from a time to live: an
entry is served only while its index version is the last one streamed, so a write
(upload, delete) retires every older reply as soon as the stream says so, within
milliseconds. Writes made through this gateway retire them before the write's reply
is even sent, so a client that deletes and then searches never sees the deleted
document; one that wrote another way (gRPC) and names the version its write returned
(min_index_version) is not answered from here until the stream has told of it. While
the stream is down nothing is served from here at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Protocol

import grpc

from gateway.fast_json import search_head
from likeopt.caching.near_cache import VersionedLRU
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)

RECONNECT_S = (0.2, 5.0)
"""First and longest wait before watching again after the stream broke."""


class VersionFollower(Protocol):
    """Who is told of the versions the stream brings (Upstreams: the version searches ask replicas for)."""

    def stream_opened(self) -> None:
        """A new stream is being opened: its first version is the writer's as of now."""

    def heard_of(self, version: int, first: bool) -> None:
        """The stream brought version (first: the first of a stream opened since stream_opened)."""


class NearSearchReplies:
    """Rendered search replies by request, valid for the index version retrieval_svc streams."""

    def __init__(
        self,
        retrieval: retrieval_pb2_grpc.RetrievalServiceStub,
        replies: VersionedLRU[bytes],
        follower: VersionFollower,
    ) -> None:
        self._retrieval = retrieval
        self._replies = replies
        self._follower = follower
        """Told each version this follows, so searches ask replicas for it."""
        self.current: int | None = None
        """The index version retrieval_svc streamed last; None while not watching."""

    def lookup(self, key: Hashable, at_least: int = 0) -> bytes | None:
        """The reply's head (gateway/fast_json.py), when still current and of version at_least or later: a client
        may name a version it was given by a write the stream has not told of yet."""
        return self._replies.get(key, self.current if (self.current or 0) >= at_least else None)

    def remember(self, key: Hashable, index_version: int, hits: bytes) -> None:
        """Keep a search's reply, its hits already rendered (hits_json), for the repeats."""
        head = search_head(hits, index_version, cached=True)
        self._replies.put(key, index_version, head, len(head))

    def saw_write(self, version: int) -> None:
        """A write through this gateway produced version: replies of older ones are stale from now."""
        if self.current is not None and version > self.current:
            self._advance(version)

    async def watch(self) -> None:
        """Follow retrieval_svc's index version for as long as the gateway runs (a task)."""
        delay = RECONNECT_S[0]
        while True:
            first = True
            self._follower.stream_opened()
            try:
                async for step in self._retrieval.WatchIndex(retrieval_pb2.WatchIndexRequest()):
                    if first:  # a new stream is the truth, even if lower (a store started afresh or restored)
                        self._replies.clear(step.index_version)
                        self.current, first, delay = step.index_version, False, RECONNECT_S[0]
                        self._follower.heard_of(step.index_version, first=True)
                    elif step.index_version > (self.current or 0):
                        self._advance(step.index_version)
            except grpc.aio.AioRpcError as exc:
                if self.current is not None:
                    log.info("index watch lost; searches go upstream", extra={"fields": {"code": exc.code().name}})
            self.current = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_S[1])

    def _advance(self, version: int) -> None:
        self.current = version
        self._replies.clear(version)
        self._follower.heard_of(version, first=False)
