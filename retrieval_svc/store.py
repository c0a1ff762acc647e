"""Durable store of documents, chunks and their embeddings (SQLite in WAL mode).

It is the source of truth: the in-memory BM25 and vector indexes are rebuilt from
it at start-up without re-embedding anything. A batch of upserts or deletes is one
transaction, committed before the caller is acknowledged, so an acknowledged write
survives ``kill -9``. Chunk row ids are never reused (AUTOINCREMENT); they key both
in-memory indexes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (version INTEGER NOT NULL, doc_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_version ON changes(version);
"""


@dataclass
class StoredChunk:
    """A chunk as the indexes need it."""

    row: int
    doc_id: str
    ordinal: int
    text: str
    embedding: np.ndarray

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.ordinal}"


@dataclass
class NewDocument:
    """A document ready to store: chunked and embedded."""

    id: str
    title: str
    metadata: dict[str, str]
    chunks: list[str]
    embeddings: np.ndarray
    rows: list[int] = field(default_factory=list)
    """Filled in by the store with the new chunk row ids."""


class Store:
    """SQLite-backed documents and chunks; one connection, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='index_version'").fetchone()
        return int(row[0]) if row else 0

    def documents(self) -> Iterator[tuple[str, str, dict[str, str]]]:
        """Every (id, title, metadata)."""
        for doc_id, title, metadata in self._db.execute("SELECT id, title, metadata FROM documents"):
            yield doc_id, title, json.loads(metadata)

    def chunks(self) -> Iterator[StoredChunk]:
        """Every chunk with its embedding, in row order."""
        query = "SELECT row, doc_id, ordinal, text, embedding FROM chunks ORDER BY row"
        for row, doc_id, ordinal, text, blob in self._db.execute(query):
            yield StoredChunk(row, doc_id, ordinal, text, np.frombuffer(blob, dtype=np.float32))

    def rows_of(self, doc_ids: Sequence[str]) -> list[int]:
        """Chunk rows of the given documents."""
        rows: list[int] = []
        for start in range(0, len(doc_ids), 500):
            batch = doc_ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows += [r for (r,) in self._db.execute(f"SELECT row FROM chunks WHERE doc_id IN ({marks})", batch)]
        return rows

    def upsert(self, documents: Sequence[NewDocument]) -> tuple[list[int], int]:
        """Replace the documents atomically; returns (rows removed, new version)."""
        with self._lock, self._transaction():
            removed = self.rows_of([d.id for d in documents])
            self._db.executemany("DELETE FROM documents WHERE id = ?", [(d.id,) for d in documents])
            for doc in documents:
                self._db.execute(
                    "INSERT INTO documents (id, title, metadata) VALUES (?, ?, ?)",
                    (doc.id, doc.title, json.dumps(doc.metadata, ensure_ascii=False)),
                )
                doc.rows = [
                    self._db.execute(
                        "INSERT INTO chunks (doc_id, ordinal, text, embedding) VALUES (?, ?, ?, ?)",
                        (doc.id, ordinal, text, doc.embeddings[ordinal].astype(np.float32).tobytes()),
                    ).lastrowid
                    for ordinal, text in enumerate(doc.chunks)
                ]
            version = self._bump_version()
            self._record_changes(version, [d.id for d in documents])
            return removed, version

    def delete(self, doc_ids: Sequence[str]) -> tuple[list[int], int, int]:
        """Delete documents atomically; returns (rows removed, documents deleted, new version)."""
        with self._lock, self._transaction():
            removed = self.rows_of(doc_ids)
            deleted = sum(
                self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount for doc_id in doc_ids
            )
            version = self._bump_version() if deleted else self.version
            if deleted:
                self._record_changes(version, doc_ids)
            return removed, deleted, version

    def changes_since(
        self, version: int
    ) -> tuple[int, list[tuple[str, str, dict[str, str]]], list[StoredChunk], set[str]]:
        """What a read-only replica needs to catch up from ``version``, read as one snapshot.

        Returns the current version, the changed documents that still exist (id, title,
        metadata), their chunks, and the ids of every changed document (deleted ones too).
        """
        with self._lock:
            self._db.execute("BEGIN")
            try:
                current = self.version
                changed = {
                    d for (d,) in self._db.execute("SELECT DISTINCT doc_id FROM changes WHERE version > ?", (version,))
                }
                ids = sorted(changed)
                documents, chunks = [], []
                for start in range(0, len(ids), 500):
                    batch = ids[start : start + 500]
                    marks = ",".join("?" * len(batch))
                    documents += [
                        (doc_id, title, json.loads(metadata))
                        for doc_id, title, metadata in self._db.execute(
                            f"SELECT id, title, metadata FROM documents WHERE id IN ({marks})", batch
                        )
                    ]
                    chunks += [
                        StoredChunk(row, doc_id, ordinal, text, np.frombuffer(blob, dtype=np.float32))
                        for row, doc_id, ordinal, text, blob in self._db.execute(
                            "SELECT row, doc_id, ordinal, text, embedding FROM chunks "
                            f"WHERE doc_id IN ({marks}) ORDER BY row",
                            batch,
                        )
                    ]
            finally:
                self._db.execute("COMMIT")
        return current, documents, chunks, changed

    def _record_changes(self, version: int, doc_ids: Sequence[str]) -> None:
        """Log which documents a version touched, so read-only replicas can follow."""
        self._db.executemany("INSERT INTO changes (version, doc_id) VALUES (?, ?)", [(version, d) for d in doc_ids])

    def _bump_version(self) -> int:
        version = self.version + 1
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('index_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )
        return version

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
