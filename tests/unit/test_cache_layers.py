"""RedisLayer and TwoLayerCache against a real Redis-protocol server (valkey-server)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cache_svc.l1 import L1Cache
from cache_svc.l2 import RedisLayer, redis_key
from cache_svc.metrics import CacheCollector
from cache_svc.refusals import Refusals
from cache_svc.two_layer import CacheWrite, TwoLayerCache
from likeopt.ops.ports import free_port
from tests.support import ValkeyServer

RETRY_AFTER_S = 0.3
"""Back-off used in these tests, shorter than the production default to keep them fast."""


@pytest.fixture
def server() -> Iterator[ValkeyServer]:
    valkey = ValkeyServer()
    valkey.start()
    try:
        yield valkey
    finally:
        valkey.stop()


@pytest.fixture
async def l2(server: ValkeyServer) -> AsyncIterator[RedisLayer]:
    # A generous deadline: these tests check behaviour, not speed, on any CI machine.
    layer = RedisLayer(server.url, timeout_s=1.0, retry_after_s=RETRY_AFTER_S)
    yield layer
    await layer.aclose()


@pytest.fixture
def l1() -> L1Cache:
    return L1Cache(max_entries=1000, max_bytes=1 << 20)


@pytest.fixture
def cache(l1: L1Cache, l2: RedisLayer) -> TwoLayerCache:
    return TwoLayerCache(l1, l2, default_ttl_s=3600)


@pytest.fixture
async def offline_cache(l1: L1Cache) -> AsyncIterator[TwoLayerCache]:
    """A cache without Redis, for tests of input checks."""
    layer = RedisLayer("", timeout_s=0.05)
    yield TwoLayerCache(l1, layer, default_ttl_s=60)
    await layer.aclose()


async def test_set_then_get_is_served_by_l1_and_stored_in_redis(cache: TwoLayerCache, server: ValkeyServer) -> None:
    assert await cache.set("search", "q1", b"result")
    assert await cache.get("search", "q1") == (b"result", "l1")
    with server.client() as client:
        assert client.get("likeopt:search:q1") == b"result"
    assert await cache.get("search", "absent") == (None, "")


async def test_set_many_writes_every_entry_to_both_layers_in_one_call(
    cache: TwoLayerCache, l1: L1Cache, server: ValkeyServer
) -> None:
    writes = [CacheWrite("search", "a", b"1"), CacheWrite("answer", "b", b"2", ttl_s=5), CacheWrite("search", "c", b"")]
    assert await cache.set_many(writes) == 3
    assert await cache.set_many([]) == 0
    assert [l1.get((w.namespace, w.key)) for w in writes] == [b"1", b"2", b""]
    with server.client() as client:
        assert client.get(redis_key("search", "a")) == b"1"
        assert 0 < client.pttl(redis_key("answer", "b")) <= 5000
        assert 3590_000 < client.pttl(redis_key("search", "c")) <= 3600_000  # 0: the default TTL


async def test_set_many_with_one_bad_entry_writes_nothing(cache: TwoLayerCache, l1: L1Cache) -> None:
    with pytest.raises(ValueError, match="entry 1: key must not be empty"):
        await cache.set_many([CacheWrite("search", "fine", b"1"), CacheWrite("search", "", b"2")])
    with pytest.raises(ValueError, match="entry 0: ttl"):
        await cache.set_many([CacheWrite("search", "k", b"1", ttl_s=-1)])
    assert l1.entries == 0
    assert await cache.get("search", "fine") == (None, "")


async def test_l2_hit_is_promoted_to_l1(cache: TwoLayerCache, l1: L1Cache) -> None:
    await cache.set("embedding", "doc-1", b"\x00\x01vector")
    l1.clear()
    assert await cache.get("embedding", "doc-1") == (b"\x00\x01vector", "l2")
    assert await cache.get("embedding", "doc-1") == (b"\x00\x01vector", "l1")


async def test_promotion_keeps_the_remaining_ttl(l2: RedisLayer) -> None:
    clock = [0.0]
    l1 = L1Cache(max_entries=10, max_bytes=1000, clock=lambda: clock[0])
    cache = TwoLayerCache(l1, l2, default_ttl_s=3600)
    await cache.set("answer", "k", b"v", ttl_s=100)
    l1.clear()
    assert (await cache.get("answer", "k"))[1] == "l2"
    clock[0] = 99
    assert l1.get(("answer", "k")) == b"v"
    clock[0] = 101  # past Redis's TTL, far before the 3600 s default
    assert l1.get(("answer", "k")) is None


async def test_ttl_is_honoured_by_redis(cache: TwoLayerCache, l1: L1Cache, server: ValkeyServer) -> None:
    await cache.set("session", "default", b"v")
    await cache.set("session", "short", b"v", ttl_s=1)
    with server.client() as client:
        assert 3590_000 < client.pttl(redis_key("session", "default")) <= 3600_000
        assert 0 < client.pttl(redis_key("session", "short")) <= 1000
    await asyncio.sleep(1.1)
    l1.clear()
    assert await cache.get("session", "short") == (None, "")
    assert await cache.get("session", "default") == (b"v", "l2")


async def test_get_many_combines_both_layers(cache: TwoLayerCache, l1: L1Cache) -> None:
    await cache.set("search", "a", b"1")
    await cache.set("search", "b", b"2")
    l1.delete(("search", "b"))  # "a" from L1, "b" from Redis, "c" from neither
    assert await cache.get_many("search", ["a", "b", "c", "a"]) == {"a": b"1", "b": b"2"}
    assert l1.get(("search", "b")) == b"2"  # promoted
    assert await cache.get_many("search", []) == {}


async def test_delete_removes_from_both_layers(cache: TwoLayerCache, l1: L1Cache, server: ValkeyServer) -> None:
    await cache.set("answer", "a", b"1")
    await cache.set("answer", "b", b"2")
    l1.delete(("answer", "b"))  # still in Redis: counts once
    assert await cache.delete("answer", ["a", "b", "missing"]) == (2, False)
    assert await cache.get_many("answer", ["a", "b"]) == {}
    with server.client() as client:
        assert client.exists(redis_key("answer", "a"), redis_key("answer", "b")) == 0


async def test_stats_count_per_namespace_and_layer(cache: TwoLayerCache, l1: L1Cache) -> None:
    await cache.set("search", "a", b"1")
    await cache.get("search", "a")  # l1 hit
    l1.clear()
    await cache.get("search", "a")  # l1 miss, l2 hit
    await cache.get("search", "nope")  # l1 miss, l2 miss
    await cache.get_many("embedding", ["x", "y"])  # two misses in both layers

    stats = cache.stats()
    search, embedding = stats.namespaces["search"], stats.namespaces["embedding"]
    assert (search.l1.hits, search.l1.misses, search.l2.hits, search.l2.misses) == (1, 2, 1, 1)
    assert (embedding.l1.hits, embedding.l1.misses, embedding.l2.hits, embedding.l2.misses) == (0, 2, 0, 2)
    assert (stats.hits, stats.misses) == (2, 3)
    assert stats.hit_ratio == pytest.approx(2 / 5)
    assert stats.l1_entries == 1
    assert stats.l1_bytes == len("search") + len("a") + 1
    assert stats.l2_healthy
    assert stats.l2_latency_s is not None and stats.l2_latency_s > 0


async def test_survives_redis_going_away_and_reconnects(
    cache: TwoLayerCache,
    l1: L1Cache,
    l2: RedisLayer,
    server: ValkeyServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cache_svc.l2")
    await cache.set("search", "before", b"1")
    server.stop()

    assert await cache.get("search", "before") == (b"1", "l1")  # L1 still answers
    assert await cache.get("search", "unknown") == (None, "")
    assert not l2.healthy
    assert not await cache.set("search", "during", b"2")  # L1 only
    assert await cache.set_many([CacheWrite("search", "batched", b"4")]) == 0
    assert await cache.get("search", "batched") == (b"4", "l1")
    assert await cache.get("search", "during") == (b"2", "l1")
    assert await cache.get_many("search", ["x"]) == {}
    assert await cache.delete("search", ["during"]) == (1, True)  # gone from L1; Redis could not be asked
    assert not cache.stats().l2_healthy

    server.start()  # same port, empty data set
    await asyncio.sleep(RETRY_AFTER_S + 0.1)
    assert await cache.get("search", "unknown") == (None, "")  # this call probes Redis again
    assert l2.healthy
    assert await cache.set("search", "after", b"3")
    l1.clear()
    assert await cache.get("search", "after") == (b"3", "l2")
    # One line per state change, however many calls failed in between.
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]


async def test_a_redis_that_answers_while_cache_svc_waits_for_it_is_no_outage(caplog: pytest.LogCaptureFixture) -> None:
    """cache_svc waits for Redis before it serves. A try that failed within that wait (a Redis or a cluster starting
    beside it) was logged as "Redis unavailable, L2 off" at every start: a warning an operator's alerts read as an
    outage that never was."""
    caplog.set_level(logging.INFO, logger="cache_svc.l2")
    server = ValkeyServer()
    layer = RedisLayer(server.url, timeout_s=0.2, retry_after_s=RETRY_AFTER_S)
    try:
        started_late = asyncio.get_running_loop().run_in_executor(None, lambda: (time.sleep(0.5), server.start()))
        assert await layer.connect(30)
        await started_late
        assert layer.healthy and await layer.set("search", "k", b"v", 60)
    finally:
        await layer.aclose()
        server.stop()
    levels = [record.levelname for record in caplog.records]
    assert "WARNING" not in levels and levels[-1] == "INFO", caplog.text


async def test_a_redis_that_never_answers_within_the_wait_is_warned_of_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cache_svc.l2")
    layer = RedisLayer(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.1, retry_after_s=RETRY_AFTER_S)
    try:
        assert not await layer.connect(0.5)
        assert await layer.get("search", "k") is None and not layer.healthy
    finally:
        await layer.aclose()
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "did not answer within" in warnings[0], caplog.text


async def test_without_url_l2_is_disabled(l1: L1Cache) -> None:
    l2 = RedisLayer("", timeout_s=0.05)
    cache = TwoLayerCache(l1, l2, default_ttl_s=60)
    assert not l2.healthy
    assert not await cache.set("search", "k", b"v")
    assert await cache.get("search", "k") == (b"v", "l1")
    l1.clear()
    assert await cache.get("search", "k") == (None, "")
    assert not l2.healthy
    await l2.aclose()


@pytest.mark.parametrize(
    ("namespace", "key", "value", "message"),
    [
        ("", "k", b"", "namespace"),
        ("Upper", "k", b"", "namespace"),
        ("has:colon", "k", b"", "namespace"),
        ("n" * 65, "k", b"", "namespace"),
        ("ok", "", b"", "key must not be empty"),
        ("ok", "é" * 513, b"", "1026 bytes"),
        ("ok", "k", b"x" * (8 * 1024 * 1024 + 1), "value"),
    ],
)
async def test_invalid_input_is_rejected(
    offline_cache: TwoLayerCache, namespace: str, key: str, value: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await offline_cache.set(namespace, key, value)


async def test_invalid_input_is_rejected_by_every_operation(offline_cache: TwoLayerCache) -> None:
    with pytest.raises(ValueError, match="namespace"):
        await offline_cache.get("BAD", "k")
    with pytest.raises(ValueError, match="key"):
        await offline_cache.get_many("ok", ["fine", ""])
    with pytest.raises(ValueError, match="key"):
        await offline_cache.delete("ok", ["x" * 1025])
    with pytest.raises(ValueError, match="ttl"):
        await offline_cache.set("ok", "k", b"v", ttl_s=-1)
    assert await offline_cache.get("n" * 64, "k" * 1024) == (None, "")  # the limits themselves are fine


async def test_without_redis_configured_a_deletion_is_complete(offline_cache: TwoLayerCache) -> None:
    await offline_cache.set("session", "k", b"v")
    assert await offline_cache.delete("session", ["k", "other"]) == (1, False)


def exported_names(cache: TwoLayerCache) -> set[str]:
    return {family.name for family in CacheCollector(cache).collect()}


async def test_redis_health_is_exported_only_where_there_is_a_redis(
    cache: TwoLayerCache, offline_cache: TwoLayerCache
) -> None:
    # Without one, a gauge stuck at 0 would read as "Redis down" and fire LikeOptRedisDown on a healthy cache.
    assert "likeopt_cache_l2_healthy" in exported_names(cache) and cache.stats().l2_configured
    assert "likeopt_cache_l2_healthy" not in exported_names(offline_cache)
    assert not offline_cache.stats().l2_configured and "likeopt_cache_l1_entries" in exported_names(offline_cache)


async def until(condition: Callable[[], bool], budget_s: float = 10.0) -> None:
    """Wait (bounded) for a condition that the background probe, not the test, makes true."""
    deadline = time.monotonic() + budget_s
    while not condition():
        assert time.monotonic() < deadline, "the probe did not change the state"
        await asyncio.sleep(0.02)


async def test_the_probe_sees_redis_die_and_return_with_no_request_in_between(
    l2: RedisLayer, server: ValkeyServer
) -> None:
    l2.start_probing(interval_s=0.05)
    await until(lambda: l2.latency_s is not None)  # the first probe answered
    assert l2.healthy
    server.stop()
    await until(lambda: not l2.healthy)
    server.start()
    await until(lambda: l2.healthy)
    assert await l2.set("search", "back", b"1", 60)  # no back-off left to wait out


async def test_one_slow_call_marks_l2_down_only_until_the_next_probe(server: ValkeyServer) -> None:
    layer = RedisLayer(server.url, timeout_s=0.1, retry_after_s=60.0)  # a back-off far longer than the test
    try:
        with server.client() as client:
            client.execute_command("CLIENT", "PAUSE", "400", "ALL")  # Redis busy: the next call times out
        assert await layer.get("search", "k") is None
        assert not layer.healthy
        layer.start_probing(interval_s=0.05)
        await until(lambda: layer.healthy)  # says what is true now, without waiting for a request
        assert await layer.set("search", "k", b"v", 60)
    finally:
        await layer.aclose()


async def test_a_deletion_does_not_wait_out_the_back_off_and_is_resent_until_redis_answers(
    server: ValkeyServer,
) -> None:
    """One call that timed out on a busy machine turns L2 off; a conversation deleted in that window must still
    leave Redis, or it comes back once L1 lets it go."""
    layer = RedisLayer(server.url, timeout_s=0.1, retry_after_s=60.0)  # a back-off far longer than the test
    try:
        assert await layer.set("session", "turns", b"what was asked", 60)
        with server.client() as client:
            client.execute_command("CLIENT", "PAUSE", "400", "ALL")  # Redis busy for four of the layer's deadlines
        assert await layer.get("session", "other") is None and not layer.healthy
        assert await layer.lookup("session", "other") == (None, False)  # reads spare the backing-off Redis
        assert await layer.delete("session", ["turns"], within_s=5.0) == {"turns"}  # sent again until it answered
        assert layer.healthy
        with server.client() as client:
            assert client.exists(redis_key("session", "turns")) == 0
    finally:
        await layer.aclose()


async def test_a_deletion_redis_never_answers_within_its_time_is_unconfirmed(server: ValkeyServer) -> None:
    layer = RedisLayer(server.url, timeout_s=0.1, retry_after_s=60.0)
    try:
        server.stop()
        assert await layer.delete("session", ["turns"], within_s=0.5) is None  # tried, refused, tried again
        assert await layer.delete("session", ["turns"]) is None  # once, despite the back-off
        assert not layer.healthy
    finally:
        await layer.aclose()


async def test_probes_need_a_url_and_stop_with_the_layer(l2: RedisLayer) -> None:
    offline = RedisLayer("", timeout_s=0.05)
    offline.start_probing(interval_s=0.01)
    assert not await offline.probe() and not offline.healthy
    await offline.aclose()
    l2.start_probing(interval_s=0.01)
    probing = l2._probing
    assert probing is not None and await l2.probe()
    await asyncio.wait_for(l2.aclose(), 10)  # even when a PING swallowed the cancellation
    assert probing.done()


async def test_probes_are_not_traced_while_requests_are(l2: RedisLayer) -> None:
    instrumentor = RedisInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        pytest.skip("Redis is instrumented in this process already, with a provider of its own")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor.instrument(tracer_provider=provider)
    try:
        assert await l2.probe()
        assert await l2.set("search", "traced", b"1", 60)
    finally:
        instrumentor.uninstrument()
    assert [span.name for span in exporter.get_finished_spans()] == ["SET"]


DOCUMENT_TEXT = b"\x04b2-2 Doc b2 2 Unique passage of a cached search"
"""A cached value: no word of it may reach a log line, whatever Redis answers."""

CONVERSATION = "c0ffee-4b1d-conversation"
"""A conversation's id, a key that log lines must not show either."""


