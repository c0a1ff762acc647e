"""A read-only replica follows the writer's committed changes through the shared store."""

from __future__ import annotations

from pathlib import Path

from retrieval_svc.backend import DocumentInput
from retrieval_svc.engine import RetrievalEngine
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
