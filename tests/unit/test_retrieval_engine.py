"""RetrievalEngine: one hit per document on request, agreement of store and indexes, restart without re-embedding."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from likeopt.caching.cache_keys import normalise_query
from likeopt.runtime.text import tokenize
from retrieval_svc import engine_indexes, engine_loading, engine_search, filter_masks
from retrieval_svc import store as store_module
from retrieval_svc.access import RowMask
from retrieval_svc.backend import DocumentInput, SearchParams
from retrieval_svc.engine import RetrievalEngine
from tests.unit.test_retrieval_harness import FakeEmbedder

LONG = " ".join(f"Sentence {i} mentions zebras and stripes." for i in range(12))


def engine_at(path: Path, embedder: FakeEmbedder | None = None, **options: int) -> RetrievalEngine:
    engine = RetrievalEngine(path, embedder or FakeEmbedder(), chunk_tokens=24, chunk_overlap=0, **options)
    engine.load()
    return engine


def ingest(engine: RetrievalEngine, *docs: DocumentInput) -> int:
    return engine.upsert(list(docs), [engine.prepare(d) for d in docs])


def params(mode: str = "hybrid", top_k: int = 10, per_document: bool = False) -> SearchParams:
    return SearchParams(top_k=top_k, mode=mode, fusion="rrf", rrf_k=60, alpha=0.5, per_document=per_document)


def search(engine: RetrievalEngine, query: str, p: SearchParams) -> list[str]:
    vector = engine.embed_query(query) if p.mode != "bm25" else None
    return [hit.doc_id for hit in engine.search(query, p, vector)]


@pytest.fixture
def engine(tmp_path: Path) -> RetrievalEngine:
    engine = engine_at(tmp_path)
    ingest(
        engine,
        DocumentInput("zebra", "Zebras", LONG, {"kind": "animal"}),
        DocumentInput("horse", "Horses", "Horses have manes. Zebras are related to horses.", {"kind": "animal"}),
        DocumentInput("car", "Cars", "Cars have wheels and engines.", {"kind": "machine"}),
    )
    return engine


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_per_document_returns_each_document_once(engine: RetrievalEngine, mode: str) -> None:
    assert len(engine.rows_by_doc["zebra"]) > 3  # the long document is several chunks
    chunks = search(engine, "zebras stripes", params(mode))
    assert chunks.count("zebra") > 1
    documents = search(engine, "zebras stripes", params(mode, per_document=True))
    assert documents[0] == "zebra"
    assert len(documents) == len(set(documents))
    assert "horse" in documents


def test_per_document_top_k_counts_documents(engine: RetrievalEngine) -> None:
    found = search(engine, "zebras horses", params("bm25", top_k=2, per_document=True))
    assert sorted(found) == ["horse", "zebra"]


def test_store_and_both_indexes_agree_after_upserts_and_deletes(engine: RetrievalEngine) -> None:
    ingest(engine, DocumentInput("zebra", "Zebras", "Now a short text about zebras.", {}))
    engine.delete(["car"])
    assert len(engine.chunks) == len(engine.bm25) == len(engine.vectors) == len(list(engine.store.chunks()))
    assert "car" not in search(engine, "cars wheels engines", params("hybrid", per_document=True))


def test_restart_loads_everything_without_embedding_again(engine: RetrievalEngine, tmp_path: Path) -> None:
    version = engine.version
    engine.store.close()
    embedder = FakeEmbedder()
    reloaded = engine_at(tmp_path, embedder)
    assert embedder.encoded == 1  # the warm-up query only, no document
    assert reloaded.version == version
    assert len(reloaded.chunks) == len(reloaded.bm25) == len(reloaded.vectors) == len(engine.chunks)
    assert search(reloaded, "zebras stripes", params(per_document=True)) == search(
        engine, "zebras stripes", params(per_document=True)
    )


def tokenised_on_load(path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool = False) -> int:
    """How many chunks a fresh engine over path tokenises while loading (the rest had stored terms)."""
    calls = []
    monkeypatch.setattr(engine_indexes, "tokenize", lambda text: calls.append(text) or tokenize(text))
    engine = RetrievalEngine(path, FakeEmbedder(), chunk_tokens=24, chunk_overlap=0, read_only=read_only)
    engine.load()
    engine.store.close()
    monkeypatch.setattr(engine_indexes, "tokenize", tokenize)
    return len(calls)


def test_a_restart_reads_the_stored_terms_instead_of_tokenising(
    engine: RetrievalEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.store.close()
    assert tokenised_on_load(tmp_path, monkeypatch) == 0
    reloaded = engine_at(tmp_path)
    assert reloaded.bm25.search(tokenize("zebras stripes"), 5) == engine.bm25.search(tokenize("zebras stripes"), 5)


def test_a_store_from_before_terms_gets_them_from_its_writer_once(
    engine: RetrievalEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = len(engine.chunks)
    expected = search(engine, "zebras stripes", params("bm25"))
    engine.store.close()
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:  # as an older release left it: no terms column
        db.execute("ALTER TABLE chunks DROP COLUMN terms")
        db.execute("DELETE FROM meta WHERE key = 'bm25_terms'")
    assert tokenised_on_load(tmp_path, monkeypatch, read_only=True) == chunks  # a replica only reads
    assert tokenised_on_load(tmp_path, monkeypatch, read_only=True) == chunks
    assert tokenised_on_load(tmp_path, monkeypatch) == chunks  # the writer stores them...
    assert tokenised_on_load(tmp_path, monkeypatch) == 0  # ...for every start after
    assert search(engine_at(tmp_path), "zebras stripes", params("bm25")) == expected


@pytest.mark.parametrize("page", [2, 2_000])
def test_terms_of_another_tokenizer_version_are_computed_again(
    engine: RetrievalEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    monkeypatch.setattr(store_module, "PAGE", page)  # 2: stored page by page while loading
    monkeypatch.setattr(engine_loading, "PAGE", page)
    chunks = len(engine.chunks)
    expected = search(engine, "zebras stripes", params("bm25"))
    engine.store.close()
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'bm25_terms'")
        db.execute("UPDATE chunks SET terms = 'stale'")
    assert tokenised_on_load(tmp_path, monkeypatch) == chunks
    assert tokenised_on_load(tmp_path, monkeypatch) == 0
    reloaded = engine_at(tmp_path)
    assert "stale" not in {t for row in reloaded.store.chunks() for t in (row.terms or "").split()}
    assert search(reloaded, "zebras stripes", params("bm25")) == expected


UPGRADES = [  # (a version and how it tokenised one document, what finds that document now)
    ("1", DocumentInput("lung", "肺癌", "长期吸烟会增加患肺癌的风险。", {}), "肺癌 长期吸烟会增加患肺癌的风险", "吸烟"),
    ("2", DocumentInput("street", "Weißenburg", "Die Hauptstraße.", {}), "weißenburg die hauptstraß", "Hauptstraße"),
    ("3", DocumentInput("tea", "茶", "我每天喝茶。", {}), "茶 我每 每天 天喝 喝茶", "茶"),
    ("3", DocumentInput("config", "", "Set REQUEST_TIMEOUT_MS.", {}), "set request_timeout_m", "timeout"),
]


@pytest.mark.parametrize(("version", "doc", "its_terms", "query"), UPGRADES)
def test_an_upgrade_from_a_version_differing_only_in_flagged_text_tokenises_only_those_chunks(
    engine: RetrievalEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    version: str,
    doc: DocumentInput,
    its_terms: str,
    query: str,
) -> None:
    """Version 1 took a CJK run as one term, version 2 lowercased \\w+ words (ß kept, words cut at combining
    marks), version 3 had no CJK characters but bigrams' and no identifiers' parts; their other terms are this
    version's, so they are kept."""
    ingest(engine, doc)
    engine.store.close()
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'bm25_terms'", (version,))
        db.execute("UPDATE chunks SET terms = ? WHERE doc_id = ?", (its_terms, doc.id))
        db.execute("UPDATE chunks SET terms = terms || ' kept' WHERE doc_id = 'car'")
    assert tokenised_on_load(tmp_path, monkeypatch) == 1  # the flagged chunk alone
    assert tokenised_on_load(tmp_path, monkeypatch) == 0
    reloaded = engine_at(tmp_path)
    assert search(reloaded, normalise_query(query), params("bm25")) == [doc.id]
    assert search(reloaded, "kept", params("bm25")) == ["car"]  # its stored terms were not computed again


