"""A read-only replica follows the writer's committed changes through the shared store."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_svc import engine_loading
from retrieval_svc.backend import DocumentInput
from retrieval_svc.engine import RetrievalEngine
from retrieval_svc.store import ChangesForgotten
from tests.unit.test_retrieval_engine import engine_at, ingest, params, search


def agree(writer: RetrievalEngine, reader: RetrievalEngine) -> None:
    assert reader.version == writer.version
    assert reader.documents == writer.documents
    assert set(reader.chunks) == set(writer.chunks)
    assert len(reader.bm25) == len(reader.vectors) == len(reader.chunks)


def test_reader_follows_upserts_replacements_and_deletes(tmp_path: Path) -> None:
    writer = engine_at(tmp_path)
    ingest(writer, DocumentInput("old", "Old", "Lighthouses guide ships at night.", {}))
    reader = engine_at(tmp_path)
    agree(writer, reader)
    assert reader.follow() is False

    ingest(writer, DocumentInput("new", "New", "Quokkas live on Rottnest island.", {"kind": "animal"}))
    assert reader.follow() is True
    agree(writer, reader)
    assert search(reader, "quokkas island", params("bm25", per_document=True))[0] == "new"

    ingest(writer, DocumentInput("new", "New", "Wombats dig burrows.", {"kind": "animal"}))
    writer.delete(["old"])
    assert reader.follow() is True
    agree(writer, reader)
    assert search(reader, "quokkas island", params("bm25")) == []
    assert search(reader, "wombats burrows", params("hybrid", per_document=True))[0] == "new"
    assert "old" not in reader.documents


def test_a_reader_that_started_mid_way_catches_up_without_embedding(tmp_path: Path) -> None:
    writer = engine_at(tmp_path)
    ingest(writer, DocumentInput("a", "A", "Alpha text about rivers.", {}))
    reader = engine_at(tmp_path)
    embedded_before = reader.embedder.encoded
    for n in range(5):
        ingest(writer, DocumentInput(f"d{n}", f"D{n}", f"Document {n} about mountains and rivers.", {}))
    reader.follow()
    agree(writer, reader)
    assert reader.embedder.encoded == embedded_before


def changes_logged(engine: RetrievalEngine) -> list[tuple[int, str]]:
    return engine.store._db.execute("SELECT version, doc_id FROM changes ORDER BY version, doc_id").fetchall()


def test_the_log_keeps_only_recent_changes_and_an_older_version_cannot_catch_up_from_it(tmp_path: Path) -> None:
    """The log of changes grew by a row per document per write for good, deleted documents' ids included."""
    writer = engine_at(tmp_path)
    first = ingest(writer, DocumentInput("gone.md", "Gone", "Lighthouses guide ships.", {}))
    _, deleted = writer.delete(["gone.md"])
    kept = ingest(writer, DocumentInput("kept", "Kept", "Quokkas live on islands.", {}))
    writer.store.forget_changes(deleted)
    assert changes_logged(writer) == [(kept, "kept")]
    assert writer.store.changes_since(deleted)[3] == {"kept"}
    with pytest.raises(ChangesForgotten):
        writer.store.changes_since(first)


def test_the_writer_prunes_the_log_as_it_runs_and_a_replica_behind_it_loads_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = engine_at(tmp_path)
    ingest(writer, DocumentInput("old", "Old", "Lighthouses guide ships at night.", {}))
    reader = engine_at(tmp_path, read_only=True)
    for n in range(3):
        ingest(writer, DocumentInput(f"d{n}", f"D{n}", f"Document {n} about mountains and rivers.", {}))
    writer.delete(["old", "d0"])
    ingest(writer, DocumentInput("d1", "D1", "Wombats dig burrows.", {}))
    monkeypatch.setattr(engine_loading, "CHANGES_KEPT_S", 0)  # every change so far is older than the log keeps
    assert writer.refresh() is False
    assert changes_logged(writer) == []
    embedded_before = reader.embedder.encoded
    assert reader.refresh() is True
    agree(writer, reader)
    assert reader.embedder.encoded == embedded_before + 1  # the warm-up query only: nothing stored is embedded
    assert search(reader, "wombats burrows", params("hybrid", per_document=True))[0] == "d1"
    assert search(reader, "lighthouses ships", params("bm25")) == []
    ingest(writer, DocumentInput("d3", "D3", "Quokkas live on Rottnest island.", {}))
    assert reader.refresh() is True  # from the version it reloaded at, through the log again
    agree(writer, reader)