def exported_refusals(cache: TwoLayerCache) -> dict[str, float]:
    """likeopt_cache_l2_refusals_total by reason, as Prometheus scrapes it."""
    (family,) = [f for f in CacheCollector(cache).collect() if f.name == "likeopt_cache_l2_refusals"]
    return {sample.labels["reason"]: sample.value for sample in family.samples}


async def test_a_full_redis_refuses_writes_yet_l2_stays_on_for_reads_and_deletes(
    cache: TwoLayerCache, l1: L1Cache, server: ValkeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cache_svc")
    await cache.set("search", "stored before", b"hits")
    await cache.set("session", CONVERSATION, b"first turn")
    server.fill()  # at its maxmemory, noeviction: every write is refused with OOM

    assert not await cache.set("search", "q", DOCUMENT_TEXT)  # kept in L1 only
    assert await cache.set_many([CacheWrite("search", "a", DOCUMENT_TEXT), CacheWrite("search", "b", b"2")]) == 0
    assert not await cache.set("session", CONVERSATION, b"second turn")  # a chat's save of its conversation
    assert cache.stats().l2_healthy  # a refused write is not an outage
    l1.delete(("search", "stored before"))
    assert await cache.get("search", "stored before") == (b"hits", "l2")  # reads still go to Redis
    # The deletion that follows a chat: DEL works on a full Redis, so it is done, and said to be.
    assert await cache.delete("session", [CONVERSATION]) == (1, False)
    with server.client() as client:
        assert not client.exists(redis_key("session", CONVERSATION))

    assert cache.stats().l2_refusals["OOM"] == 4
    assert exported_refusals(cache) == {"OOM": 4, "MISCONF": 0, "READONLY": 0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # one line a period about refusals, none about L2 going off and on
    assert (
        "refused 1 command(s)" in warnings[0] and "SET likeopt:search:<sha256:" in warnings[0] and "OOM" in warnings[0]
    )


async def test_log_lines_about_a_full_then_a_dead_redis_show_no_cached_value_nor_key(
    cache: TwoLayerCache, server: ValkeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fill()
    assert (
        await cache.set_many([CacheWrite("search", "a", DOCUMENT_TEXT), CacheWrite("session", CONVERSATION, b"")]) == 0
    )
    assert not await cache.set("session", CONVERSATION, DOCUMENT_TEXT)
    server.stop()
    assert not await cache.set("session", CONVERSATION, DOCUMENT_TEXT)

    lines = [record.getMessage() + str(getattr(record, "fields", "")) for record in caplog.records]
    assert not [line for line in lines if "Unique" in line or CONVERSATION in line]
    assert any("refused" in line for line in lines) and any("Redis unavailable" in line for line in lines)


async def test_a_replica_refuses_writes_with_readonly_and_still_reads(tmp_path: Path) -> None:
    for side in ("primary", "replica"):  # where each keeps the snapshot of the first synchronisation
        (tmp_path / side).mkdir()
    primary = ValkeyServer("--dir", str(tmp_path / "primary"))
    primary.start()
    replica = ValkeyServer("--replicaof", "127.0.0.1", str(primary.port), "--dir", str(tmp_path / "replica"))
    replica.start()
    layer = RedisLayer(replica.url, timeout_s=1.0, retry_after_s=RETRY_AFTER_S)
    try:
        with primary.client() as client:
            client.set(redis_key("search", "shared"), b"1")
        with replica.client() as client:
            await until(lambda: client.exists(redis_key("search", "shared")) == 1)
        assert not await layer.set("search", "k", b"v", 60)
        assert layer.healthy
        assert await layer.get("search", "shared") == (b"1", None)
        assert await layer.delete("search", ["shared"]) is None  # refused too: the key is still there
        assert layer.refusals["READONLY"] == 2
    finally:
        await layer.aclose()
        replica.stop()
        primary.stop()


async def test_a_redis_that_cannot_persist_refuses_writes_with_misconf_and_still_reads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    valkey = ValkeyServer("--save", "3600 1", "--dir", str(data))
    valkey.start()
    layer = RedisLayer(valkey.url, timeout_s=1.0, retry_after_s=RETRY_AFTER_S)
    try:
        assert await layer.set("search", "k", b"v", 60)
        data.rmdir()  # its snapshot can no longer be written: stop-writes-on-bgsave-error
        with valkey.client() as client:
            client.bgsave()
            await until(lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err")
        assert not await layer.set("search", "k", b"w", 60)
        assert layer.healthy
        assert await layer.get_many("search", ["k", "absent"]) == {"k": (b"v", pytest.approx(60, abs=5))}
        assert layer.refusals["MISCONF"] == 1
    finally:
        await layer.aclose()
        with valkey.client() as client:
            client.config_set("save", "")  # or it refuses to stop, having no snapshot to leave
        valkey.stop()


def test_refusals_are_counted_by_reason_and_logged_once_a_period(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    refusals = Refusals(period_s=60, clock=lambda: clock[0])
    for _ in range(3):
        refusals.record("SET", "likeopt:search:<sha256:1>", "OOM")
    clock[0] = 59
    refusals.record("DEL", "likeopt:session:<sha256:2>", "MISCONF")
    clock[0] = 61
    refusals.record("SET", "likeopt:search:<sha256:3>", "OOM")
    assert refusals.by_reason == {"OOM": 4, "MISCONF": 1, "READONLY": 0}
    lines = [r for r in caplog.records if r.name == "cache_svc.refusals"]
    assert [r.fields["refused"] for r in lines] == [1, 4]  # the second line counts those the first did not show
    assert [r.fields["key"] for r in lines] == ["likeopt:search:<sha256:1>", "likeopt:search:<sha256:3>"]
