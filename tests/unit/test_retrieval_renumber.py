"""A writer that starts on chunk row ids made sparse by churn numbers them 1..n, and answers exactly as before."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from likeopt.runtime.principal import Reader
from retrieval_svc import store as store_module
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentInput, SearchParams
from retrieval_svc.engine import RetrievalEngine
from retrieval_svc.store import SPARSE_FLOOR, SPARSE_RATIO, NewDocument, Store, sparse
from tests.unit.test_retrieval_engine import LONG, engine_at, ingest
from tests.unit.test_retrieval_follower import agree
from tests.unit.test_retrieval_harness import FakeEmbedder

DOCS = [
    DocumentInput("zebra", "Zebras", LONG, {"kind": "animal"}),
    DocumentInput("horse", "Horses", "Horses have manes. Zebras are related to horses.", {"kind": "animal"}),
    DocumentInput("car", "Cars", "Cars have wheels and engines, unlike zebras.", {"kind": "machine"}),
    DocumentInput("mine", "Mine", "User one keeps notes about zebras and cars.", {}, Access.of("acme", ["u1"], [])),
    DocumentInput("crew", "Crew", "Sailors read about horses and boats.", {}, Access.of("acme", [], ["sailors"])),
    DocumentInput(
        "acme", "Acme", "Every reader of acme sees these zebras.", {"kind": "animal"}, Access.of("acme", [], [])
    ),
]
READERS = [
    None,
    Reader.of("acme", "u1", []),
    Reader.of("acme", "u2", ["sailors"]),
    Reader.of("other", "u1", []),
]
QUERIES = ["zebras stripes", "horses cars", "sailors boats notes"]


def churned(path: Path, rounds: int = 4) -> RetrievalEngine:
    """A writer whose every document was written rounds times (one deleted and written again each round)."""
    writer = engine_at(path)
    for _ in range(rounds):
        ingest(writer, *DOCS)
        writer.delete(["horse"])
        ingest(writer, DOCS[1])
    return writer


def searched(engine: RetrievalEngine, reader: Reader | None, mode: str, **options: Any) -> list[Any]:
    """Every hit (ids, scores and ranks) of each query."""
    found = []
    for query in QUERIES:
        p = SearchParams(top_k=50, mode=mode, fusion="rrf", rrf_k=60, alpha=0.5, reader=reader, **options)
        vector = engine.embed_query(query) if mode != "bm25" else None
        found.append(engine.search(query, p, vector))
    return found


def answers(engine: RetrievalEngine) -> dict[str, Any]:
    """What any caller can see: searches (filtered, per document), listings, documents and counts, per reader."""
    seen: dict[str, Any] = {}
    for reader in READERS:
        for mode in ("bm25", "dense", "hybrid"):
            seen[f"{reader} {mode}"] = searched(engine, reader, mode)
            seen[f"{reader} {mode} filtered"] = searched(engine, reader, mode, filters=(("kind", "animal"),))
            seen[f"{reader} {mode} per document"] = searched(engine, reader, mode, per_document=True)
        seen[f"{reader} listing"] = engine.list_documents("", 100, reader)
        seen[f"{reader} documents"] = [engine.get_document(d.id, reader) for d in DOCS]
        seen[f"{reader} stats"] = replace(engine.stats(reader), load_seconds=0.0)
    return seen


def chunks_in_order(engine: RetrievalEngine) -> list[Any]:
    return [engine.chunks[row] for row in sorted(engine.chunks)]


def highest_id_handed_out(store: Store) -> int:
    return store._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()[0]


@pytest.fixture
def renumbering(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of a few chunks counts as sparse once it uses more than SPARSE_RATIO ids per chunk."""
    monkeypatch.setattr(store_module, "SPARSE_FLOOR", 0)


def test_a_writer_restarted_after_churn_numbers_its_rows_densely_and_answers_exactly_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    churned(tmp_path).close()
    before = engine_at(tmp_path)  # the ids as churn left them: a few chunks under ids up to several times as many
    n = len(before.chunks)
    assert max(before.chunks) > SPARSE_RATIO * n
    expected, order = answers(before), chunks_in_order(before)
    before.close()
    monkeypatch.setattr(store_module, "SPARSE_FLOOR", 0)
    after = engine_at(tmp_path)
    assert sorted(after.chunks) == list(range(1, n + 1))
    assert chunks_in_order(after) == order
    assert after.version > before.version  # nothing cached under the old version is reused
    assert answers(after) == expected
    hidden = {hit.doc_id for hits in searched(after, READERS[3], "hybrid") for hit in hits}
    assert hidden == {"zebra", "horse", "car"}  # another tenant's reader sees the open documents alone
    assert {hit.doc_id for hit in searched(after, READERS[1], "bm25")[2]} == {"mine"}
    ingest(after, DocumentInput("new", "New", "Quokkas live on islands.", {}))
    assert after.rows_by_doc["new"] == [n + 1]  # new rows continue after the renumbered ones


def test_a_replica_following_the_store_reloads_when_the_restarted_writer_renumbers(
    tmp_path: Path, renumbering: None
) -> None:
    writer = churned(tmp_path)
    replica = engine_at(tmp_path, read_only=True)
    agree(writer, replica)
    writer.close()
    restarted = engine_at(tmp_path)
    assert sorted(restarted.chunks) == list(range(1, len(restarted.chunks) + 1))
    assert replica.follow() is True
    agree(restarted, replica)
    assert replica.chunks == restarted.chunks
    assert answers(replica) == answers(restarted)
    ingest(restarted, DocumentInput("new", "New", "Quokkas live on islands.", {}))
    assert replica.follow() is True  # through the log of changes again
    agree(restarted, replica)


