"""Every access class of a Milvus collection held in process, so that a reader's classes are set lookups.

Asking Milvus for each reader's classes (``array_contains_any`` over the class collection) cost every reader
one query after every write: on milvus-lite, which reads ARRAY fields row by row, 40 ms for a reader of one
group and 1.4 s for one of 1,000. A class is named by a digest of its keys, so its row never changes and a
class read once stays true; the collection only grows. One ``count(*)`` per index version tells whether any
class came, and only then are the new ones read: the cost moves from every reader to every new access list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from retrieval_svc.milvus_access import CLASS_FIELD, READERS_FIELD

HELD_CLASSES = 16384
"""Most classes held: what one Milvus query returns (offset + limit). Past it each reader asks Milvus."""
READ_BATCH = 1000
"""New classes read per query."""


class ClassTable:
    """The classes of ``collection`` by reader key, as of the last index version asked for."""

    def __init__(self, call: Callable[..., Any], collection: str, consistency_level: str) -> None:
        self._call = call
        self._collection = collection
        self._consistency = consistency_level
        self._by_key: dict[str, list[int]] | None = {}
        """Each key's classes; None while the collection holds more than HELD_CLASSES."""
        self._known: set[int] = set()
        self._version = -1
        self._lock = threading.Lock()
        """Searches run on several threads: the first at a new version reads, the others wait for it."""

    def classes(self, keys: Iterable[str], version: int, timeout_s: float) -> set[int] | None:
        """The classes any of keys opens at version; None when the table is not held (ask Milvus instead)."""
        with self._lock:
            if version != self._version:
                self._follow(timeout_s)
                self._version = version
            if self._by_key is None:
                return None
            found: set[int] = set()
            for key in keys:
                found.update(self._by_key.get(key, ()))
            return found

    def _follow(self, timeout_s: float) -> None:
        """Read the classes that came since the last read, if their number moved."""
        count = self._count(timeout_s)
        if count > HELD_CLASSES:
            self._by_key, self._known = None, set()
            return
        if self._by_key is None:
            self._by_key = {}
        if count == len(self._known):
            return
        present = {int(row[CLASS_FIELD]) for row in self._read("", [CLASS_FIELD], HELD_CLASSES, timeout_s)}
        if not present >= self._known:  # another Milvus answers at this address: start again
            self._by_key, self._known = {}, set()
        self._read_new(self._by_key, sorted(present - self._known), timeout_s)

    def _read_new(self, by_key: dict[str, list[int]], new: list[int], timeout_s: float) -> None:
        """Add the rows of classes not read yet (only theirs: a class read once never changes)."""
        for start in range(0, len(new), READ_BATCH):
            batch = new[start : start + READ_BATCH]
            where = f"{CLASS_FIELD} in [{', '.join(map(str, batch))}]"
            for row in self._read(where, [CLASS_FIELD, READERS_FIELD], len(batch), timeout_s):
                number = int(row[CLASS_FIELD])
                self._known.add(number)
                for key in row[READERS_FIELD] or ():
                    by_key.setdefault(key, []).append(number)

    def _read(self, where: str, fields: list[str], limit: int, timeout_s: float) -> list[dict[str, Any]]:
        return self._call(
            "query",
            self._collection,
            filter=where,
            output_fields=fields,
            limit=limit,
            consistency_level=self._consistency,
            timeout=timeout_s,
        )

    def _count(self, timeout_s: float) -> int:
        rows = self._call(
            "query",
            self._collection,
            filter="",
            output_fields=["count(*)"],
            consistency_level=self._consistency,
            timeout=timeout_s,
        )
        return int(rows[0]["count(*)"])
