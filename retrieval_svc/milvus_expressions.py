"""Milvus filter expressions built from values callers send, quoted so that no value can add conditions."""

from __future__ import annotations

from collections.abc import Sequence


def quoted(value: str) -> str:
    """value as a Milvus expression string literal: backslash, quote and line breaks escaped, so no value
    can end the literal and add conditions of its own (milvus-lite knows no other escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def metadata_filter(filters: Sequence[tuple[str, str]]) -> str:
    """SearchParams.filters (metadata equalities) as a Milvus JSON filter expression; empty for none."""
    return " and ".join(f"metadata[{quoted(key)}] == {quoted(value)}" for key, value in filters)


def ids_filter(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(quoted(v) for v in values)}]"