@pytest.mark.parametrize(("version", "doc", "its_terms", "query"), UPGRADES)
def test_an_upgrade_that_tokenises_again_moves_the_index_version_and_says_so(
    engine: RetrievalEngine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    version: str,
    doc: DocumentInput,
    its_terms: str,
    query: str,
) -> None:
    """Searches and answers are cached under the index version, in a Redis that outlives the upgrade: under the
    old version, the old tokenizer's result ("Hauptstraße" not found) would be served as the new one's. The log
    names the chunks tokenised again, the reason the first start after an upgrade is slower."""
    ingest(engine, doc)
    before = engine.version
    engine.store.close()
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:  # as a release of that tokenizer version left it
        db.execute("UPDATE meta SET value = ? WHERE key = 'bm25_terms'", (version,))
        db.execute("UPDATE chunks SET terms = ? WHERE doc_id = ?", (its_terms, doc.id))
    with caplog.at_level(logging.INFO, logger=store_module.__name__):
        upgraded = engine_at(tmp_path)
    said = [r for r in caplog.records if "tokenising its chunks again" in r.getMessage()]
    assert [(r.fields["terms_of"], r.fields["chunks"]) for r in said] == [(version, 1)]  # type: ignore[attr-defined]
    assert upgraded.version > before
    assert upgraded.store.version == upgraded.version
    upgraded.store.close()
    assert engine_at(tmp_path).version == upgraded.version  # once: the next start finds the terms current


