"""Client of cache_svc that can never make a request slower or fail it.

Every call has a tight deadline; any error counts as a miss. Writes are sent in the
background so the caller never waits for them; with a write window they are also sent
together (likeopt/caching/write_batches.py).
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from opentelemetry import trace

from likeopt.caching.write_batches import WriteBatches
from likeopt.runtime.grpc_client import open_channel
from likeopt.runtime.telemetry import CACHE_ERROR, CACHE_HIT, CACHE_LAYER, CACHE_NAMESPACE
from likeopt.v1 import cache_pb2, cache_pb2_grpc

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class CacheUnreachable(Exception):
    """cache_svc did not answer a lookup (an error or its deadline): not a miss."""


class CacheClient:
    """Best-effort access to cache_svc; disabled clients always miss."""

    def __init__(self, address: str, timeout_s: float, enabled: bool = True, write_window_s: float = 0.0) -> None:
        """``write_window_s`` > 0 batches writes: for a caller whose own near cache answers a repeat while its
        write waits (retrieval_svc); 0 sends each at once (a repeated question, a conversation's next turn)."""
        self.enabled = enabled and bool(address)
        self.timeout_s = timeout_s
        self._channel = open_channel(address) if self.enabled else None
        self._stub = cache_pb2_grpc.CacheServiceStub(self._channel) if self._channel else None
        self._pending: set[asyncio.Task[None]] = set()
        self._batches = WriteBatches(self._set_many, write_window_s) if write_window_s > 0 else None

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The cached value, or None on a miss, an error or a deadline."""
        try:
            return await self.lookup(namespace, key)
        except CacheUnreachable:
            return None

    async def lookup(self, namespace: str, key: str) -> bytes | None:
        """The cached value, None on a miss, or CacheUnreachable on an error or a deadline, or a miss cache_svc's
        Redis could not confirm: for a value whose absence the caller would act on (a conversation started afresh
        would be saved over the stored one)."""
        if self._stub is None:
            return None
        with tracer.start_as_current_span(
            "cache get", attributes={CACHE_LAYER: "service", CACHE_NAMESPACE: namespace}
        ) as span:
            try:
                reply = await self._stub.Get(cache_pb2.GetRequest(namespace=namespace, key=key), timeout=self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                log.debug("cache get failed", extra={"fields": {"code": exc.code().name}})
                span.set_attributes({CACHE_HIT: False, CACHE_ERROR: exc.code().name})
                raise CacheUnreachable(exc.code().name) from None
            span.set_attribute(CACHE_HIT, reply.found)
            if not reply.found and reply.l2_unreached:  # cache_svc is up, its Redis is not: not a miss
                span.set_attribute(CACHE_ERROR, "L2_UNREACHED")
                raise CacheUnreachable("L2_UNREACHED")
            return reply.value if reply.found else None

    def set_later(self, namespace: str, key: str, value: bytes, ttl_s: int = 0) -> None:
        """Store a value without making the caller wait."""
        if self._stub is None:
            return
        if self._batches is not None:
            self._batches.add(cache_pb2.SetRequest(namespace=namespace, key=key, value=value, ttl_seconds=ttl_s))
            return
        task = asyncio.create_task(self._set(namespace, key, value, ttl_s))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def delete(self, namespace: str, keys: list[str]) -> int | None:
        """Remove keys from both of cache_svc's layers after this client's own writes of them, so a write still on
        its way cannot bring one back: how many existed, or None when cache_svc or its Redis did not answer (a key
        may then still be stored)."""
        if self._stub is None:
            return 0
        if self._batches is not None:
            self._batches.withdraw(namespace, set(keys))
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=self._write_timeout_s)
        with tracer.start_as_current_span(
            "cache delete", attributes={CACHE_LAYER: "service", CACHE_NAMESPACE: namespace}
        ) as span:
            try:
                reply = await self._stub.Delete(
                    cache_pb2.DeleteRequest(namespace=namespace, keys=keys), timeout=self._write_timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("cache delete failed", extra={"fields": {"code": exc.code().name}})
                span.set_attribute(CACHE_ERROR, exc.code().name)
                return None
            if reply.l2_unreached:
                span.set_attribute(CACHE_ERROR, "L2_UNREACHED")
                return None
            return reply.deleted

    @property
    def _write_timeout_s(self) -> float:
        """Writes and deletions wait a little longer than reads: nobody waits on most of them."""
        return max(self.timeout_s, 0.2)

    async def set(self, namespace: str, key: str, value: bytes, ttl_s: int = 0) -> None:
        """Store a value and return once cache_svc has it (or failed, or the write deadline passed): for what the
        caller's next request must find, whichever process serves it."""
        if self._stub is not None:
            await self._set(namespace, key, value, ttl_s)

    async def _set(self, namespace: str, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await self._stub.Set(  # type: ignore[union-attr]
                cache_pb2.SetRequest(namespace=namespace, key=key, value=value, ttl_seconds=ttl_s),
                timeout=self._write_timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            log.debug("cache set failed", extra={"fields": {"code": exc.code().name}})

    async def _set_many(self, writes: list[cache_pb2.SetRequest]) -> None:
        try:
            await self._stub.SetMany(  # type: ignore[union-attr]
                cache_pb2.SetManyRequest(entries=writes), timeout=self._write_timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            log.debug("cache writes failed", extra={"fields": {"code": exc.code().name, "entries": len(writes)}})

    async def close(self) -> None:
        """Let background writes finish, then close the channel."""
        if self._batches is not None:
            await self._batches.close(timeout_s=1.0)
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=1.0)
        if self._channel is not None:
            await self._channel.close()
