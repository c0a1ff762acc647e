"""Milvus filter expressions built from values callers send, quoted so that no value can add conditions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


def quoted(value: str) -> str:
    """value as a Milvus expression string literal: backslash, quote and line breaks escaped, so no value
    can end the literal and add conditions of its own (milvus-lite knows no other escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def metadata_filter(filters: Sequence[tuple[str, str]]) -> str:
    """SearchParams.filters (metadata equalities) as a Milvus JSON filter expression; empty for none."""
    return " and ".join(f"metadata[{quoted(key)}] == {quoted(value)}" for key, value in filters)


IDS_FILTER_BYTES = 64 * 1024
"""Quoted values one filter of ids_filters holds at most, in UTF-8 bytes: Milvus parses a filter on every call, and
2,000 ids near their 2 KB limit made one of 4 MB (about a second of milvus-lite's time on its own), where a few
dozen ids of the usual few tens of bytes fit one filter. At least 4 bytes a value (quotes and separator), a filter
holds at most 16,384 values: Milvus's largest query limit, so a query may ask for one row per value."""


class IdsFilter(NamedTuple):
    """A filter of ids_filters and how many values it lists (a query may ask for a row per value)."""

    expression: str
    count: int


def ids_filter(field: str, values: Sequence[str]) -> str:
    """The condition that field is one of values."""
    return _one_of(field, [quoted(v) for v in values])


def ids_filters(field: str, values: Sequence[str]) -> list[IdsFilter]:
    """ids_filter of each of id_batches(values): every filter listing ids that callers send is built from those,
    so none grows with the number of ids, and rows read filter by filter are never read twice."""
    return [IdsFilter(ids_filter(field, batch), len(batch)) for batch in id_batches(values)]


def id_batches(values: Sequence[str]) -> list[list[str]]:
    """values, each once in their order, split into as few lists as hold them with at most IDS_FILTER_BYTES of
    quoted values each (a value longer than that alone in one); none for no values. A value named twice is in one
    list only."""
    batches: list[list[str]] = []
    size = IDS_FILTER_BYTES
    for value in dict.fromkeys(values):
        length = len(quoted(value).encode()) + len(", ")
        if size + length > IDS_FILTER_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(value)
        size += length
    return batches


def _one_of(field: str, literals: list[str]) -> str:
    return f"{field} in [{', '.join(literals)}]"