@pytest.mark.parametrize(
    ("query", "doc_id"),
    [
        ("Hauptstraße", "street"),
        ("HAUPTSTRASSE", "street"),
        ("λόγος", "logos"),
        ("ΣΟΦΌΣ", "logos"),
        ("İstanbul", "city"),
        ("Istanbul", "city"),
        ("हिन्दी", "hindi"),
    ],
)
def test_bm25_finds_words_with_sharp_s_final_sigma_dotted_i_and_marks_as_the_service_asks(
    engine: RetrievalEngine, query: str, doc_id: str
) -> None:
    """The service searches with normalise_query's casefolded text; chunks are indexed as written."""
    ingest(
        engine,
        DocumentInput("street", "Weißenburg", "Die Hauptstraße ist gesperrt.", {}),
        DocumentInput("logos", "", "Ὁ λόγος τοῦ σοφός.", {}),
        DocumentInput("city", "", "İstanbul büyük bir şehir.", {}),
        DocumentInput("hindi", "", "हिन्दी भाषा", {}),
        DocumentInput("river", "", "नदी बहती है", {}),  # न and द again, in an unrelated word
    )
    assert search(engine, normalise_query(query), params("bm25")) == [doc_id]


def test_bm25_finds_a_one_character_chinese_word_and_ranks_a_bigram_above_its_characters_apart(
    engine: RetrievalEngine,
) -> None:
    ingest(
        engine,
        DocumentInput("tea", "", "我每天早上喝茶。", {}),
        DocumentInput("zoo", "", "我们在动物园看到了熊猫。", {}),
        DocumentInput("pets", "", "熊很大\uff0c猫很小\uff0c熊和猫都是动物。", {}),  # bear and cat, never panda
    )
    assert search(engine, normalise_query("茶"), params("bm25")) == ["tea"]
    assert search(engine, normalise_query("熊猫"), params("bm25")) == ["zoo", "pets"]
    assert search(engine, normalise_query("熊猫吃什么\uff1f"), params("bm25"))[:2] == ["zoo", "pets"]


def test_bm25_finds_an_identifier_by_its_words_and_ranks_the_identifier_itself_first(engine: RetrievalEngine) -> None:
    ingest(
        engine,
        DocumentInput("config", "", "Set REQUEST_TIMEOUT_MS to 30000 for slow networks.", {}),
        DocumentInput("prose", "", "A request may fail with a timeout on slow networks.", {}),
        DocumentInput("api", "", "Call deleteUserAccount(id) to remove a user; get_user_by_id(id) reads one.", {}),
    )
    assert search(engine, normalise_query("REQUEST_TIMEOUT_MS"), params("bm25"))[0] == "config"
    assert set(search(engine, normalise_query("request timeout"), params("bm25"))) == {"config", "prose"}
    for query in ("delete user account", "getUserById", "get_user_by_id"):
        assert search(engine, normalise_query(query), params("bm25"))[0] == "api", query


