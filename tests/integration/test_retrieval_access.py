"""Access lists enforced inside both retrieval backends (the embedded engine in process, MilvusBackend against a
real ``milvus-lite server``): a reader's searches rank only what it may read, before fusion and top_k, so lists
are never short and no count, id or title of a hidden document comes back; listing, fetching and index counts
agree; an access change is an upsert; names cannot inject filter syntax."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentInput
from retrieval_svc.engine import RetrievalEngine
from retrieval_svc.milvus_backend import MilvusBackend
from tests.integration.test_retrieval_backends import BOTH, MODES, backend_on, ingest, new_name, open_backend, params
from tests.support import MilvusServer

WORD = "ledger"
"""Every document mentions it, hidden ones most often: an unfiltered ranking would put them first."""


def doc(doc_id: str, access: Access, repeats: int = 1) -> DocumentInput:
    text = f"The {WORD} of {doc_id} records marker{doc_id.replace('-', '')}. " + f"{WORD} " * repeats
    return DocumentInput(doc_id, f"Title {doc_id}", text, {"owner": doc_id.split("-")[0]}, access)


INJECTION = '"] or true or ["'
CORPUS = [
    doc("acme-eng", Access.of("acme", [], ["eng"]), repeats=9),
    doc("acme-alice", Access.of("acme", ["alice"], []), repeats=8),
    doc("acme-all", Access.of("acme", [], [])),
    doc("acme-open2", Access.of("acme", [], [])),
    doc("globex-all", Access.of("globex", [], []), repeats=7),
    doc("globex-eng", Access.of("globex", [], ["eng"]), repeats=9),
    doc("public", Access()),
    doc("odd-group", Access.of("acme", [], [INJECTION]), repeats=9),
]
ALICE = Reader.of("acme", "alice", ["eng"])
BOB = Reader.of("acme", "bob", ["sales", *(f"team-{n}" for n in range(99))])
CAROL = Reader.of("globex", "carol", ["eng"])
NOBODY = Reader.of("initech", "dave", [])
SEES = {
    ALICE: {"acme-eng", "acme-alice", "acme-all", "acme-open2", "public"},
    BOB: {"acme-all", "acme-open2", "public"},
    CAROL: {"globex-all", "globex-eng", "public"},
    NOBODY: {"public"},
}


@pytest.fixture(scope="module", params=BOTH)
def corpus(
    request: pytest.FixtureRequest, milvus: MilvusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MilvusBackend | RetrievalEngine]:
    backend = open_backend(request.param, milvus, tmp_path_factory.mktemp("access"))
    ingest(backend, *CORPUS)  # type: ignore[arg-type]
    yield backend
    backend.close()


def found(backend: MilvusBackend | RetrievalEngine, reader: Reader | None, top_k: int = 20, **extra: object) -> list:
    p = params(extra.pop("mode", "hybrid"), extra.pop("fusion", "rrf"), top_k=top_k, reader=reader, **extra)
    vector = backend.embed_query(WORD) if p.mode != "bm25" else None
    return backend.search(WORD, p, vector)


@pytest.mark.parametrize(("mode", "fusion"), MODES)
@pytest.mark.parametrize("reader", list(SEES), ids=["alice", "bob", "carol", "nobody"])
def test_a_reader_ranks_only_what_it_may_read(corpus: MilvusBackend, mode: str, fusion: str, reader: Reader) -> None:
    hits = found(corpus, reader, mode=mode, fusion=fusion)
    assert {h.doc_id for h in hits} == SEES[reader]


def test_without_a_reader_every_document_is_ranked(corpus: MilvusBackend) -> None:
    assert {h.doc_id for h in found(corpus, None)} == {d.id for d in CORPUS}


@pytest.mark.parametrize(("mode", "fusion"), MODES)
def test_top_k_is_filled_from_readable_documents_although_hidden_ones_rank_higher(
    corpus: MilvusBackend, mode: str, fusion: str
) -> None:
    if mode == "bm25":  # the premise: unfiltered, hidden documents take the first places
        assert not {h.doc_id for h in found(corpus, None, top_k=2, mode=mode)} & SEES[BOB]
    hits = found(corpus, BOB, top_k=2, mode=mode, fusion=fusion)
    assert len(hits) == 2 and {h.doc_id for h in hits} <= SEES[BOB]
    per_document = found(corpus, BOB, top_k=3, mode=mode, fusion=fusion, per_document=True)
    assert sorted(h.doc_id for h in per_document) == sorted(SEES[BOB])


def test_metadata_filters_and_access_both_hold(corpus: MilvusBackend) -> None:
    assert {h.doc_id for h in found(corpus, ALICE, filters=(("owner", "acme"),))} == SEES[ALICE] - {"public"}
    assert found(corpus, BOB, filters=(("owner", "globex"),)) == []


def test_a_group_of_the_same_name_in_another_tenant_opens_nothing(corpus: MilvusBackend) -> None:
    assert "globex-eng" not in {h.doc_id for h in found(corpus, ALICE)}
    assert "acme-eng" not in {h.doc_id for h in found(corpus, CAROL)}


def test_names_cannot_inject_filter_syntax(corpus: MilvusBackend) -> None:
    sly = Reader.of("acme", INJECTION, [INJECTION, 'x" or readers != "'])
    assert {h.doc_id for h in found(corpus, sly)} == {"acme-all", "acme-open2", "public", "odd-group"}
    assert "odd-group" not in {h.doc_id for h in found(corpus, ALICE)}


@pytest.mark.parametrize("reader", list(SEES), ids=["alice", "bob", "carol", "nobody"])
def test_listing_fetching_and_counts_show_only_what_a_reader_may_read(corpus: MilvusBackend, reader: Reader) -> None:
    page, total = corpus.list_documents("", 100, reader)
    assert [d.id for d in page] == sorted(SEES[reader]) and total == len(SEES[reader])
    first, _ = corpus.list_documents("", 1, reader)
    rest, _ = corpus.list_documents(first[0].id, 100, reader)
    assert [d.id for d in first + rest] == sorted(SEES[reader])
    for d in CORPUS:
        fetched = corpus.get_document(d.id, reader)
        assert (fetched is not None) == (d.id in SEES[reader])
    stats = corpus.stats(reader)
    assert stats.documents == len(SEES[reader])
    assert stats.chunks == sum(len(corpus.prepare(d)) for d in CORPUS if d.id in SEES[reader])
    assert corpus.stats().documents == len(CORPUS)


@pytest.mark.parametrize("reader", [*SEES, None], ids=["alice", "bob", "carol", "nobody", "no reader"])
def test_a_listing_of_some_ids_names_those_of_them_the_reader_may_read(corpus: MilvusBackend, reader: Reader) -> None:
    """What generation_svc asks for a conversation's citations: one call says which documents are still readable."""
    asked = ["public", "acme-eng", "unknown", INJECTION, "globex-eng", "acme-eng"]
    readable = sorted({d.id for d in CORPUS} if reader is None else SEES[reader])
    expected = [doc_id for doc_id in readable if doc_id in asked]
    page, total = corpus.list_documents("", 100, reader, asked)
    assert [d.id for d in page] == expected and total == len(expected)
    first, _ = corpus.list_documents("", 1, reader, asked)
    rest, _ = corpus.list_documents(first[0].id, 100, reader, asked)
    assert [d.id for d in first + rest] == expected


