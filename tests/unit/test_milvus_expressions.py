"""Milvus filter expressions (retrieval_svc/milvus_expressions.py): values quoted so none ends its literal, and ids
split into filters of bounded size. That Milvus reads them back as the same values is tested against a real server
in tests/integration/test_milvus_vector_cache.py."""

from __future__ import annotations

import pytest

from retrieval_svc import milvus_expressions
from retrieval_svc.milvus_expressions import ids_filter, ids_filters, quoted


def test_a_quote_a_backslash_and_line_breaks_are_escaped() -> None:
    assert quoted('a"b\\c\nd\re\tf') == '"a\\"b\\\\c\\nd\\re\\tf"'
    assert quoted('ends\\"') == '"ends\\\\\\""'  # the quote stays escaped after the escaped backslash


def test_ids_are_split_into_filters_of_at_most_the_bound_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hit fields of up to 2,000 chunks were read with one filter listing every id: 4 MB of expression for ids
    near their 2 KB limit."""
    monkeypatch.setattr(milvus_expressions, "IDS_FILTER_BYTES", 100)
    short, long = [f'id"{n:02d}' for n in range(12)], "é" * 80  # quoted, 8 bytes each and 162, past the bound
    values = [*short, long, "last"]
    batches = [short[:10], short[10:], [long], ["last"]]  # ten of 8 bytes and separators make 100; long is alone
    assert ids_filters("chunk_id", values) == [ids_filter("chunk_id", batch) for batch in batches]
    assert ids_filters("chunk_id", []) == []