def test_counters_count_embeddings_and_searches(engine: RetrievalEngine) -> None:
    before = engine.counters.copy()
    search(engine, "zebras", params("hybrid"))
    search(engine, "zebras", params("bm25"))
    assert engine.counters["embeddings"] - before["embeddings"] == 1
    assert engine.counters["searches"] - before["searches"] == 2


def test_dense_index_turns_approximate_past_its_exact_limit(tmp_path: Path) -> None:
    engine = engine_at(tmp_path, vector_exact_max=20)
    docs = [DocumentInput(f"d{i}", "", f"document number {i} about topic{i % 7}", {}) for i in range(40)]
    ingest(engine, *docs)
    assert engine.vectors.kind == "ivf"
    engine.delete(["d3"])
    assert len(engine.vectors) == len(engine.chunks) == 39
    assert search(engine, "document number 5 about topic5", params("dense", top_k=1))[0] == "d5"


def test_chunks_fit_the_window_with_their_title(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    title = "A title of six words"
    chunks = engine.prepare(DocumentInput("t", title, LONG, {}))
    assert len(chunks) > 1
    assert all(engine.embedder.count_tokens(f"{title}\n{c}") <= engine.chunk_tokens for c in chunks)


def test_a_filters_rows_are_worked_out_once_per_index_version_whatever_the_conditions_order(
    engine: RetrievalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each filtered search walked every document's metadata (7 ms at 10,000 documents); a write changes them."""
    walks: list[tuple[tuple[str, str], ...]] = []
    walk = engine._matching_rows
    monkeypatch.setattr(engine, "_matching_rows", lambda filters: walks.append(filters) or walk(filters))
    animals = replace(params("bm25"), filters=(("kind", "animal"),))
    two = replace(params("bm25"), filters=(("kind", "animal"), ("lang", "en")))
    swapped = replace(params("bm25"), filters=(("lang", "en"), ("kind", "animal")))
    assert {h.doc_id for h in engine.search("zebras horses", animals, None)} == {"zebra", "horse"}
    assert {h.doc_id for h in engine.search("horses manes", animals, None)} == {"horse"}
    assert engine.search("zebras", two, None) == engine.search("zebras", swapped, None) == []
    assert len(walks) == 2
    ingest(engine, DocumentInput("horse", "Horses", "Horses have manes.", {"kind": "machine", "lang": "en"}))
    assert {h.doc_id for h in engine.search("zebras horses manes", animals, None)} == {"zebra"}  # not a stale one
    assert len(walks) == 3


def test_the_filters_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filter_masks, "KEPT", 2)
    kept = filter_masks.FilterMasks()
    built: list[str] = []

    def build(name: str) -> Callable[[], RowMask]:
        return lambda: built.append(name) or RowMask.of_rows([1], 8)

    for name in ("a", "b", "a", "c", "b"):
        kept.mask((("k", name),), 7, build(name))
    assert built == ["a", "b", "c", "b"]  # a was asked again while kept; b was forgotten for c


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_a_write_arriving_while_a_search_ranks_waits_for_its_hits(
    engine: RetrievalEngine, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The search answers from the index as it found it; its rows were not deleted (or handed to other chunks)
    between ranking them and reading their fields, which raised KeyError under churn."""
    fuse = engine_search.fuse
    writes: list[threading.Thread] = []

    def fuse_while_writing(*args: object) -> object:
        writes.append(threading.Thread(target=engine.delete, args=(["zebra"],)))
        writes[-1].start()
        writes[-1].join(timeout=0.5)  # it waits for the search to let go of the index
        return fuse(*args)

    monkeypatch.setattr(engine_search, "fuse", fuse_while_writing)
    found = search(engine, "zebras stripes", params(mode))
    writes[0].join()
    assert "zebra" in found
    monkeypatch.setattr(engine_search, "fuse", fuse)
    assert "zebra" not in search(engine, "zebras stripes", params(mode))


def test_chunks_longer_than_the_model_reads_are_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LIKEOPT_CHUNK_TOKENS=257 exceeds the model's window of 256"):
        RetrievalEngine(tmp_path, FakeEmbedder(max_tokens=256), chunk_tokens=257, chunk_overlap=0)
    RetrievalEngine(tmp_path, FakeEmbedder(max_tokens=256), chunk_tokens=256, chunk_overlap=0).close()