@pytest.mark.parametrize("kind", BOTH)
def test_an_access_change_is_an_upsert_and_takes_effect_at_once(
    kind: str, milvus: MilvusServer, tmp_path: Path
) -> None:
    backend = open_backend(kind, milvus, tmp_path)
    try:
        ingest(backend, *CORPUS)  # type: ignore[arg-type]
        assert "acme-eng" not in {h.doc_id for h in found(backend, BOB)}
        ingest(backend, replace(CORPUS[0], access=Access.of("acme", [], ["sales"])))  # type: ignore[arg-type]
        backend.refresh()
        assert "acme-eng" in {h.doc_id for h in found(backend, BOB)}
        assert "acme-eng" not in {h.doc_id for h in found(backend, ALICE)}
        assert backend.get_document("acme-eng", ALICE) is None
        ingest(backend, replace(CORPUS[0], access=Access.of("acme", ["alice"], [])))  # type: ignore[arg-type]
        backend.refresh()
        assert "acme-eng" not in {h.doc_id for h in found(backend, BOB)}
        assert backend.stats(BOB).documents == len(SEES[BOB])
        backend.delete(["public"])
        backend.refresh()
        assert backend.stats(NOBODY).documents == 0 and found(backend, NOBODY) == []
    finally:
        backend.close()


def test_each_stored_document_s_access_is_known_to_writes(corpus: MilvusBackend) -> None:
    """Writes check a stored document's tenant and name a change of its readers."""
    accesses = corpus.accesses_of([d.id for d in CORPUS] + ["unknown"])
    assert accesses == {d.id: d.access for d in CORPUS}


@pytest.mark.parametrize("reader", list(SEES), ids=["alice", "bob", "carol", "nobody"])
def test_an_access_list_alone_says_who_may_read_as_both_backends_do(reader: Reader) -> None:
    """What a delete refused for another tenant's document asks of its stored access (readable: 403; else 404)."""
    assert {d.id for d in CORPUS if d.access.readable_by(reader)} == SEES[reader]


def test_access_survives_a_restart_of_the_embedded_engine(tmp_path: Path) -> None:
    from tests.unit.test_retrieval_harness import FakeEmbedder

    first = RetrievalEngine(tmp_path, FakeEmbedder(), chunk_tokens=24, chunk_overlap=0)
    first.load()
    ingest(first, *CORPUS)  # type: ignore[arg-type]
    first.close()
    again = RetrievalEngine(tmp_path, FakeEmbedder(), chunk_tokens=24, chunk_overlap=0)
    again.load()
    assert {h.doc_id for h in found(again, BOB)} == SEES[BOB]
    again.close()


def test_migration_to_milvus_carries_the_access_lists(milvus: MilvusServer, tmp_path: Path) -> None:
    from retrieval_svc.milvus_migrate import migrate

    embedded = open_backend("embedded", milvus, tmp_path)
    ingest(embedded, *CORPUS)  # type: ignore[arg-type]
    embedded.close()
    target = backend_on(milvus, new_name())
    migrate(tmp_path / "store.sqlite3", target)
    for reader, expected in SEES.items():
        assert {h.doc_id for h in found(target, reader)} == expected
    target.close()


@pytest.mark.parametrize("server_fusion", [False, True])
def test_milvus_server_fusion_filters_too(milvus: MilvusServer, server_fusion: bool) -> None:
    backend = backend_on(milvus, new_name(), server_fusion=server_fusion)
    ingest(backend, *CORPUS)
    assert {h.doc_id for h in found(backend, BOB)} == SEES[BOB]
    backend.close()


def test_a_second_milvus_replica_reads_access_written_by_the_first(milvus: MilvusServer) -> None:
    name = new_name()
    writer, reader = backend_on(milvus, name), backend_on(milvus, name)
    ingest(writer, *CORPUS)
    reader.refresh()
    assert {h.doc_id for h in found(reader, CAROL)} == SEES[CAROL]
    writer.close()
    reader.close()
