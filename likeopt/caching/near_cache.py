"""A small in-process cache whose entries are valid for one index version.

cache_svc is the shared cache; this one sits in front of it inside the process that
answers, so a repeated search costs a dictionary lookup instead of one or two gRPC hops
(benchmarks/README.md, "Through the mesh"). An entry is served only while its index
version is the current one: a write makes every older entry unreachable at once, and
entries of older versions are dropped as the first newer one arrives. Values that do
not depend on the index (query embeddings) are all stored under one constant version.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter

from likeopt.caching.hit_rate import NEAR_LOOKUPS
from likeopt.runtime.config import setting_default

V = TypeVar("V")

LOOKUPS = Counter(NEAR_LOOKUPS, "Lookups in a process's own near cache, by what it holds.", ["name", "result"])


class VersionedLRU(Generic[V]):
    """Least-recently-used entries bounded by count and bytes, all of one index version."""

    def __init__(
        self,
        name: str,
        max_entries: int = setting_default("near_cache_entries"),
        max_bytes: int = setting_default("near_cache_bytes"),
    ) -> None:
        self._hit = LOOKUPS.labels(name, "hit")
        self._miss = LOOKUPS.labels(name, "miss")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.version: int | None = None
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, version: int | None) -> V | None:
        """The value stored under key for this version, or None."""
        entry = self._entries.get(key) if version is not None and version == self.version else None
        if entry is None:
            self._miss.inc()
            return None
        self._hit.inc()
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, version: int, value: V, size: int) -> None:
        """Store value (about size bytes) for version; a newer version first empties the cache, an older is ignored."""
        if self.version is None or version > self.version:
            self.clear(version)
        if version != self.version or size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self, version: int | None) -> None:
        """Forget every entry; only version's may be stored from now on (None: none at all)."""
        self._entries.clear()
        self.bytes = 0
        self.version = version
