"""A restricted reader's dense searches on Milvus score the few chunks its filter passes from vectors read once per
index version (retrieval_svc/milvus_vectors.py), against a real ``milvus-lite server``: repeated searches, a batch
and searches arriving together read them once and rank as every chunk scored afresh does; a write (here, or through
another replica once refreshed) reads them again; a chunk deleted or moved out of the reader's reach since they were
read never comes back, even before the version moves, and the next readable chunk takes its place. Reads are counted
by the Prometheus counter the backend exports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from likeopt.runtime.principal import Reader
from retrieval_svc import milvus_expressions
from retrieval_svc.access import Access
from retrieval_svc.backend import ChunkHit, DocumentInput, embedding_text
from retrieval_svc.milvus_backend import MilvusBackend
from tests.integration.test_retrieval_backends import backend_on, ingest, new_name, params
from tests.support import MilvusServer

ACME, GLOBEX = Access.of("acme", [], []), Access.of("globex", [], [])
ALICE = Reader.of("acme", "alice", [])
QUERY = "ledger entry audit"
TOP_K = 8


def corpus() -> list[DocumentInput]:
    """Two tenants of 24 documents each, all about the query in varying measure: globex's hidden ones too."""
    words = ["ledger", "entry", "audit", "invoice", "payment", "report"]
    return [
        DocumentInput(
            f"{tenant}-{n}",
            f"Title {n}",
            " ".join(words[(n + k) % len(words)] for k in range(1 + n % 4)) + f" marker{tenant}{n}",
            {"n": str(n)},
            access,
        )
        for tenant, access in (("acme", ACME), ("globex", GLOBEX))
        for n in range(24)
    ]


def vector_reads() -> float:
    return REGISTRY.get_sample_value("likeopt_milvus_vector_reads_total") or 0.0


def search(backend: MilvusBackend, query: str = QUERY, mode: str = "dense", top_k: int = TOP_K) -> list[ChunkHit]:
    return backend.search(query, params(mode, top_k=top_k, reader=ALICE), backend.embed_query(query))


def chunk_ids(hits: list[ChunkHit]) -> list[str]:
    return [f"{h.doc_id}#{h.ordinal}" for h in hits]


def ranked_afresh(backend: MilvusBackend, docs: list[DocumentInput], reader: Reader, query: str) -> list[str]:
    """Every readable chunk scored against the query here, as the backend scored them before it kept vectors."""
    readable = [d for d in docs if d.access.readable_by(reader)]
    chunks = {f"{d.id}#{n}": embedding_text(d.title, c) for d in readable for n, c in enumerate(backend.prepare(d))}
    vectors = backend.embedder.encode(list(chunks.values())).astype(np.float32)
    scores = dict(zip(chunks, (vectors @ backend.embed_query(query)).tolist(), strict=True))
    return sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))


@pytest.fixture
def loaded(milvus: MilvusServer) -> Iterator[MilvusBackend]:
    backend = backend_on(milvus, new_name())
    ingest(backend, *corpus())
    yield backend
    backend.close()


def test_a_reader_s_repeated_searches_and_a_batch_read_the_vectors_once(loaded: MilvusBackend) -> None:
    before = vector_reads()
    first = search(loaded)
    assert chunk_ids(first) == ranked_afresh(loaded, corpus(), ALICE, QUERY)[:TOP_K]
    assert all(h.doc_id.startswith("acme-") for h in first)
    assert search(loaded) == first  # ids, texts, metadata and scores alike
    assert {h.doc_id for h in search(loaded, mode="hybrid")} <= {d.id for d in corpus() if d.access == ACME}
    assert vector_reads() - before == 1
    batch = loaded.search_batch(
        [QUERY, "payment report"], params("dense", top_k=TOP_K, reader=ALICE), [loaded.embed_query(QUERY)] * 2
    )
    assert [h.text for h in batch[0]] == [h.text for h in first]  # scores alike but for float32 rounding
    assert vector_reads() - before == 1


