"""Prometheus view of the cache: read from TwoLayerCache.stats() at scrape time, so counting stays in one place."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cache_svc.two_layer import TwoLayerCache, lookups_of_layers
from likeopt.caching.hit_rate import CACHE_LOOKUPS


class CacheCollector(Collector):
    """Hits and misses by layer and namespace, L1 size and evictions, L2 health and latency (when there is a Redis)."""

    def __init__(self, cache: TwoLayerCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        stats = self.cache.stats()
        lookups = CounterMetricFamily(
            CACHE_LOOKUPS,
            "Cache lookups by layer, namespace and result.",
            labels=["layer", "namespace", "result"],
        )
        for (_, layer, namespace, result), count in lookups_of_layers(stats.namespaces).items():
            lookups.add_metric([layer, namespace, result], count)
        yield lookups
        yield GaugeMetricFamily(
            "likeopt_cache_hit_ratio",
            "Lookups L1 or L2 answered over lookups, all namespaces (likeopt.caching.hit_rate's rule; the near caches' "
            "hits are not cache_svc's to see: the dashboard and likeopt bench count all four layers).",
            value=stats.hit_ratio,
        )
        yield GaugeMetricFamily("likeopt_cache_l1_entries", "Entries held in L1.", value=stats.l1_entries)
        yield GaugeMetricFamily("likeopt_cache_l1_bytes", "Bytes of keys and values held in L1.", value=stats.l1_bytes)
        yield CounterMetricFamily("likeopt_cache_l1_evictions", "Entries evicted from L1.", value=stats.l1_evictions)
        if stats.l2_configured:  # without Redis there is no health to report, and no alert to raise
            yield GaugeMetricFamily(
                "likeopt_cache_l2_healthy",
                "1 when Redis answered the last call or probe (a refused write is an answer).",
                value=stats.l2_healthy,
            )
            refusals = CounterMetricFamily(
                "likeopt_cache_l2_refusals",
                "Commands Redis answered with an error, by its code: OOM (memory full), MISCONF (persistence "
                "failing), READONLY (a replica). L2 stays on for them: such a Redis still reads.",
                labels=["reason"],
            )
            for reason, count in sorted(stats.l2_refusals.items()):
                refusals.add_metric([reason], count)
            yield refusals
        if stats.l2_latency_s is not None:
            yield GaugeMetricFamily(
                "likeopt_cache_l2_latency_seconds",
                "Latency of the last successful Redis call.",
                value=stats.l2_latency_s,
            )
