"""L2: Redis, shared by every cache_svc replica and surviving their restarts.

A cache must never make a request slower or fail it, so every call here is bounded by a
short deadline and any error becomes a miss (or a no-op). After a failure Redis is left
alone for a back-off window, so a dead Redis costs nothing per request; the first call
after the window probes it again, which is how the layer reconnects by itself.

With ``cluster=True`` (LIKEOPT_REDIS_CLUSTER=1) the URL names any node of a Redis/Valkey
Cluster and redis-py's cluster client routes each key to the primary owning its slot; its
pipelines split a batch by node. A failure also drops the cluster client's view of the
topology, so the probe after the back-off asks the cluster again which node owns what: that
is how the layer follows a failover (a replica promoted in place of a dead primary).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

T = TypeVar("T")

Client = Redis | RedisCluster
"""Either client: both offer the commands and non-transactional pipelines used here."""


class L2Entry(NamedTuple):
    """A value read from Redis and its remaining time to live (None when unknown)."""

    value: bytes
    ttl_s: float | None


def redis_key(namespace: str, key: str) -> str:
    """The Redis key of an entry; namespaces cannot contain ':' so this is unambiguous."""
    return f"likeopt:{namespace}:{key}"


def redis_client(url: str, timeout_s: float, cluster: bool) -> Client:
    """A client for a single server or, with cluster, for the Redis Cluster the URL's node belongs to.

    redis-py's own retries would multiply the deadline, so both clients make one attempt;
    the layer retries through its back-off instead. The cluster client connects lazily (on
    the first call), so a cluster that is down at start-up is a miss, not a crash; a URL
    naming a database other than 0 is refused here (RedisClusterException), as clusters
    have only database 0.
    """
    options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "retry": Retry(NoBackoff(), 0)}
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)


class RedisLayer:
    """Redis (one server or a cluster) behind a deadline and a circuit breaker; never raises to its caller."""

    def __init__(self, url: str, timeout_s: float, retry_after_s: float = 1.0, cluster: bool = False) -> None:
        self._client = redis_client(url, timeout_s, cluster) if url else None
        self._timeout_s = timeout_s
        self._retry_after_s = retry_after_s
        # Optimistic until a call says otherwise, so the first failure is logged.
        self._healthy = self._client is not None
        self._retry_at = 0.0
        self._latency_s: float | None = None

    @property
    def healthy(self) -> bool:
        """Whether the last Redis call succeeded (always False without a URL)."""
        return self._healthy

    @property
    def latency_s(self) -> float | None:
        """Duration of the last successful call, None before the first one."""
        return self._latency_s

    async def get(self, namespace: str, key: str) -> L2Entry | None:
        """One entry, or None on a miss or when Redis is unavailable."""
        return (await self.get_many(namespace, [key])).get(key)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, L2Entry]:
        """The entries found, with their remaining TTL, in one round trip (GET + PTTL each)."""

        async def read(client: Client) -> list[int | bytes | None]:
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    name = redis_key(namespace, key)
                    pipe.get(name)
                    pipe.pttl(name)
                return await pipe.execute()

        replies = await self._call(read)
        if replies is None:
            return {}
        found = {}
        for key, value, pttl_ms in zip(keys, replies[::2], replies[1::2], strict=True):
            if value is not None:
                # PTTL is -1 for a key without expiry: the caller picks a TTL then.
                found[key] = L2Entry(value, pttl_ms / 1000 if pttl_ms > 0 else None)
        return found

    async def set(self, namespace: str, key: str, value: bytes, ttl_s: int) -> bool:
        """Store with a TTL in seconds; returns whether Redis accepted it."""
        name = redis_key(namespace, key)
        return bool(await self._call(lambda client: client.set(name, value, ex=ttl_s)))

    async def set_many(self, writes: Sequence[tuple[str, str, bytes, int]]) -> int:
        """Store each (namespace, key, value, ttl_s) in one round trip; returns how many Redis accepted."""

        async def store(client: Client) -> list[bool]:
            async with client.pipeline(transaction=False) as pipe:
                for namespace, key, value, ttl_s in writes:
                    pipe.set(redis_key(namespace, key), value, ex=ttl_s)
                return await pipe.execute()

        return sum(map(bool, await self._call(store) or ()))

    async def delete(self, namespace: str, keys: Sequence[str]) -> set[str]:
        """Remove keys in one round trip; returns those that existed (none when unavailable)."""

        async def remove(client: Client) -> list[int]:
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.delete(redis_key(namespace, key))
                return await pipe.execute()

        replies = await self._call(remove)
        if replies is None:
            return set()
        return {key for key, removed in zip(keys, replies, strict=True) if removed}

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()

    async def _call(self, operation: Callable[[Client], Awaitable[T]]) -> T | None:
        """Run one operation under the deadline; None when skipped or failed."""
        if self._client is None or (not self._healthy and time.monotonic() < self._retry_at):
            return None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await operation(self._client)
        except Exception as exc:  # any failure of a cache is a miss, never the caller's error
            self._mark_down(exc)
            await self._forget_topology()
            return None
        self._mark_up(time.monotonic() - started)
        return result

    async def _forget_topology(self) -> None:
        """Cluster only: drop the slot map and connections so the next call rediscovers them.

        redis-py refreshes its map after a failed single command but not after a failed
        pipeline, and every read here is a pipeline: without this, keys of a dead primary's
        slots would keep going to the dead node after its replica took over.
        """
        if not isinstance(self._client, RedisCluster):
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timeout_s):
                await self._client.aclose()

    def _mark_down(self, exc: Exception) -> None:
        self._retry_at = time.monotonic() + self._retry_after_s
        if self._healthy:
            self._healthy = False
            log.warning(
                "Redis unavailable, L2 off (retrying every %.1f s): %s %s",
                self._retry_after_s,
                type(exc).__name__,
                exc,
            )

    def _mark_up(self, latency_s: float) -> None:
        self._latency_s = latency_s
        if not self._healthy:
            self._healthy = True
            log.info("Redis reachable again, L2 back on")
