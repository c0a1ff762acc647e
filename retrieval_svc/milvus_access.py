"""Access lists in Milvus: each chunk row carries its document's access class, and a small collection maps each
class to the reader keys that open it.

Why not filter chunks with ``array_contains_any(readers, <the reader's keys>)`` alone: milvus-lite has no index
on ARRAY fields and evaluates that expression row by row. With the 200-odd keys of a reader in 100 groups a
search of 2,000 chunks took 186 ms against 6 ms unfiltered (5 ms with one key per row and an integer array:
99 ms). A scalar ``in`` on an indexed field costs almost nothing (5.4 ms). So:

* A document's *access class* is a digest of its sorted reader keys (retrieval_svc.access), an INT64 every
  replica computes alike, stored on each chunk row (``access_class``, INVERTED index) beside the keys
  themselves (``readers``, ARRAY).
* ``<collection>_access`` holds one row per class with its keys. A writer upserts a class's row *before* the
  chunks that use it, and before the version moves.
* A reader's filter is ``access_class in [...]``: the classes whose keys meet its own, read from that small
  collection once per index version and reader. A class never changes its keys (changing a document's access
  moves its chunks to another class), so a list read at an older version can only miss a newer document,
  never show one it should not. A reader who may read more than ``MAX_LISTED_CLASSES`` classes gets
  ``array_contains_any`` on the chunks instead: slower on milvus-lite, served from its index on a real Milvus.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from pymilvus import DataType, MilvusClient

from likeopt.runtime.contract import MAX_ACCESS_READERS
from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access, reader_keys

CLASS_FIELD, READERS_FIELD = "access_class", "readers"
MAX_KEY_BYTES = 4096
"""A reader key's largest size in UTF-8 bytes (three names of at most 256 characters, JSON-quoted)."""
MAX_LISTED_CLASSES = 1000
"""Past this many readable classes a reader's filter names its keys instead of the classes."""
READER_FILTERS = 1024
"""Readers whose filters are kept for the current index version."""
NOTHING: None = None
"""The filter of a reader who may read nothing: callers answer at once, without asking Milvus."""


def access_class(access: Access) -> int:
    """The class of an access list: the first 8 bytes of a digest of its keys, as a signed INT64."""
    digest = hashlib.blake2b("\n".join(access.keys()).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def quoted_list(values: Iterable[str], quote: Callable[[str], str]) -> str:
    return "[" + ", ".join(quote(v) for v in values) + "]"


def add_access_fields(schema: Any) -> None:
    """The chunk collection's access fields."""
    schema.add_field(CLASS_FIELD, DataType.INT64)
    schema.add_field(
        READERS_FIELD,
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=MAX_ACCESS_READERS,
        max_length=MAX_KEY_BYTES,
    )


def access_schema() -> Any:
    """One row per access class (Milvus wants a vector field in every collection: a 2-dimensional dummy)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(CLASS_FIELD, DataType.INT64, is_primary=True)
    schema.add_field(
        READERS_FIELD,
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=MAX_ACCESS_READERS,
        max_length=MAX_KEY_BYTES,
    )
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    return schema


def access_row_fields(access: Access) -> dict[str, Any]:
    """What a chunk row of a document with this access holds in the access fields."""
    return {CLASS_FIELD: access_class(access), READERS_FIELD: access.keys()}


class AccessClasses:
    """The class collection of one chunk collection, and each reader's filter per index version."""

    def __init__(
        self, call: Callable[..., Any], collection: str, quote: Callable[[str], str], consistency_level: str
    ) -> None:
        self._call = call
        self.collection = f"{collection}_access"
        self._quote = quote
        self._consistency = consistency_level
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
        rows = self._call(
            "query",
            self.collection,
            filter=f"array_contains_any({READERS_FIELD}, {quoted_list(keys, self._quote)})",
            output_fields=[CLASS_FIELD],
            limit=MAX_LISTED_CLASSES + 1,
            consistency_level=self._consistency,
            timeout=timeout_s,
        )
        classes = sorted({int(row[CLASS_FIELD]) for row in rows})
        if not classes:
            found: str | None = NOTHING
        elif len(classes) > MAX_LISTED_CLASSES:
            found = f"array_contains_any({READERS_FIELD}, {quoted_list(keys, self._quote)})"
        else:
            found = f"{CLASS_FIELD} in [{', '.join(str(c) for c in classes)}]"
        with self._lock:
            if version == self._filters_version:
                self._filters[reader] = found
                while len(self._filters) > READER_FILTERS:
                    self._filters.popitem(last=False)
        return found


def both(*conditions: str) -> str:
    """Conditions joined with ``and`` (empty ones left out)."""
    present = [c for c in conditions if c]
    return " and ".join(f"({c})" for c in present) if len(present) > 1 else "".join(present)