def test_a_replica_loading_while_its_writer_renumbers_reads_the_store_as_it_was_then_reloads(
    tmp_path: Path, renumbering: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PAGE", 2)  # many pages, with no statement open between them
    writer = churned(tmp_path)
    old_ids = set(writer.chunks)
    writer.close()
    replica = RetrievalEngine(tmp_path, FakeEmbedder(), chunk_tokens=24, chunk_overlap=0, read_only=True)
    read = replica.store.chunks
    renumbered: list[int | None] = []

    def renumbered_after_the_first_page() -> Iterator[Any]:
        for n, chunk in enumerate(read()):
            if n == 2 and not renumbered:
                starting = Store(tmp_path / "store.sqlite3")  # the writer, starting meanwhile
                renumbered.append(starting.renumber_rows())
                starting.close()
            yield chunk

    monkeypatch.setattr(replica.store, "chunks", renumbered_after_the_first_page)
    replica.load()
    assert renumbered[0] is not None
    assert set(replica.chunks) == old_ids
    assert len(replica.vectors) == len(replica.bm25) == len(replica.chunks)
    restarted = engine_at(tmp_path)
    assert replica.follow() is True
    assert replica.chunks == restarted.chunks
    assert answers(replica) == answers(restarted)


def test_a_store_whose_ids_are_not_sparse_is_left_as_it_is(tmp_path: Path) -> None:
    churned(tmp_path).close()
    before = engine_at(tmp_path)
    ids, version = sorted(before.chunks), before.version
    before.close()
    after = engine_at(tmp_path)
    assert sorted(after.chunks) == ids
    assert after.version == version


def stored(store: Store, rows: int, times: int) -> None:
    """One document of rows chunks written times over."""
    for _ in range(times):
        store.upsert([NewDocument("d", "D", {}, ["text"] * rows, np.zeros((rows, 4)))])


@pytest.mark.parametrize(("times", "renumbered"), [(3, False), (4, True)])
def test_ids_are_renumbered_past_ratio_times_the_chunks_beyond_the_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, times: int, renumbered: bool
) -> None:
    monkeypatch.setattr(store_module, "SPARSE_FLOOR", 5)
    store = Store(tmp_path / "store.sqlite3")
    stored(store, 5, times)  # ids up to 15 (2 * 5 + 5: kept) or 20
    assert (store.renumber_rows() is not None) is renumbered
    rows = [chunk.row for chunk in store.chunks()]
    assert rows == (list(range(1, 6)) if renumbered else list(range(5 * times - 4, 5 * times + 1)))
    assert highest_id_handed_out(store) == max(rows)


def test_the_log_a_renumbering_grew_to_the_size_of_the_store_is_cut_back_by_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "WAL_KEPT_BYTES", 1 << 20)
    monkeypatch.setattr(store_module, "SPARSE_FLOOR", 0)
    store = Store(tmp_path / "store.sqlite3")
    for _ in range(3):
        store.upsert([NewDocument("big", "Big", {}, ["x" * 4_000] * 2_000, np.zeros((2_000, 4)))])
    assert store.renumber_rows() is not None
    wal = tmp_path / "store.sqlite3-wal"
    assert wal.stat().st_size > 4 << 20
    stored(store, 1, 1)
    assert wal.stat().st_size <= 1 << 20


def test_the_rule() -> None:
    assert not sparse(0, 0)
    assert not sparse(SPARSE_FLOOR, 0)
    assert sparse(SPARSE_FLOOR + 1, 0)
    assert not sparse(SPARSE_RATIO * 100_000 + SPARSE_FLOOR, 100_000)
    assert sparse(5 * 100_000, 100_000)  # five writes of every chunk: a nightly re-ingest of five nights


def test_a_renumbering_that_fails_changes_nothing_and_the_writer_starts_on_the_ids_it_had(
    tmp_path: Path, renumbering: None
) -> None:
    churned(tmp_path).close()
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:  # refuses the third row's move, after two were made
        db.execute(
            "CREATE TRIGGER refuse AFTER UPDATE OF row ON chunks WHEN NEW.row = 3 BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    before = Store(tmp_path / "store.sqlite3")
    rows, version, top = [c.row for c in before.chunks()], before.version, highest_id_handed_out(before)
    before.close()
    writer = engine_at(tmp_path)
    assert sorted(writer.chunks) == rows
    assert (writer.version, highest_id_handed_out(writer.store)) == (version, top)
    assert writer.store._db.execute("SELECT COUNT(*) FROM changes").fetchone()[0] > 0


def test_a_store_from_an_older_release_is_renumbered_as_its_writer_first_opens_it(
    tmp_path: Path, renumbering: None
) -> None:
    churned(tmp_path).close()
    replica = engine_at(tmp_path, read_only=True)
    expected = answers(replica)
    replica.close()
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:  # no terms nor log of changes yet
        db.execute("ALTER TABLE chunks DROP COLUMN terms")
        db.execute("DROP TABLE changes")
        db.execute("DELETE FROM meta WHERE key IN ('bm25_terms', 'changes_kept_after')")
    writer = engine_at(tmp_path)
    assert sorted(writer.chunks) == list(range(1, len(writer.chunks) + 1))
    assert answers(writer) == expected
    assert answers(engine_at(tmp_path)) == expected  # the terms it stored are under the new ids
