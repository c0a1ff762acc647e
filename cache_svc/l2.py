"""L2: Redis, shared by every cache_svc replica and surviving their restarts.

A cache must never make a request slower or fail it, so every call here is bounded by a
short deadline and any error becomes a miss (or a no-op). After a failure to reach Redis
it is left alone for a back-off window, so a dead Redis costs nothing per request; the
first call after the window probes it again, which is how the layer reconnects by itself.
Deletions alone do not wait out the window (``RedisLayer.delete`` says why).
A command Redis refuses (a full memory, a failing disk, a replica: cache_svc.refusals) is
no such failure: it is counted and the layer stays on, since that Redis still reads.

With ``cluster=True`` (LIKEOPT_REDIS_CLUSTER=1) the URL names any node of a Redis/Valkey
Cluster and redis-py's cluster client routes each key to the primary owning its slot; its
pipelines split a batch by node. The client must first learn which node serves which slot;
that takes longer than a call's deadline, so it is learnt in a task of its own while calls
miss. A failure makes the layer learn the map again (after the back-off), which is how it
follows a failover: a replica promoted in place of a dead primary.

Health is also re-checked on a schedule of its own (``start_probing``: a PING every couple
of seconds, to every primary of a cluster), so ``healthy`` says what is true now: a state
left by the last request could be minutes old, and one call that timed out on a busy
machine used to leave L2 "down" on the dashboard until the next cache request came. A
successful probe also ends the back-off early, and a probe of a cluster learns its slot map
before the first request needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cache_svc.refusals import Refusals, describe, key_digest, refusal_reason
from likeopt.runtime.config import redis_seed_nodes

log = logging.getLogger(__name__)

T = TypeVar("T")

Client = Redis | RedisCluster
"""Either client: both offer the commands and non-transactional pipelines used here."""

DISCOVERY_TIMEOUT_S = 5.0
"""Bound on learning a cluster's slot map: off the request path, so longer than a call's
deadline, yet bounded so that a node which never answers cannot hold discovery up forever."""


CONNECT_RETRY_S = 0.05
"""Pause between the PINGs of ``connect`` while the slot map is learnt or the first connections open."""

RESEND_AFTER_S = 0.02
"""Pause before a deletion Redis did not answer is sent again: a refused connection fails at once, and the loop
must not spin on it."""

PROBE_INTERVAL_S = 2.0
"""How often the background probe asks Redis whether it answers: often enough for a dashboard
polled every 2 s, rare enough to cost nothing (one PING per node)."""


class L2Entry(NamedTuple):
    """A value read from Redis and its remaining time to live (None when unknown)."""

    value: bytes
    ttl_s: float | None


def redis_key(namespace: str, key: str) -> str:
    """The Redis key of an entry; namespaces cannot contain ':' so this is unambiguous."""
    return f"likeopt:{namespace}:{key}"


class Command(NamedTuple):
    """One command of a pipeline on an entry's key: its name, the entry, then its further arguments."""

    name: str
    namespace: str
    key: str
    args: tuple[Any, ...] = ()

    def wire(self) -> tuple[Any, ...]:
        """The command as sent: its name, the Redis key, its arguments."""
        return (self.name, redis_key(self.namespace, self.key), *self.args)

    def shown(self) -> str:
        """Its Redis key as a log line may show it: the namespace, and a digest of the key."""
        return redis_key(self.namespace, f"<{key_digest(self.key)}>")


async def _ping(client: Client) -> bool:
    """PING the server, or every primary of a cluster: the nodes that calls go to."""
    if isinstance(client, RedisCluster):
        return bool(await client.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await client.ping())


