"""Which chunks a reader may read in Milvus: the filter of its access classes, kept per index version.

A reader's classes come from the class table held in process (retrieval_svc.milvus_class_table); past its size,
from Milvus (``array_contains_any`` over the class collection). A class never changes its keys (changing a
document's access moves its chunks to another class), so a list read at an older version can only miss a newer
document, never show one it should not. A reader who may read more than ``MAX_LISTED_CLASSES`` classes gets
``array_contains_any`` on the chunks instead, which Milvus evaluates row by row (slow on milvus-lite).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access, reader_keys
from retrieval_svc.milvus_access import CLASS_FIELD, NOTHING, READERS_FIELD, access_class, quoted_list
from retrieval_svc.milvus_class_table import ClassTable

MAX_LISTED_CLASSES = 1000
"""Past this many readable classes a reader's filter names its keys instead of the classes."""
READER_FILTERS = 1024
"""Readers whose filters are kept for the current index version."""


class AccessClasses:
    """The class collection of one chunk collection, and each reader's filter per index version."""

    def __init__(
        self, call: Callable[..., Any], collection: str, quote: Callable[[str], str], consistency_level: str
    ) -> None:
        self._call = call
        self.collection = f"{collection}_access"
        self._quote = quote
        self._consistency = consistency_level
        self._table = ClassTable(call, self.collection, consistency_level)
        self._recorded: set[int] = set()
        self._filters: OrderedDict[Reader, str | None] = OrderedDict()
        self._filters_version = -1
        self._lock = threading.Lock()
        """Searches run on several threads; the cache is shared."""

    def record(self, accesses: Iterable[Access], timeout_s: float) -> None:
        """Store the classes of documents about to be written (before their chunks)."""
        rows = {access_class(a): a for a in accesses}
        new = [
            {CLASS_FIELD: number, READERS_FIELD: access.keys(), "vec": [0.0, 0.0]}
            for number, access in rows.items()
            if number not in self._recorded
        ]
        if new:
            self._call("upsert", self.collection, new, timeout=timeout_s)
            self._recorded.update(row[CLASS_FIELD] for row in new)

    def condition(self, reader: Reader, version: int, timeout_s: float) -> str | None:
        """The chunk filter of what reader may read at this version; NOTHING (None) when that is nothing."""
        with self._lock:
            if version != self._filters_version:
                self._filters.clear()
                self._filters_version = version
            if reader in self._filters:
                self._filters.move_to_end(reader)
                return self._filters[reader]
        keys = reader_keys(reader)
        classes = self._table.classes(keys, version, timeout_s)
        if classes is None:
            classes = self.asked_of_milvus(keys, timeout_s)
        found = self._filter(keys, classes)
        with self._lock:
            if version == self._filters_version:
                self._filters[reader] = found
                while len(self._filters) > READER_FILTERS:
                    self._filters.popitem(last=False)
        return found

    def asked_of_milvus(self, keys: list[str], timeout_s: float) -> set[int]:
        """The classes any of keys opens, asked of Milvus (at most one more than MAX_LISTED_CLASSES)."""
        rows = self._call(
            "query",
            self.collection,
            filter=f"array_contains_any({READERS_FIELD}, {quoted_list(keys, self._quote)})",
            output_fields=[CLASS_FIELD],
            limit=MAX_LISTED_CLASSES + 1,
            consistency_level=self._consistency,
            timeout=timeout_s,
        )
        return {int(row[CLASS_FIELD]) for row in rows}

    def _filter(self, keys: list[str], classes: set[int]) -> str | None:
        if not classes:
            return NOTHING
        if len(classes) > MAX_LISTED_CLASSES:
            return f"array_contains_any({READERS_FIELD}, {quoted_list(keys, self._quote)})"
        return f"{CLASS_FIELD} in [{', '.join(str(c) for c in sorted(classes))}]"
