"""The one hit rate (likeopt.caching.hit_rate): lookup counters of the mesh, every cache on a search's path counted.

The bench, the dashboard and cache_svc's own ratio all compute it here.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from likeopt.caching.hit_rate import hit_rate, lookups_of, parse_lookups

CACHE_SVC = """\
# HELP likeopt_cache_lookups_total Cache lookups by layer, namespace and result.
# TYPE likeopt_cache_lookups_total counter
likeopt_cache_lookups_total{layer="l1",namespace="search",result="hit"} 90.0
likeopt_cache_lookups_total{layer="l1",namespace="search",result="miss"} 30.0
likeopt_cache_lookups_total{layer="l2",namespace="search",result="hit"} 10.0
likeopt_cache_lookups_total{layer="l2",namespace="search",result="miss"} 20.0
likeopt_cache_lookups_total{layer="l1",namespace="embedding",result="hit"} 5.0
# HELP likeopt_cache_hit_ratio Hits over lookups, both layers.
# TYPE likeopt_cache_hit_ratio gauge
likeopt_cache_hit_ratio 0.6
"""
NEAR = """\
# HELP likeopt_near_cache_lookups_total Lookups in a process's own near cache of search results.
# TYPE likeopt_near_cache_lookups_total counter
likeopt_near_cache_lookups_total{name="search",result="hit"} 7.0
likeopt_near_cache_lookups_total{name="search",result="miss"} 3.0
likeopt_near_cache_lookups_total{name="embedding",result="hit"} 2.0
"""


def test_counters_are_read_by_layer_namespace_and_result() -> None:
    counts = parse_lookups(CACHE_SVC + NEAR)
    assert counts[("cache", "l1", "search", "hit")] == 90
    assert counts[("cache", "l1", "embedding", "hit")] == 5
    assert counts[("near", "search", "hit")] == 7 and counts[("near", "search", "miss")] == 3
    assert counts[("near", "embedding", "hit")] == 2
    assert len(counts) == 8


def test_without_near_caches_the_rate_is_cache_svcs_first_layer_lookups_over_the_run() -> None:
    before = {"cache_svc": parse_lookups(CACHE_SVC)}
    after = {"cache_svc": dict(before["cache_svc"])}
    shared = after["cache_svc"]
    shared[("cache", "l1", "search", "hit")] += 70  # 70 L1 hits
    shared[("cache", "l1", "search", "miss")] += 30  # 30 L1 misses, of which L2 answered 10
    shared[("cache", "l2", "search", "hit")] += 10
    shared[("cache", "l2", "search", "miss")] += 20
    shared[("cache", "l1", "embedding", "miss")] = 20  # lookups after a miss: not requests, not counted
    rate = hit_rate(before, after, "search")
    assert (rate.hits, rate.lookups, rate.by_layer) == (80, 100, {"cache_svc": 80})
    assert rate.rate == pytest.approx(0.8)
    assert hit_rate(before, before, "search").rate is None


def test_every_cache_on_the_path_counts_and_each_request_is_one_gateway_lookup() -> None:
    zero = {"gateway": {}, "retrieval_svc": {}, "cache_svc": {}}
    after = {
        "gateway": {("near", "search", "hit"): 900, ("near", "search", "miss"): 100},
        "retrieval_svc": {
            ("near", "search", "hit"): 20,
            ("near", "search", "miss"): 80,
            ("near", "embedding", "hit"): 9,
        },
        "cache_svc": {("cache", "l1", "search", "hit"): 30, ("cache", "l1", "search", "miss"): 40},
    }
    rate = hit_rate(zero, after, "search")
    assert (rate.hits, rate.lookups) == (950, 1000)  # 10 coalesced requests asked no cache: misses
    assert rate.by_layer == {"gateway": 900, "retrieval_svc": 20, "cache_svc": 30}
    answers = hit_rate(zero, {**after, "cache_svc": {("cache", "l1", "answer", "hit"): 3}}, "answer")
    assert (answers.hits, answers.lookups) == (3, 3)  # chat starts at the answer cache, not the near caches


def test_counters_collected_in_process_read_as_the_scraped_ones() -> None:
    registry = CollectorRegistry()
    near = Counter("likeopt_near_cache_lookups", "Near-cache lookups.", ["name", "result"], registry=registry)
    near.labels("search", "hit").inc(7)
    near.labels("search", "miss").inc(3)
    assert lookups_of(registry.collect()) == {("near", "search", "hit"): 7, ("near", "search", "miss"): 3}


def test_every_namespace_together_is_cache_svcs_own_ratio_and_misses_are_the_rest() -> None:
    counts = parse_lookups(CACHE_SVC)  # search: 90 + 10 of 120; embedding: 5 of 5
    overall = hit_rate({}, {"cache_svc": counts})
    assert (overall.hits, overall.lookups, overall.misses) == (105, 125, 20)
    assert overall.rate == pytest.approx(105 / 125)
    assert hit_rate({}, {"cache_svc": counts}, "search").rate == pytest.approx(100 / 120)


def test_searches_that_start_at_retrieval_svc_are_requests_too() -> None:
    """A chat's passages and gRPC clients search retrieval_svc without passing the gateway's near cache: their
    hits must not be counted over the gateway's lookups alone (the dashboard showed 227 %)."""
    after = {
        "gateway": {("near", "search", "hit"): 5, ("near", "search", "miss"): 5},
        "retrieval_svc": {("near", "search", "hit"): 40, ("near", "search", "miss"): 25},  # 5 + 60 from elsewhere
        "cache_svc": {("cache", "l1", "search", "hit"): 20, ("cache", "l1", "search", "miss"): 5},
    }
    rate = hit_rate({}, after, "search")
    assert (rate.hits, rate.lookups) == (65, 70)
    only_chat = hit_rate({}, {**after, "gateway": {}}, "search")
    assert (only_chat.hits, only_chat.lookups) == (60, 65)
