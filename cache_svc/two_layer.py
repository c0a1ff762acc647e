"""The cache policy: L1 in front of L2, read-through promotion, write-through sets.

Reads try L1, then Redis; a Redis hit is copied into L1 for its remaining lifetime so the
next read of a hot key costs no network hop. Writes go to both layers. Inputs are checked
here, so every transport (gRPC today) rejects the same bad requests the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import NamedTuple

from opentelemetry import trace

from cache_svc.l1 import L1Cache
from cache_svc.l2 import L2Entry, RedisLayer
from likeopt.caching.hit_rate import Lookups, cache_lookup, hit_rate
from likeopt.runtime.contract import InvalidInput
from likeopt.runtime.telemetry import CACHE_HIT, CACHE_HITS, CACHE_KEYS, CACHE_LAYER, CACHE_NAMESPACE

MAX_NAMESPACE_CHARS = 64
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 8 * 1024 * 1024

_NAMESPACE = re.compile(rf"[a-z0-9_-]{{1,{MAX_NAMESPACE_CHARS}}}")

tracer = trace.get_tracer(__name__)


def _lookup_span(layer: str, namespace: str) -> AbstractContextManager[trace.Span]:
    """A span for one layer's lookup (the caller records the hits); Redis's own span nests in l2's."""
    return tracer.start_as_current_span(
        f"cache {layer} get", attributes={CACHE_LAYER: layer, CACHE_NAMESPACE: namespace}
    )


