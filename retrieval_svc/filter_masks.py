"""The rows of the documents a metadata filter matches, kept per index version.

Finding them walks every document's metadata (about 7 ms a search at 10,000 documents, 70 at 100,000), and an
application sends the same few filters (a project, a language) again and again: each is worked out once per index
version and kept for the next searches, the last KEPT of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from retrieval_svc.access import RowMask

KEPT = 64
"""Filters whose rows are kept; each costs one bit per chunk row."""

Filters = tuple[tuple[str, str], ...]


class FilterMasks:
    """Rows per filter, for one index version at a time (a write makes every kept one stale)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[Filters, RowMask] = OrderedDict()
        self._version = -1
        self._lock = threading.Lock()

    def mask(self, filters: Filters, version: int, build: Callable[[], RowMask]) -> RowMask:
        """The rows filters match at version: kept ones, else build()'s (run outside the lock), then kept."""
        key = tuple(sorted(filters))  # the same conditions in another order are the same filter
        with self._lock:
            if self._version != version:
                self._kept.clear()
                self._version = version
            if (kept := self._kept.get(key)) is not None:
                self._kept.move_to_end(key)
                return kept
        built = build()
        with self._lock:
            if self._version == version:
                self._kept[key] = built
                while len(self._kept) > KEPT:
                    self._kept.popitem(last=False)
        return built
