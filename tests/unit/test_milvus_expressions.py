"""Milvus filter expressions (retrieval_svc/milvus_expressions.py): values quoted so none ends its literal, and ids
split into filters of bounded size wherever the backend lists ids. That Milvus reads them back as the same values is
tested against a real server in tests/integration/test_milvus_vector_cache.py and test_retrieval_backends.py."""

from __future__ import annotations

from typing import Any

import pytest

from retrieval_svc import milvus_expressions
from retrieval_svc.access import Access
from retrieval_svc.milvus_access import READERS_FIELD
from retrieval_svc.milvus_backend import MilvusBackend, stale_chunks_filters
from retrieval_svc.milvus_expressions import IDS_FILTER_BYTES, IdsFilter, ids_filter, ids_filters, quoted
from tests.unit.test_retrieval_harness import FakeEmbedder

ACME = Access.of("acme", [], [])


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
    assert ids_filters("chunk_id", values) == [IdsFilter(ids_filter("chunk_id", b), len(b)) for b in batches]
    assert ids_filters("chunk_id", []) == []


def test_an_id_named_twice_is_listed_once() -> None:
    """Filters are read one by one: an id in two of them would have its rows read, and counted, twice."""
    assert ids_filters("doc_id", ["b", "a", "b"]) == [IdsFilter(ids_filter("doc_id", ["b", "a"]), 2)]


def test_every_filter_the_backend_lists_ids_in_stays_under_the_bound() -> None:
    """Existence checks, access reads and deletes listed 500 ids a filter (1 MB of ids near their 2 KB limit), and a
    listing of named documents and its chunk counts every id in one; here a thousand such ids (the most a listing
    names) go through each, against a Milvus that has every document."""
    ids = [f'doc {n} "q" \\ or doc_id != "' + "é" * 1000 for n in range(1000)]
    backend = MilvusBackend(FakeEmbedder(), "http://127.0.0.1:9", "", "chunks", chunk_tokens=24, chunk_overlap=0)
    filters: list[str] = []

    def milvus(method: str, collection: str, *args: Any, **kwargs: Any) -> Any:
        filters.append(kwargs.get("filter", ""))
        if method != "query" or collection != backend.collection:
            return []  # no stored version yet, and nothing else asked of other collections
        return [
            {"doc_id": i, "chunk_id": f"{i}#0", "title": "", "metadata": {}, READERS_FIELD: ACME.keys()} for i in ids
        ]

    backend.milvus.call = milvus  # type: ignore[method-assign]
    backend.existing(ids)
    backend.stored_chunks([f"{i}#0" for i in ids])
    backend.accesses_of(ids)
    backend.list_documents("", len(ids), ids=ids)
    backend.delete(ids)
    filters += stale_chunks_filters(dict.fromkeys(ids, 1))
    assert len(filters) > 6 * 2  # each way of listing ids took several filters
    assert max(len(f.encode()) for f in filters) < IDS_FILTER_BYTES + 100  # the ids, and a condition or two