def test_a_reader_s_first_searches_arriving_together_read_the_vectors_once(
    loaded: MilvusBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read them from Milvus: no search waited for the read another had under way."""
    reading, gate = threading.Event(), threading.Event()
    call = loaded.milvus.call

    def gated_call(method: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("output_fields") == ["chunk_id", "dense"]:  # the read of the filter's vectors
            reading.set()
            gate.wait(30)
        return call(method, *args, **kwargs)

    monkeypatch.setattr(loaded.milvus, "call", gated_call)
    before = vector_reads()
    with ThreadPoolExecutor(2) as pool:  # as retrieval_svc's search pool runs them
        first = pool.submit(search, loaded)
        assert reading.wait(30)
        second = pool.submit(search, loaded)
        wait([second], timeout=0.5)  # time to reach the read under way (unfixed, it starts one of its own)
        gate.set()
        assert first.result(30) == second.result(30)
    assert vector_reads() - before == 1


def test_a_write_for_the_reader_is_found_by_the_next_search(milvus: MilvusServer, loaded: MilvusBackend) -> None:
    search(loaded)
    before = vector_reads()
    ingest(loaded, DocumentInput("acme-new", "Zeppelins", "zeppelin airship", {}, ACME))
    assert search(loaded, "zeppelin airship")[0].doc_id == "acme-new"
    assert vector_reads() - before == 1
    other = backend_on(milvus, loaded.collection)  # another replica writes; this one sees it once refreshed
    try:
        ingest(other, DocumentInput("acme-newer", "Blimps", "blimp dirigible", {}, ACME))
        assert loaded.refresh() is True
        assert search(loaded, "blimp dirigible")[0].doc_id == "acme-newer"
        assert vector_reads() - before == 2
    finally:
        other.close()


def test_a_deleted_chunk_never_comes_back_though_its_vector_was_kept(
    milvus: MilvusServer, loaded: MilvusBackend
) -> None:
    kept = search(loaded)
    before = vector_reads()
    other = backend_on(milvus, loaded.collection)
    try:
        other.delete([kept[0].doc_id])  # this replica has not refreshed: its cached matrix still has the chunk
        rest = [c for c in ranked_afresh(loaded, corpus(), ALICE, QUERY) if not c.startswith(f"{kept[0].doc_id}#")]
        assert chunk_ids(search(loaded)) == rest[:TOP_K]  # dropped, the next readable chunk in its place
        assert vector_reads() == before
        loaded.refresh()
        again = search(loaded)
        assert kept[0].doc_id not in {h.doc_id for h in again} and len(again) == TOP_K
        assert vector_reads() - before == 1
        loaded.delete([again[0].doc_id])
        assert again[0].doc_id not in {h.doc_id for h in search(loaded)}
    finally:
        other.close()


def test_a_chunk_moved_out_of_the_reader_s_reach_never_comes_back(milvus: MilvusServer, loaded: MilvusBackend) -> None:
    kept = search(loaded)
    moved = next(d for d in corpus() if d.id == kept[0].doc_id)
    before = vector_reads()
    other = backend_on(milvus, loaded.collection)
    try:
        ingest(other, replace(moved, access=Access.of("acme", ["zed"], [])))  # no longer alice's
        shown = search(loaded)  # before the refresh, from the cached matrix
        assert moved.id not in {h.doc_id for h in shown} and len(shown) == TOP_K
        assert vector_reads() == before
        loaded.refresh()
        assert moved.id not in {h.doc_id for h in search(loaded)}
        assert vector_reads() - before == 1  # the new version's vectors, read afresh
        zed = Reader.of("acme", "zed", [])
        zed_sees = loaded.search(QUERY, params("dense", top_k=TOP_K, reader=zed), loaded.embed_query(QUERY))
        assert moved.id in {h.doc_id for h in zed_sees}
    finally:
        other.close()


def test_ids_with_quotes_and_backslashes_near_their_longest_are_read_back_in_bounded_filters(
    milvus: MilvusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hit fields of every top chunk were read with one filter listing all their ids: up to 4 MB with 2,000 ids
    near their 2 KB limit. Each id here ends its literal or escapes if quoted wrong, and is some 1.9 KB in UTF-8."""
    monkeypatch.setattr(milvus_expressions, "IDS_FILTER_BYTES", 8 * 1024)
    docs = [replace(d, id=f'{d.id} "q" \\ \\" or chunk_id != "' + "😀" * 470) for d in corpus()]
    filters: list[str] = []
    backend = backend_on(milvus, new_name())
    call = backend.milvus.call

    def recorded_call(method: str, *args: Any, **kwargs: Any) -> Any:
        if "text" in kwargs.get("output_fields", ()):  # a read of hit fields
            filters.append(kwargs["filter"])
        return call(method, *args, **kwargs)

    try:
        ingest(backend, *docs)
        monkeypatch.setattr(backend.milvus, "call", recorded_call)
        readable = [d for d in docs if d.access.readable_by(ALICE)]
        shown = search(backend, top_k=len(readable))
        assert chunk_ids(shown) == ranked_afresh(backend, docs, ALICE, QUERY)
        assert {h.doc_id for h in shown} == {d.id for d in readable}
        assert len(filters) > 1 and max(len(f.encode()) for f in filters) < 2 * 8 * 1024
    finally:
        backend.close()
