"""L1: the in-process layer, an LRU with per-entry TTL bounded by entry count and bytes.

It answers the hottest keys without a network hop; the bounds keep a busy process from
growing without limit, and the clock is injectable so tests can expire entries instantly.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

Key = tuple[str, str]
"""An L1 key: (namespace, key)."""


class _Entry(NamedTuple):
    value: bytes
    expires_at: float
    size: int


def _size(key: Key, value: bytes) -> int:
    """Bytes an entry is charged: its key (both parts, UTF-8) and its value."""
    namespace, name = key
    return len(namespace.encode()) + len(name.encode()) + len(value)


class L1Cache:
    """Least-recently-used cache with TTL; every operation is O(1) (amortised for set)."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[Key, _Entry] = OrderedDict()
        self._bytes = 0
        self._evictions = 0

    @property
    def entries(self) -> int:
        """Entries held, including expired ones not yet touched."""
        return len(self._data)

    @property
    def bytes(self) -> int:
        """Bytes of keys and values held."""
        return self._bytes

    @property
    def evictions(self) -> int:
        """Entries dropped to stay within the limits (expiry is not eviction)."""
        return self._evictions

    def get(self, key: Key) -> bytes | None:
        """The live value, marked most recently used; an expired entry is dropped."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._remove(key)
            return None
        self._data.move_to_end(key)
        return entry.value

    def set(self, key: Key, value: bytes, ttl_s: float) -> bool:
        """Store for ttl_s seconds, evicting the least recently used to make room.

        A value that could never fit is not stored, and any older value of the key is
        dropped so L1 never serves it stale. Returns whether the value was stored.
        """
        self._remove(key)
        size = _size(key, value)
        if ttl_s <= 0 or size > self._max_bytes or self._max_entries <= 0:
            return False
        self._data[key] = _Entry(value, self._clock() + ttl_s, size)
        self._bytes += size
        self._evict()
        return True

    def delete(self, key: Key) -> bool:
        """Remove a key; returns whether a live (unexpired) entry was there."""
        entry = self._remove(key)
        return entry is not None and entry.expires_at > self._clock()

    def clear(self) -> None:
        """Drop every entry (not counted as evictions)."""
        self._data.clear()
        self._bytes = 0

    def _remove(self, key: Key) -> _Entry | None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
        return entry

    def _evict(self) -> None:
        """Drop least recently used entries until both limits hold."""
        while len(self._data) > self._max_entries or self._bytes > self._max_bytes:
            _, entry = self._data.popitem(last=False)
            self._bytes -= entry.size
            self._evictions += 1
