"""The dashboard's cache figures: all four caches on a search's path, and L2 health as cache_svc last saw it."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import httpx
import pytest

import gateway.dashboard as dashboard_module
from gateway.dashboard import CpuMeter, Dashboard, search_hit_rate
from likeopt.caching.hit_rate import parse_lookups
from likeopt.v1 import cache_pb2, retrieval_pb2

# 30 searches of 7 questions: the gateway's near cache answered 23 repeats, so retrieval_svc
# saw 7 searches and cache_svc 7 lookups, all misses. cache_svc alone says "0 hits, 7 misses".
RETRIEVAL = """\
# TYPE likeopt_near_cache_lookups_total counter
likeopt_near_cache_lookups_total{name="search",result="miss"} 7.0
likeopt_near_cache_lookups_total{name="embedding",result="miss"} 7.0
process_resident_memory_bytes 1.048576e+08
"""
CACHE = """\
# TYPE likeopt_cache_lookups_total counter
likeopt_cache_lookups_total{layer="l1",namespace="search",result="miss"} 7.0
likeopt_cache_lookups_total{layer="l2",namespace="search",result="miss"} 7.0
likeopt_cache_lookups_total{layer="l1",namespace="embedding",result="miss"} 7.0
"""
GATEWAY = {("near", "search", "hit"): 23.0, ("near", "search", "miss"): 7.0}


def test_the_hit_rate_counts_the_near_caches_that_answer_most_repeats() -> None:
    figures = search_hit_rate({"retrieval_svc": RETRIEVAL, "cache_svc": CACHE, "generation_svc": ""}, GATEWAY)
    assert figures == {
        "hit_ratio": pytest.approx(23 / 30),
        "hits": 23,
        "misses": 7,
        "by_layer": {"gateway": 23, "retrieval_svc": 0, "cache_svc": 0},
    }
    assert parse_lookups(CACHE)  # the same counters the bench reads


def test_cpu_is_unknown_not_negative_after_a_process_restarts() -> None:
    """A restarted service's CPU counter begins again: the difference showed as -204 %."""
    meter = CpuMeter()
    assert meter.percent("retrieval_svc", 40.0) is None  # nothing to compare with yet
    meter.last["retrieval_svc"] = (meter.last["retrieval_svc"][0] - 1.0, 40.0)
    assert meter.percent("retrieval_svc", 40.5) == pytest.approx(50, rel=0.05)
    meter.last["retrieval_svc"] = (meter.last["retrieval_svc"][0] - 1.0, 40.5)
    assert meter.percent("retrieval_svc", 0.3) is None  # restarted
    meter.last["retrieval_svc"] = (meter.last["retrieval_svc"][0] - 1.0, 0.3)
    assert meter.percent("retrieval_svc", 0.8) == pytest.approx(50, rel=0.05)


def test_without_traffic_the_rate_is_unknown_not_zero() -> None:
    assert search_hit_rate({}, {})["hit_ratio"] is None


class FakeCache:
    """cache_svc's Stats over gRPC: answers with the L2 state it holds (healthy or not, Redis or none), or fails."""

    def __init__(self, l2_healthy: bool | None, l2_configured: bool = True) -> None:
        self.l2_healthy = l2_healthy
        self.l2_configured = l2_configured

    async def Stats(self, request: cache_pb2.StatsRequest, **options: object) -> cache_pb2.StatsResponse:
        if self.l2_healthy is None:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())
        return cache_pb2.StatsResponse(hits=0, misses=7, l2_healthy=self.l2_healthy, l2_configured=self.l2_configured)


class FakeRetrieval:
    """retrieval_svc's GetIndexStatus: counts of what the caller named in the metadata may read."""

    def __init__(self) -> None:
        self.callers: list[object] = []

    async def GetIndexStatus(self, request: object, metadata: object = (), **options: object) -> object:
        self.callers.append(metadata)
        return retrieval_pb2.IndexStatus(documents=3, chunks=5)


@pytest.mark.parametrize(("l2_healthy", "l2_configured"), [(True, True), (False, True), (None, None), (False, False)])
async def test_a_snapshot_scrapes_each_service_once_and_reports_l2_health(
    l2_healthy: bool | None, l2_configured: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway's own counters are this process's: searches other tests made would count here.
    monkeypatch.setattr(dashboard_module, "lookups_of", lambda families: {})
    scraped: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        scraped.append(request.url.host)
        return httpx.Response(200, text={"retrieval": RETRIEVAL, "cache": CACHE}[request.url.host])

    urls = {"retrieval_svc": "http://retrieval/metrics", "cache_svc": "http://cache/metrics"}
    retrieval = FakeRetrieval()
    upstreams = SimpleNamespace(cache=FakeCache(l2_healthy, bool(l2_configured)), retrieval_writer=retrieval)
    dashboard = Dashboard(upstreams, urls)  # type: ignore[arg-type]
    dashboard.http = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    caller = (("x-likeopt-principal", "e30"),)
    try:
        board = await dashboard.snapshot(caller)
    finally:
        await dashboard.close()
    assert sorted(scraped) == ["cache", "retrieval"]
    assert board["cache"]["l2_healthy"] is l2_healthy
    assert board["cache"]["l2_configured"] is l2_configured  # "Redis not used", not "Redis down"
    assert board["cache"]["by_layer"]["cache_svc"] == 0 and board["cache"]["misses"] >= 7
    assert board["services"]["retrieval_svc"]["rss_mb"] == 100.0
    assert board["index"] == {"documents": 3, "chunks": 5} and retrieval.callers == [caller]  # the caller's counts
