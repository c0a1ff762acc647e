"""A small cache of what one index version gives (a reader's rows, a filter's rows): the last few keys asked for,
all dropped together when the version moves on, as a write makes every one stale."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerVersion(Generic[K, V]):
    """Up to size values of one index version, least recently asked dropped first; thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[K, V] = OrderedDict()
        self._version = -1
        self._lock = threading.Lock()

    def get(self, key: K, version: int) -> V | None:
        """The value kept for key at version (forgetting everything of another version)."""
        with self._lock:
            if self._version != version:
                self._kept.clear()
                self._version = version
            if (kept := self._kept.get(key)) is not None:
                self._kept.move_to_end(key)
            return kept

    def put(self, key: K, version: int, value: V) -> None:
        """Keep value for key, unless the version moved on while it was worked out."""
        with self._lock:
            if self._version == version:
                self._kept[key] = value
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
