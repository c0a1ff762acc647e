"""The cache hit rate, computed one way for the dashboard, ``likeopt bench`` and cache_svc's own figures.

A search can be answered by four caches, each asked only when the one before it missed:
the gateway's near cache, retrieval_svc's near cache, then cache_svc's L1 and L2. So
every REST search is one lookup in the gateway, and a hit anywhere on that path is a
hit. Searches that start at retrieval_svc (a chat's passages, gRPC and MCP clients) are
requests too: its lookups beyond the gateway's misses. Requests that are neither
(coalesced onto another's computation by single-flight) count as misses. In the answer
namespace a chat counts once, at its lookup of the whole answer in cache_svc; every
namespace counts that way when no near cache counted a lookup (near caches off, or
cache_svc on its own).

The figures are differences of the processes' own lookup counters between two readings:
the bench reads before and after its run; the dashboard and cache_svc read from zero,
which is since each process started. Computing it in one place is what keeps the
dashboard from showing "0 %" while the near caches answer almost every repeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

Lookups = dict[tuple[str, ...], float]
"""("cache", layer, namespace, result) from cache_svc; ("near", name, result) from a near cache -> count."""
Readings = dict[str, Lookups]
"""Lookups by the process they were read from: gateway, retrieval_svc, cache_svc."""

CACHE_LOOKUPS = "likeopt_cache_lookups_total"
NEAR_LOOKUPS = "likeopt_near_cache_lookups_total"


def cache_lookup(layer: str, namespace: str, result: str) -> tuple[str, ...]:
    """The key of one of cache_svc's counters (layer "l1" or "l2", result "hit" or "miss")."""
    return ("cache", layer, namespace, result)


def lookups_of(families: Iterable[Metric]) -> Lookups:
    """The lookup counters among metric families, whether parsed from text or collected in process."""
    counts: Lookups = {}
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            if sample.name == CACHE_LOOKUPS:
                counts[cache_lookup(labels["layer"], labels["namespace"], labels["result"])] = sample.value
            elif sample.name == NEAR_LOOKUPS:
                counts[("near", labels["name"], labels["result"])] = sample.value
    return counts


def parse_lookups(text: str) -> Lookups:
    """The lookup counters of a Prometheus exposition."""
    return lookups_of(text_string_to_metric_families(text))


@dataclass(frozen=True)
class HitRate:
    """Hits over lookups between two readings, and which cache gave the hits."""

    hits: int
    lookups: int
    by_layer: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        """None, not 0, when nothing was looked up: no traffic is not a cold cache."""
        return self.hits / self.lookups if self.lookups else None

    @property
    def misses(self) -> int:
        return self.lookups - self.hits


def _total(readings: Readings, source: str, key: tuple[str, ...]) -> float:
    """The sum of a source's counters matching key, where "*" matches any label value."""
    return sum(
        value
        for counted, value in readings.get(source, {}).items()
        if len(counted) == len(key) and all(want in ("*", got) for want, got in zip(key, counted, strict=True))
    )


def hit_rate(before: Readings, after: Readings, namespace: str = "*") -> HitRate:
    """The hit rate between two readings for requests whose first lookup is in namespace ("*": any)."""

    def delta(source: str, *key: str) -> int:
        return round(_total(after, source, key) - _total(before, source, key))

    shared_hits = delta("cache_svc", *cache_lookup("*", namespace, "hit"))
    shared_lookups = delta("cache_svc", *cache_lookup("l1", namespace, "hit")) + delta(
        "cache_svc", *cache_lookup("l1", namespace, "miss")
    )
    gateway_hits = delta("gateway", "near", "search", "hit")
    gateway_lookups = gateway_hits + delta("gateway", "near", "search", "miss")
    near_hits = delta("retrieval_svc", "near", "search", "hit")
    near_lookups = near_hits + delta("retrieval_svc", "near", "search", "miss")
    if namespace != "search" or gateway_lookups + near_lookups == 0:
        return HitRate(shared_hits, shared_lookups, {"cache_svc": shared_hits})
    layers = {"gateway": gateway_hits, "retrieval_svc": near_hits, "cache_svc": shared_hits}
    requests = max(gateway_lookups, gateway_hits + (near_lookups or shared_lookups))
    return HitRate(sum(layers.values()), requests, layers)