@dataclass
class LayerStats:
    """Lookups one layer answered (hits) and could not answer (misses)."""

    hits: int = 0
    misses: int = 0

    def record(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1


@dataclass
class NamespaceStats:
    """Per-layer counts of one namespace; an L1 miss is an L2 lookup."""

    l1: LayerStats = field(default_factory=LayerStats)
    l2: LayerStats = field(default_factory=LayerStats)


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the cache's counters and state, mirroring StatsResponse."""

    hits: int
    misses: int
    hit_ratio: float
    l1_entries: int
    l1_bytes: int
    l1_evictions: int
    l2_healthy: bool
    l2_configured: bool
    l2_latency_s: float | None
    l2_refusals: dict[str, int]
    namespaces: dict[str, NamespaceStats]


def lookups_of_layers(namespaces: dict[str, NamespaceStats]) -> Lookups:
    """The counts as likeopt.caching.hit_rate reads them, so cache_svc's ratio is computed as the dashboard's is."""
    lookups: Lookups = {}
    for name, counts in namespaces.items():
        for layer, layer_stats in (("l1", counts.l1), ("l2", counts.l2)):
            lookups[cache_lookup(layer, name, "hit")] = layer_stats.hits
            lookups[cache_lookup(layer, name, "miss")] = layer_stats.misses
    return lookups


def validate_namespace(namespace: str) -> None:
    """Reject namespaces that are empty, long, or outside [a-z0-9_-]."""
    if not _NAMESPACE.fullmatch(namespace):
        raise InvalidInput(
            f"namespace {namespace[:80]!r} must be 1-{MAX_NAMESPACE_CHARS} characters of a-z, 0-9, '_' or '-'"
        )


def validate_key(key: str) -> None:
    """Reject empty keys and keys over MAX_KEY_BYTES in UTF-8."""
    if not key:
        raise InvalidInput("key must not be empty")
    size = len(key.encode())
    if size > MAX_KEY_BYTES:
        raise InvalidInput(f"key is {size} bytes; at most {MAX_KEY_BYTES} are allowed")


def validate_value(value: bytes) -> None:
    """Reject values over MAX_VALUE_BYTES."""
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidInput(f"value is {len(value)} bytes; at most {MAX_VALUE_BYTES} are allowed")


class Deletion(NamedTuple):
    """What a deletion did: keys that existed in either layer, and whether Redis, configured, did not delete them
    (unreachable, or refusing writes: the keys may then still be there, and come back once L1 no longer holds them).
    """

    existed: int
    l2_unreached: bool


class CacheWrite(NamedTuple):
    """One entry to store: ttl_s 0 means the namespace's default."""

    namespace: str
    key: str
    value: bytes
    ttl_s: int = 0


class Lookup(NamedTuple):
    """One key's lookup: its value and the layer that had it ("l1", "l2", or "" on a miss)."""

    value: bytes | None
    layer: str
    l2_unreached: bool = False
    """A miss Redis could not confirm: configured, but down or backing off, so the key may be stored there."""


class TwoLayerCache:
    """L1 + L2 with per-namespace, per-layer hit counting. Invalid input raises InvalidInput."""

    def __init__(self, l1: L1Cache, l2: RedisLayer, default_ttl_s: int) -> None:
        if default_ttl_s <= 0:
            raise ValueError(f"default TTL must be positive, got {default_ttl_s}")
        self._l1 = l1
        self._l2 = l2
        self._default_ttl_s = default_ttl_s
        self._counts: dict[str, NamespaceStats] = {}

    async def get(self, namespace: str, key: str) -> tuple[bytes | None, str]:
        """The value and the layer that had it ("l1" or "l2"), or (None, "") on a miss."""
        found = await self.lookup(namespace, key)
        return found.value, found.layer

    async def lookup(self, namespace: str, key: str) -> Lookup:
        """The value, the layer that had it, and whether a miss went unconfirmed by an unreachable Redis."""
        validate_namespace(namespace)
        validate_key(key)
        counts = self._namespace_counts(namespace)
        with _lookup_span("l1", namespace) as span:
            value = self._l1.get((namespace, key))
            span.set_attribute(CACHE_HIT, value is not None)
        counts.l1.record(value is not None)
        if value is not None:
            return Lookup(value, "l1")
        with _lookup_span("l2", namespace) as span:
            entry, reached = await self._l2.lookup(namespace, key)
            span.set_attribute(CACHE_HIT, entry is not None)
        counts.l2.record(entry is not None)
        if entry is None:
            return Lookup(None, "", l2_unreached=not reached)
        self._promote(namespace, key, entry)
        return Lookup(entry.value, "l2")

    async def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, bytes]:
        """Values of the keys found in either layer; L1 misses go to Redis in one round trip."""
        validate_namespace(namespace)
        unique = list(dict.fromkeys(keys))
        for key in unique:
            validate_key(key)
        counts = self._namespace_counts(namespace)
        found: dict[str, bytes] = {}
        missing: list[str] = []
        with _lookup_span("l1", namespace) as span:
            for key in unique:
                value = self._l1.get((namespace, key))
                counts.l1.record(value is not None)
                if value is None:
                    missing.append(key)
                else:
                    found[key] = value
            span.set_attributes({CACHE_KEYS: len(unique), CACHE_HITS: len(found)})
        if missing:
            with _lookup_span("l2", namespace) as span:
                entries = await self._l2.get_many(namespace, missing)
                span.set_attributes({CACHE_KEYS: len(missing), CACHE_HITS: len(entries)})
            for key in missing:
                counts.l2.record(key in entries)
            for key, entry in entries.items():
                self._promote(namespace, key, entry)
                found[key] = entry.value
        return found

    async def set(self, namespace: str, key: str, value: bytes, ttl_s: int = 0) -> bool:
        """Write to both layers for ttl_s seconds (0: the default); returns whether L2 took it."""
        write = self._checked(CacheWrite(namespace, key, value, ttl_s))
        self._l1.set((namespace, key), value, write.ttl_s)
        return await self._l2.set(namespace, key, value, write.ttl_s)

    async def set_many(self, writes: Sequence[CacheWrite]) -> int:
        """Write every entry to both layers, L2 in one round trip; returns how many L2 took.

        Every entry is checked before any is written: one bad entry writes nothing.
        """
        checked = []
        for position, write in enumerate(writes):
            try:
                checked.append(self._checked(write))
            except InvalidInput as exc:
                raise InvalidInput(f"entry {position}: {exc}") from None
        for write in checked:
            self._l1.set((write.namespace, write.key), write.value, write.ttl_s)
        return await self._l2.set_many(checked) if checked else 0

    def _checked(self, write: CacheWrite) -> CacheWrite:
        """The write with its TTL resolved; InvalidInput if any part is invalid."""
        validate_namespace(write.namespace)
        validate_key(write.key)
        validate_value(write.value)
        if write.ttl_s < 0:
            raise InvalidInput(f"ttl_seconds must not be negative, got {write.ttl_s}")
        return write._replace(ttl_s=write.ttl_s or self._default_ttl_s)

    async def delete(self, namespace: str, keys: Sequence[str], within_s: float = 0.0) -> Deletion:
        """Remove keys from both layers: how many existed in either, and whether Redis did not delete them though
        asked again until within_s had passed (RedisLayer.delete)."""
        validate_namespace(namespace)
        unique = list(dict.fromkeys(keys))
        for key in unique:
            validate_key(key)
        in_l1 = {key for key in unique if self._l1.delete((namespace, key))}
        in_l2 = await self._l2.delete(namespace, unique, within_s) if unique else set()
        return Deletion(existed=len(in_l1 | (in_l2 or set())), l2_unreached=in_l2 is None)

    def stats(self) -> CacheStats:
        """A snapshot; the per-namespace counts are copies, safe to keep."""
        namespaces = {
            name: NamespaceStats(LayerStats(c.l1.hits, c.l1.misses), LayerStats(c.l2.hits, c.l2.misses))
            for name, c in self._counts.items()
        }
        overall = hit_rate({}, {"cache_svc": lookups_of_layers(namespaces)})  # the dashboard's rule, all namespaces
        return CacheStats(
            hits=overall.hits,
            misses=overall.misses,
            hit_ratio=overall.rate or 0.0,
            l1_entries=self._l1.entries,
            l1_bytes=self._l1.bytes,
            l1_evictions=self._l1.evictions,
            l2_healthy=self._l2.healthy,
            l2_configured=self._l2.configured,
            l2_latency_s=self._l2.latency_s,
            l2_refusals=self._l2.refusals,
            namespaces=namespaces,
        )

    def _namespace_counts(self, namespace: str) -> NamespaceStats:
        return self._counts.setdefault(namespace, NamespaceStats())

    def _promote(self, namespace: str, key: str, entry: L2Entry) -> None:
        """Copy an L2 hit into L1 for its remaining lifetime (the default when unknown)."""
        self._l1.set((namespace, key), entry.value, entry.ttl_s or self._default_ttl_s)
