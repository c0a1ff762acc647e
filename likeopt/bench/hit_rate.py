"""The cache hit rate of a run, from the counters the mesh's own processes export.

A search can be answered by four caches, each asked only when the one before it missed:
the gateway's near cache, retrieval_svc's near cache, then cache_svc's L1 and L2. So
every search request is one lookup in the gateway, and a hit anywhere on that path is
a hit. Requests that are neither (coalesced onto another's computation by single-flight)
count as misses. Chat's first lookup is the answer cache in cache_svc.

Counters are read before and after the run and only the difference is used, so the
figure covers the run and nothing else.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Lookups = dict[tuple[str, ...], float]
"""("cache", layer, namespace, result) from cache_svc; ("near", name, result) from a near cache -> count."""
Readings = dict[str, Lookups]
"""Lookups by the process they were read from: gateway, retrieval_svc, cache_svc."""


def parse_lookups(text: str) -> Lookups:
    """The lookup counters of a Prometheus exposition."""
    counts: Lookups = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "likeopt_cache_lookups_total":
                counts[("cache", labels["layer"], labels["namespace"], labels["result"])] = sample.value
            elif sample.name == "likeopt_near_cache_lookups_total":
                counts[("near", labels["name"], labels["result"])] = sample.value
    return counts


async def read_lookups(session: aiohttp.ClientSession, urls: dict[str, list[str]]) -> Readings:
    """Every source's counters, summed over its replicas; a source that cannot be read is left out (and said)."""
    readings: Readings = {}
    for source, addresses in urls.items():
        for url in addresses:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as reply:
                    reply.raise_for_status()
                    counts = parse_lookups(await reply.text())
            except (aiohttp.ClientError, TimeoutError) as exc:
                print(f"likeopt bench: cannot read {source} metrics at {url}: {exc}", file=sys.stderr)
                continue
            total = readings.setdefault(source, {})
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
    return readings


@dataclass(frozen=True)
class HitRate:
    """Hits over lookups between two readings, and which cache gave the hits."""

    hits: int
    lookups: int
    by_layer: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None


def hit_rate(before: Readings, after: Readings, namespace: str) -> HitRate:
    """The run's hit rate for requests whose first lookup is in namespace (see the module doc)."""

    def delta(source: str, *key: str) -> int:
        return round(after.get(source, {}).get(key, 0) - before.get(source, {}).get(key, 0))

    shared_hits = delta("cache_svc", "cache", "l1", namespace, "hit") + delta(
        "cache_svc", "cache", "l2", namespace, "hit"
    )
    shared_lookups = delta("cache_svc", "cache", "l1", namespace, "hit") + delta(
        "cache_svc", "cache", "l1", namespace, "miss"
    )
    gateway_lookups = delta("gateway", "near", "search", "hit") + delta("gateway", "near", "search", "miss")
    if namespace != "search" or gateway_lookups == 0:
        return HitRate(shared_hits, shared_lookups, {"cache_svc": shared_hits})
    layers = {
        "gateway": delta("gateway", "near", "search", "hit"),
        "retrieval_svc": delta("retrieval_svc", "near", "search", "hit"),
        "cache_svc": shared_hits,
    }
    return HitRate(sum(layers.values()), gateway_lookups, layers)
