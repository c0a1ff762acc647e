"""CacheClient.delete against cache_svc's real servicer on an in-process gRPC server: a deletion is never
overtaken by the client's own earlier write of the key, and one that cache_svc or its Redis did not answer is told
apart from one that found nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from cache_svc.l1 import L1Cache
from cache_svc.l2 import RedisLayer
from cache_svc.service import CacheServicer
from cache_svc.two_layer import TwoLayerCache
from likeopt.caching.cache_client import CacheClient, CacheUnreachable
from likeopt.v1 import cache_pb2, cache_pb2_grpc
from tests.support import ValkeyServer

SLOW_WRITE_S = 0.3
"""How long the servicer below holds each write: far longer than a deletion's own round trip."""


class SlowWrites(CacheServicer):
    """cache_svc whose writes land late, as under load: a deletion sent meanwhile would arrive first."""

    async def Set(self, request: cache_pb2.SetRequest, context: grpc.aio.ServicerContext) -> cache_pb2.SetResponse:
        await asyncio.sleep(SLOW_WRITE_S)
        return await super().Set(request, context)


@asynccontextmanager
async def cache_service(redis_url: str = "", redis_timeout_s: float = 1.0) -> AsyncIterator[str]:
    """cache_svc (its L1 only unless a Redis URL is given) on a free loopback port; yields its address. The Redis
    deadline is generous by default: these tests check behaviour, not speed."""
    layer = RedisLayer(redis_url, timeout_s=redis_timeout_s)
    server = grpc.aio.server()
    cache_pb2_grpc.add_CacheServiceServicer_to_server(
        SlowWrites(TwoLayerCache(L1Cache(1000, 1 << 20), layer, default_ttl_s=60)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        await layer.aclose()


async def test_a_delete_waits_for_the_client_s_own_write_of_the_key() -> None:
    async with cache_service() as address:
        client = CacheClient(address, timeout_s=2.0)
        client.set_later("session", "turns", b"what was asked")
        deleted = await client.delete("session", ["turns"])
        assert deleted == 1
        assert await client.get("session", "turns") is None
        await client.close()


async def test_a_delete_withdraws_a_batched_write_still_queued() -> None:
    async with cache_service() as address:
        batching = CacheClient(address, timeout_s=2.0, write_window_s=3600.0)
        batching.set_later("session", "first", b"sent at once")  # the window's first write goes now
        batching.set_later("session", "second", b"queued for the window's end")
        assert await batching.delete("session", ["second"]) == 0
        await batching.close()  # sends whatever is still queued
        reader = CacheClient(address, timeout_s=2.0)
        assert await reader.get("session", "second") is None
        assert await reader.get("session", "first") == b"sent at once"
        await reader.close()


async def test_a_delete_that_cache_svc_does_not_answer_is_none_and_a_disabled_client_deletes_nothing() -> None:
    unreachable = CacheClient("127.0.0.1:9", timeout_s=0.2)  # the discard port: nothing listens
    assert await unreachable.delete("session", ["turns"]) is None
    await unreachable.close()
    assert await CacheClient("", timeout_s=0.2).delete("session", ["turns"]) == 0


async def test_a_delete_that_redis_did_not_answer_is_none_though_l1_held_the_key() -> None:
    async with cache_service(redis_url="redis://127.0.0.1:9") as address:  # configured, but nothing listens
        client = CacheClient(address, timeout_s=2.0)
        client.set_later("session", "turns", b"what was asked")
        assert await client.delete("session", ["turns"]) is None  # it may still be in Redis: not reported gone
        await client.close()


async def test_a_delete_after_a_write_a_full_redis_refused_is_done_and_said_to_be() -> None:
    """A conversation deleted right after a chat on a Redis at its maxmemory: the chat's save was refused (OOM),
    yet DEL works there, so the deletion is complete, not "Redis unreached"."""
    valkey = ValkeyServer()
    valkey.start()
    try:
        async with cache_service(redis_url=valkey.url) as address:
            client = CacheClient(address, timeout_s=2.0)
            await client.set("session", "turns", b"first answer")
            valkey.fill()
            await client.set("session", "turns", b"second answer")  # refused by Redis, held by L1
            assert await client.delete("session", ["turns"]) == 1
            assert await client.lookup("session", "turns") is None  # gone from Redis too
            await client.close()
    finally:
        valkey.stop()


async def test_a_lookup_tells_an_unreachable_cache_from_a_miss() -> None:
    """get reads both as a miss (best effort); a conversation's lookup must not, or it is saved over."""
    client = CacheClient("127.0.0.1:1", timeout_s=0.2)
    try:
        assert await client.get("conversations", "c1") is None
        with pytest.raises(CacheUnreachable):
            await client.lookup("conversations", "c1")
    finally:
        await client.close()
    assert await CacheClient("", timeout_s=0.2).lookup("conversations", "c1") is None  # no cache: a miss


async def test_a_miss_redis_could_not_confirm_is_not_a_miss_to_a_caller_who_would_act_on_it() -> None:
    """cache_svc restarted (its L1 empty) while Redis is down: a stored conversation it cannot see is "unknown", not
    "not found", or its follow-up would start it afresh and save over the turns Redis still holds."""
    valkey = ValkeyServer()
    valkey.start()
    try:
        async with cache_service(valkey.url) as address:
            client = CacheClient(address, timeout_s=2.0)
            assert await client.lookup("conversation", "unknown") is None  # Redis answered: a real miss
            valkey.stop()
            with pytest.raises(CacheUnreachable):
                await client.lookup("conversation", "stored-before")
            assert await client.get("conversation", "stored-before") is None  # a best-effort read just misses
            await client.close()
    finally:
        valkey.stop()


async def test_without_a_redis_a_miss_is_a_miss() -> None:
    async with cache_service() as address:
        client = CacheClient(address, timeout_s=2.0)
        assert await client.lookup("conversation", "unknown") is None
        await client.close()


async def test_a_delete_just_after_redis_timed_out_once_lands_within_the_caller_s_deadline() -> None:
    """One Redis call that timed out on a busy machine turns cache_svc's L2 off for a back-off; a conversation
    deleted in that window is still deleted from Redis, not refused with "try again"."""
    valkey = ValkeyServer()
    valkey.start()
    try:
        async with cache_service(redis_url=valkey.url, redis_timeout_s=0.1) as address:
            client = CacheClient(address, timeout_s=2.0)
            await client.set("session", "turns", b"what was asked")
            with valkey.client() as redis:
                redis.execute_command("CLIENT", "PAUSE", "400", "ALL")
            with pytest.raises(CacheUnreachable):
                await client.lookup("session", "another")  # Redis timed out: L2 off
            assert await client.delete("session", ["turns"]) == 1
            with valkey.client() as redis:
                assert redis.exists("likeopt:session:turns") == 0
            await client.close()
    finally:
        valkey.stop()
