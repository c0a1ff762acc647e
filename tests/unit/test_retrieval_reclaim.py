"""A writer starting on a store file mostly freed by deletes gives the space back to the disk, answering as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval_svc import store as store_module
from retrieval_svc.backend import DocumentInput
from retrieval_svc.store import RECLAIM_FLOOR_BYTES, NewDocument, Store, worth_reclaiming
from tests.unit.test_retrieval_engine import engine_at, ingest
from tests.unit.test_retrieval_follower import agree
from tests.unit.test_retrieval_renumber import DOCS, answers, chunks_in_order

BULKY = "x" * 4_000


def store_file(tmp_path: Path) -> int:
    return (tmp_path / "store.sqlite3").stat().st_size


def bulk(store: Store, doc_id: str, chunks: int = 200) -> None:
    store.upsert([NewDocument(doc_id, doc_id, {}, [BULKY] * chunks, np.zeros((chunks, 4)))])


@pytest.fixture
def reclaiming(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of a few MB counts as worth compacting once a quarter of it is free."""
    monkeypatch.setattr(store_module, "RECLAIM_FLOOR_BYTES", 0)


def test_a_writer_restarted_after_deletes_gives_the_disk_back_and_answers_exactly_as_before(
    tmp_path: Path, reclaiming: None
) -> None:
    writer = engine_at(tmp_path)
    ingest(writer, *DOCS)
    for n in range(4):
        bulk(writer.store, f"bulk{n}")
    writer.store.delete([f"bulk{n}" for n in range(4)])
    writer.close()
    before = engine_at(tmp_path, read_only=True)
    expected, order, version = answers(before), chunks_in_order(before), before.version
    before.close()
    grown = store_file(tmp_path)
    after = engine_at(tmp_path)
    assert store_file(tmp_path) < grown / 4
    assert chunks_in_order(after) == order  # the same row ids: nothing the indexes key changed
    assert after.version == version
    assert answers(after) == expected


def test_a_replica_reading_while_its_writer_compacts_keeps_following_it(tmp_path: Path, reclaiming: None) -> None:
    writer = engine_at(tmp_path)
    ingest(writer, *DOCS)
    bulk(writer.store, "bulk")
    writer.store.delete(["bulk"])
    replica = engine_at(tmp_path, read_only=True)
    writer.close()
    restarted = engine_at(tmp_path)
    assert restarted.store.reclaim_space() is None  # compacted as it started: nothing left to give back
    ingest(restarted, DocumentInput("new", "New", "Quokkas live on islands.", {}))
    assert replica.follow() is True
    agree(restarted, replica)
    assert answers(replica) == answers(restarted)


def test_a_store_with_little_free_space_is_left_as_it_is(tmp_path: Path, reclaiming: None) -> None:
    store = Store(tmp_path / "store.sqlite3")
    for n in range(4):
        bulk(store, f"bulk{n}")
    store.delete(["bulk0"])  # a quarter of the chunks, less than a quarter of the file
    size = store_file(tmp_path)
    assert store.reclaim_space() is None
    assert store_file(tmp_path) == size
    store.delete(["bulk1"])
    assert store.reclaim_space() > size / 3


def test_the_rule() -> None:
    assert not worth_reclaiming(RECLAIM_FLOOR_BYTES, 2 * RECLAIM_FLOOR_BYTES)  # at the floor
    assert worth_reclaiming(RECLAIM_FLOOR_BYTES + 1, 2 * RECLAIM_FLOOR_BYTES)
    assert not worth_reclaiming(RECLAIM_FLOOR_BYTES + 1, 8 * RECLAIM_FLOOR_BYTES)  # an eighth of a big file
    assert worth_reclaiming(3 * RECLAIM_FLOOR_BYTES, 8 * RECLAIM_FLOOR_BYTES)
