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
* A reader's filter is ``access_class in [...]``: the classes whose keys meet its own
  (retrieval_svc.milvus_reader_filters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from pymilvus import DataType, MilvusClient

from likeopt.runtime.contract import MAX_ACCESS_READERS
from retrieval_svc.access import Access

CLASS_FIELD, READERS_FIELD = "access_class", "readers"
MAX_KEY_BYTES = 4096
"""A reader key's largest size in UTF-8 bytes (three names of at most 256 characters, JSON-quoted)."""
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


def both(*conditions: str) -> str:
    """Conditions joined with ``and`` (empty ones left out)."""
    present = [c for c in conditions if c]
    return " and ".join(f"({c})" for c in present) if len(present) > 1 else "".join(present)
