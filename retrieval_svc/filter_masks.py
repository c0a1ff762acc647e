"""The rows of the documents a metadata filter matches, kept per index version.

Finding them walks every document's metadata (about 7 ms a search at 10,000 documents, 70 at 100,000), and an
application sends the same few filters (a project, a language) again and again: each is worked out once per index
version and kept for the next searches, the last KEPT of them.
"""

from __future__ import annotations

from collections.abc import Callable

from retrieval_svc.access import RowMask
from retrieval_svc.per_version import PerVersion

KEPT = 64
"""Filters whose rows are kept; each costs one bit per chunk row."""

Filters = tuple[tuple[str, str], ...]


class FilterMasks:
    """Rows per filter, for one index version at a time (a write makes every kept one stale)."""

    def __init__(self) -> None:
        self._kept: PerVersion[Filters, RowMask] = PerVersion(KEPT)

    def mask(self, filters: Filters, version: int, build: Callable[[], RowMask]) -> RowMask:
        """The rows filters match at version: kept ones, else build()'s, then kept."""
        key = tuple(sorted(filters))  # the same conditions in another order are the same filter
        if (kept := self._kept.get(key, version)) is not None:
            return kept
        built = build()
        self._kept.put(key, version, built)
        return built