def redis_client(url: str, timeout_s: float, cluster: bool) -> Client:
    """A client for a single server or, with cluster, for the Redis Cluster the URL's node belongs to.

    redis-py's own retries would multiply the deadline, so both clients make one attempt;
    the layer retries through its back-off instead. The cluster client connects lazily, and
    its sockets get the discovery bound rather than a call's deadline: learning the slot map
    reads a large COMMAND reply, which a 50 ms socket timeout cuts off on a busy machine.
    Calls stay bounded by the layer's deadline either way. A URL naming a database other than
    0 is refused here (RedisClusterException): a cluster has only database 0. Nodes listed after
    the URL are further places to learn the cluster from when the URL's own node is down.
    """
    socket_s = max(timeout_s, DISCOVERY_TIMEOUT_S) if cluster else timeout_s
    options = {"socket_timeout": socket_s, "socket_connect_timeout": socket_s, "retry": Retry(NoBackoff(), 0)}
    first, others = redis_seed_nodes(url)
    if cluster:
        seeds = [ClusterNode(host, port) for host, port in others]
        return RedisCluster.from_url(first, startup_nodes=seeds or None, **options)
    return Redis.from_url(first, **options)


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
        self._cluster = cluster
        # Whether calls may go out: one server needs nothing first, a cluster its slot map.
        self._mapped = not cluster
        self._discovery: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._refusals = Refusals()
        self._connecting = False  # while connect waits, a failed try is expected, not an outage to warn of

    @property
    def healthy(self) -> bool:
        """Whether the last Redis call or probe succeeded (always False without a URL)."""
        return self._healthy

    @property
    def configured(self) -> bool:
        """Whether there is a Redis to use at all; without one, L1 is the only layer."""
        return self._client is not None

    @property
    def latency_s(self) -> float | None:
        """Duration of the last successful call, None before the first one."""
        return self._latency_s

    async def get(self, namespace: str, key: str) -> L2Entry | None:
        """One entry, or None on a miss or when Redis is unavailable."""
        return (await self.get_many(namespace, [key])).get(key)

    async def lookup(self, namespace: str, key: str) -> tuple[L2Entry | None, bool]:
        """One entry or None, and whether Redis was asked: False when it is configured but could not be (down, or
        backing off), so a miss says nothing of whether the key is stored."""
        found = await self._found(namespace, [key])
        return (None, self._client is None) if found is None else (found.get(key), True)

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, L2Entry]:
        """The entries found, with their remaining TTL, in one round trip (GET + PTTL each)."""
        return await self._found(namespace, keys) or {}

    async def _found(self, namespace: str, keys: Sequence[str]) -> dict[str, L2Entry] | None:
        """get_many's entries, or None when Redis could not be asked (or there is none)."""
        commands = [Command(name, namespace, key) for key in keys for name in ("GET", "PTTL")]
        replies = await self._pipeline(commands)
        if replies is None:
            return None
        found = {}
        for key, value, pttl_ms in zip(keys, replies[::2], replies[1::2], strict=True):
            if value is not None:
                # PTTL is -1 for a key without expiry (None if refused): the caller picks a TTL then.
                found[key] = L2Entry(value, pttl_ms / 1000 if pttl_ms and pttl_ms > 0 else None)
        return found

    async def set(self, namespace: str, key: str, value: bytes, ttl_s: int) -> bool:
        """Store with a TTL in seconds; returns whether Redis accepted it."""
        return await self.set_many([(namespace, key, value, ttl_s)]) == 1

    async def set_many(self, writes: Sequence[tuple[str, str, bytes, int]]) -> int:
        """Store each (namespace, key, value, ttl_s) in one round trip; returns how many Redis accepted."""
        commands = [Command("SET", namespace, key, (value, "EX", ttl_s)) for namespace, key, value, ttl_s in writes]
        return sum(reply is True for reply in await self._pipeline(commands) or ())

    async def delete(self, namespace: str, keys: Sequence[str], within_s: float = 0.0) -> set[str] | None:
        """Remove keys in one round trip; returns those that existed (none without a URL), or None when Redis did
        not delete them all (it could not be reached, or it refused: a key may still be there).

        A key left in Redis comes back once L1 lets it go, and a person who deleted a conversation is told to try
        again; so a deletion does not wait out the back-off (one timed-out call on a busy machine turns L2 off for
        a second), and one Redis did not answer is sent again until within_s has passed. Deletions are rare: the
        back-off spares Redis the traffic of reads, not these.
        """
        if self._client is None:
            return set()
        commands = [Command("DEL", namespace, key) for key in keys]
        give_up_at = time.monotonic() + within_s
        replies = await self._pipeline(commands, despite_backoff=True)
        while replies is None and time.monotonic() + RESEND_AFTER_S + self._timeout_s <= give_up_at:
            await asyncio.sleep(RESEND_AFTER_S)
            replies = await self._pipeline(commands, despite_backoff=True)
        if replies is None or None in replies:
            return None
        return {key for key, removed in zip(keys, replies, strict=True) if removed}

    @property
    def refusals(self) -> dict[str, int]:
        """Commands Redis refused (while reachable) since start, by its error code: OOM, MISCONF, READONLY, ..."""
        return self._refusals.by_reason

    async def connect(self, wait_s: float) -> bool:
        """PING Redis until it answers or wait_s has passed; returns whether it answered. cache_svc does this
        before it serves: a cluster's slot map and the first connections to its primaries take longer than a
        call's deadline, and every call until then misses, so a stored conversation would read as unknown and
        its follow-up would start it afresh, overwriting its turns in Redis."""
        deadline = time.monotonic() + wait_s
        self._connecting = True
        try:
            while self._client is not None and not self._closing.is_set():
                self._retry_at = 0.0  # each try is a probe, not a request the back-off should spare Redis
                with suppress_instrumentation():
                    if await self._call(_ping):
                        return True
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(CONNECT_RETRY_S)
        finally:
            self._connecting = False
        if self._client is not None and not self._closing.is_set():
            log.warning(
                "Redis did not answer within %.0f s of starting, L2 off (retrying every %.1f s)",
                wait_s,
                self._retry_after_s,
            )
        return False

    def start_probing(self, interval_s: float = PROBE_INTERVAL_S) -> None:
        """Probe Redis every interval_s seconds in the background until aclose (nothing without a URL)."""
        if self._client is not None and self._probing is None:
            self._probing = asyncio.create_task(self._probe_every(interval_s), name="redis-health-probe")

    async def probe(self) -> bool:
        """Ask Redis now, back-off or not, and record the answer; returns whether L2 is healthy.

        Untraced, like every health probe: it is no request's work, and one span per PING
        every two seconds would bury the traces of real requests.
        """
        if self._client is None:
            return False
        self._retry_at = 0.0  # this is the retry the back-off was waiting for
        with suppress_instrumentation():
            await self._call(_ping)
        return self._healthy

    async def _probe_every(self, interval_s: float) -> None:
        """Probe until aclose; told to stop by an event, since redis-py can swallow a cancellation
        that arrives during a PING (seen with redis-py 8.1), which would leave the loop running."""
        while not self._closing.is_set():
            await self.probe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), interval_s)

    async def aclose(self) -> None:
        """Stop probing and learning the slot map, if under way, and close the connections."""
        self._closing.set()
        for task in (self._probing, self._discovery):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._client is not None:
            await self._client.aclose()

    async def _pipeline(self, commands: Sequence[Command], despite_backoff: bool = False) -> list[Any] | None:
        """Send commands in one round trip: their replies, None for each that Redis refused (counted, and logged
        once a period), or None for all when Redis could not be reached (L2 is then off for a back-off, which
        despite_backoff ignores)."""

        async def send(client: Client) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command.wire())
                # Errors come back as replies, unraised: raising annotates them with the command's arguments.
                replies = await pipe.execute(raise_on_error=False)
            unreached = [r for r in replies if isinstance(r, Exception) and refusal_reason(r) is None]
            if unreached:
                raise unreached[0]
            return replies

        replies = await self._call(send, despite_backoff)
        if replies is None:
            return None
        for position, (command, reply) in enumerate(zip(commands, replies, strict=True)):
            reason = refusal_reason(reply)
            if reason is not None:
                self._refusals.record(command.name, command.shown(), reason)
                replies[position] = None
        return replies

    async def _call(self, operation: Callable[[Client], Awaitable[T]], despite_backoff: bool = False) -> T | None:
        """Run one operation under the deadline; None when skipped (no Redis, or backing off) or failed."""
        backing_off = not self._healthy and time.monotonic() < self._retry_at
        if self._client is None or (backing_off and not despite_backoff):
            return None
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        if not await self._slot_map_known(self._timeout_s):
            return None  # still being learnt: a miss, and the deadline kept
        try:
            async with asyncio.timeout_at(deadline):
                result = await operation(self._client)
        except Exception as exc:  # any failure of a cache is a miss, never the caller's error
            self._mark_down(exc)
            # redis-py refreshes its slot map after a failed single command but not after a
            # failed pipeline, and every read here is one: relearn it, or the keys of a dead
            # primary's slots would go on to the dead node after its replica took over.
            self._mapped = not self._cluster
            return None
        self._mark_up(time.monotonic() - started)
        return result

    async def _slot_map_known(self, wait_s: float) -> bool:
        """Whether calls can go out: always to one server; to a cluster, once its slot map is known.

        Learning the map (CLUSTER SLOTS and COMMAND, both parsed in Python) can take longer than
        a call's deadline, and a call that timed out while learning would throw that work away;
        so it runs in a task of its own. The call that starts it waits for it until its deadline;
        calls arriving while it runs miss at once, so a slow discovery (a node that does not
        answer) costs each of them nothing, as the back-off does for a dead server.
        """
        if self._mapped:
            return True
        if self._discovery is not None and not self._discovery.done():
            return False
        self._discovery = asyncio.create_task(self._discover())
        await asyncio.wait({self._discovery}, timeout=wait_s)
        return self._mapped

    async def _discover(self) -> None:
        """Drop the old slot map and connections, then learn the map from any node still known."""
        assert isinstance(self._client, RedisCluster)
        try:
            async with asyncio.timeout(max(DISCOVERY_TIMEOUT_S, self._timeout_s)):
                await self._client.aclose()
                await self._client.initialize()
        except Exception as exc:  # the cluster is unreachable: back off like a failed call
            self._mark_down(exc)
            return
        self._mapped = True

    def _mark_down(self, exc: Exception) -> None:
        self._retry_at = time.monotonic() + self._retry_after_s
        if self._healthy:
            self._healthy = False
            if self._connecting:
                log.info("Redis not answering yet, waiting: %s", describe(exc))
            else:
                log.warning("Redis unavailable, L2 off (retrying every %.1f s): %s", self._retry_after_s, describe(exc))

    def _mark_up(self, latency_s: float) -> None:
        self._latency_s = latency_s
        if not self._healthy:
            self._healthy = True
            log.info("Redis reachable, L2 on" if self._connecting else "Redis reachable again, L2 back on")
