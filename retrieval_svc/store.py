"""Durable store of documents, chunks and their embeddings (SQLite in WAL mode).

It is the source of truth: the in-memory BM25 and vector indexes are rebuilt from
it at start-up without re-embedding anything. A batch of upserts or deletes is one
transaction, committed before the caller is acknowledged, so an acknowledged write
survives ``kill -9``. Chunk row ids key every in-memory index (BM25, vectors, the access index's arrays), which
are sized by the highest id: each write takes ids no chunk had before (AUTOINCREMENT), and a writer that starts on
ids made sparse by churn renumbers them densely first (:meth:`Store.renumber_rows`), so that memory follows the
chunks stored rather than every chunk ever written.

Each chunk also keeps its BM25 terms (space-separated), so start-up need not tokenise
every chunk again: that was 42 % of loading 500,000 chunks (benchmarks/README.md). They
count only while the store's ``bm25_terms`` mark equals the tokenizer's version
(likeopt.runtime.text.TOKENIZER_VERSION); a store from before, or from another tokenizer, reads
as having none until its writer starts: it forgets those that changed (:meth:`Store.forget_terms`)
and stores the current ones as it loads (:meth:`Store.store_terms`).

Each write also logs which documents its version touched, for read-only replicas to catch up
(:meth:`Store.changes_since`); the writer forgets what is older than ``CHANGES_KEPT_S``, and a
replica further behind than the log reaches loads everything again (as one that held the ids before a renumbering).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from likeopt.runtime.storage import storage_problem as refused_by_disk
from likeopt.runtime.text import SAME_TERMS_UNLESS_FLAGGED, TOKENIZER_VERSION, terms_may_differ
from retrieval_svc.backend import BackendUnavailable

STORE_FILE = "store.sqlite3"
"""The embedded store's file in LIKEOPT_DATA_DIR: the engine serves it, ``likeopt migrate`` copies it."""
PAGE = 2_000
"""Chunks read per statement at start-up."""
CHANGES_KEPT_S = 600
"""How long the log keeps what a version touched. A replica follows every half second, and catches up faster than
the writer embeds, so one 10 minutes behind has been stopped or frozen: it reloads everything, as at its start,
rather than the log growing with every write for good (and keeping every deleted document's id on disk)."""
WAL_KEPT_BYTES = 64 * 1024 * 1024
"""How much of the write-ahead log stays on disk once checkpointed: a transaction that rewrites every chunk (renumbering
the rows, forgetting the terms) grows the log to the size of the store, and SQLite otherwise keeps the file that size
for as long as a connection is open (a writer's whole life), while ordinary writes need a few MB."""
SPARSE_FLOOR = 100_000
"""Chunk row ids a store may use beyond SPARSE_RATIO times its chunks before its writer renumbers them at start. The
arrays sized by the highest id take 4 bytes per id (the access index's classes) and 1/8 per id for each kept reader
mask: these spare ids cost under 4 MB, less than rewriting every chunk of a small store is worth."""
SPARSE_RATIO = 2
"""How many ids per stored chunk, beyond SPARSE_FLOOR, a store may use before its writer renumbers them."""
RECLAIM_FLOOR_BYTES = 64 * 1024 * 1024
"""Free space inside the store file (pages deleted documents left) below which its writer leaves the file as it is:
new writes reuse those pages anyway, and rewriting the whole file costs more than a few MB are worth."""
RECLAIM_SHARE = 0.25
"""The share of the store file that must be free, beyond RECLAIM_FLOOR_BYTES, before its writer rewrites it smaller."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    metadata TEXT NOT NULL,
    access TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL,
    terms TEXT
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (version INTEGER NOT NULL, doc_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_version ON changes(version);
"""

log = logging.getLogger(__name__)


@dataclass
class StoredChunk:
    """A chunk as the indexes need it."""

    row: int
    doc_id: str
    ordinal: int
    text: str
    embedding: np.ndarray
    terms: str | None = None
    """Its BM25 terms, space-separated, when stored by the current tokenizer."""

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
    terms: list[str] | None = None
    """Each chunk's BM25 terms, space-separated (None: tokenised at the next start instead)."""
    access: str | None = None
    """Who may read it, as retrieval_svc.access.Access.to_json (None: every reader)."""
    rows: list[int] = field(default_factory=list)
    """Filled in by the store with the new chunk row ids."""


class ChangesForgotten(LookupError):
    """The log no longer holds every change since the version asked for: catch up by loading everything."""


class StoreUnusable(RuntimeError):
    """The store cannot be opened where LIKEOPT_DATA_DIR points (read-only, not a folder, no permission)."""


class Store:
    """SQLite-backed documents and chunks; one connection, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self._folder = path.parent
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.OperationalError) as exc:
            raise StoreUnusable(
                f"cannot open the store {path}: {exc}; LIKEOPT_DATA_DIR must be a folder retrieval_svc may write"
                " (a read-only replica too: SQLite writes its shared-memory file beside the store)"
            ) from None
        self._add_column("documents", "access")  # a store from before access lists: every document is open
        columns = {name for _, name, *_ in self._db.execute("PRAGMA table_info(chunks)")}
        if "terms" not in columns:  # a store from before terms were kept
            with contextlib.suppress(sqlite3.OperationalError):  # a replica opening it at once added it first
                self._db.execute("ALTER TABLE chunks ADD COLUMN terms TEXT")
        elif self._db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None:
            self._mark_terms_current()  # a new store: every term it will hold is this tokenizer's

    def _add_column(self, table: str, column: str) -> None:
        """Add a nullable TEXT column to a table of an older store (a replica opening it at once may win)."""
        if column not in {name for _, name, *_ in self._db.execute(f"PRAGMA table_info({table})")}:
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

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

    def access_lists(self) -> Iterator[tuple[str, str | None]]:
        """Every (id, access) of a document that names who may read it (access as Access.to_json)."""
        yield from self._db.execute("SELECT id, access FROM documents WHERE access IS NOT NULL")

    @property
    def terms_current(self) -> bool:
        """Whether the stored BM25 terms are the current tokenizer's."""
        return self._terms_version() == str(TOKENIZER_VERSION)

    def _terms_version(self) -> str | None:
        """The tokenizer version the stored terms are marked with, or None (a store from before terms)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='bm25_terms'").fetchone()
        return None if row is None else str(row[0])

    def chunks(self) -> Iterator[StoredChunk]:
        """Every chunk with its embedding (and its terms, when current), in row order.

        Read a page at a time, with no statement open between pages: the caller may write
        (:meth:`store_terms`) while it iterates.
        """
        after = 0
        while page := list(self._stored_chunks(f"WHERE row > ? ORDER BY row LIMIT {PAGE}", (after,))):
            yield from page
            after = page[-1].row

    def _stored_chunks(self, condition: str, parameters: Sequence[object]) -> Iterator[StoredChunk]:
        """The chunks that condition (``WHERE … ORDER BY …``) selects."""
        current = self.terms_current
        query = f"SELECT row, doc_id, ordinal, text, embedding, terms FROM chunks {condition}"
        for row, doc_id, ordinal, text, blob, terms in self._db.execute(query, parameters):
            embedding = np.frombuffer(blob, dtype=np.float32)
            yield StoredChunk(row, doc_id, ordinal, text, embedding, terms if current else None)

    def store_terms(self, terms: Sequence[tuple[int, str]]) -> None:
        """Keep (row, terms) for chunks stored without them (the writer, while it loads)."""
        with self._lock, self._transaction():
            self._db.executemany("UPDATE chunks SET terms = ? WHERE row = ?", [(t, row) for row, t in terms])

    def forget_terms(self) -> int:
        """Drop the stored terms the current tokenizer would not give, and expect its terms from now on: after a
        version whose terms differ only in text terms_may_differ flags, only the chunks with such text (an
        upgrade then tokenises a few chunks, not the whole corpus again); else every chunk's. Returns the new
        version: the tokenizer ranks differently, so what is cached under the old one (searches and answers a
        release before ranked, in a Redis that outlives the upgrade) must not be reused."""
        with self._lock, self._transaction():
            earlier = self._terms_version()
            if earlier in {str(version) for version in SAME_TERMS_UNLESS_FLAGGED}:
                self._db.create_function("terms_may_differ", 1, terms_may_differ, deterministic=True)
                self._db.execute(
                    "UPDATE chunks SET terms = NULL WHERE terms IS NOT NULL AND row IN (SELECT c.row FROM chunks c"
                    " JOIN documents d ON d.id = c.doc_id WHERE terms_may_differ(d.title || ' ' || c.text))"
                )
            else:
                self._db.execute("UPDATE chunks SET terms = NULL WHERE terms IS NOT NULL")
            self._mark_terms_current()
            version = self._bump_version()
            (untokenised,) = self._db.execute("SELECT COUNT(*) FROM chunks WHERE terms IS NULL").fetchone()
        log.info(  # an operator sees why the first start after an upgrade is slower and the caches start cold
            "the store's BM25 terms are another tokenizer's: tokenising its chunks again, index version moved on",
            extra={
                "fields": {
                    "terms_of": earlier or "none",
                    "tokenizer": TOKENIZER_VERSION,
                    "chunks": untokenised,
                    "index_version": version,
                }
            },
        )
        return version

    def _mark_terms_current(self) -> None:
        self._set_meta("bm25_terms", str(TOKENIZER_VERSION))

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

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
                    "INSERT INTO documents (id, title, metadata, access) VALUES (?, ?, ?, ?)",
                    (doc.id, doc.title, json.dumps(doc.metadata, ensure_ascii=False), doc.access),
                )
                terms = doc.terms or [None] * len(doc.chunks)
                doc.rows = [
                    self._db.execute(
                        "INSERT INTO chunks (doc_id, ordinal, text, embedding, terms) VALUES (?, ?, ?, ?, ?)",
                        (doc.id, ordinal, text, doc.embeddings[ordinal].astype(np.float32).tobytes(), terms[ordinal]),
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
    ) -> tuple[int, list[tuple[str, str, dict[str, str], str | None]], list[StoredChunk], set[str]]:
        """What a read-only replica needs to catch up from ``version``, read as one snapshot.

        Returns the current version, the changed documents that still exist (id, title,
        metadata, access), their chunks, and the ids of every changed document (deleted ones too).
        ChangesForgotten when the log was pruned past ``version`` (:meth:`forget_changes`).
        """
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if version < self._changes_kept_after():
                    raise ChangesForgotten(f"the log of changes no longer reaches back to version {version}")
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
                        (doc_id, title, json.loads(metadata), access)
                        for doc_id, title, metadata, access in self._db.execute(
                            f"SELECT id, title, metadata, access FROM documents WHERE id IN ({marks})", batch
                        )
                    ]
                    chunks += self._stored_chunks(f"WHERE doc_id IN ({marks}) ORDER BY row", batch)
            finally:
                self._db.execute("COMMIT")
        return current, documents, chunks, changed

    def _record_changes(self, version: int, doc_ids: Sequence[str]) -> None:
        """Log which documents a version touched, so read-only replicas can follow."""
        self._db.executemany("INSERT INTO changes (version, doc_id) VALUES (?, ?)", [(version, d) for d in doc_ids])

    def forget_changes(self, through: int) -> None:
        """Drop the log's changes of versions up to through (the writer, now and then), and keep in meta the newest
        version dropped: a replica at it or later still finds every change since in the log, an older one cannot."""
        with self._lock, self._transaction():
            (dropped,) = self._db.execute("SELECT MAX(version) FROM changes WHERE version <= ?", (through,)).fetchone()
            if dropped is not None:
                self._db.execute("DELETE FROM changes WHERE version <= ?", (dropped,))
                self._set_meta("changes_kept_after", str(dropped))

    def renumber_rows(self) -> int | None:
        """Number the chunk rows 1..n in their order, in one transaction, when their ids are sparse (:func:`sparse`);
        returns the new version, or None when the ids are left as they are (the writer, as it starts).

        Rows move in ascending order, each to the lowest id not yet taken, which no other row holds (the k-th row's
        id is at least k): each row moves once, and those before the first gap not at all. The version moves on and
        the log of changes is emptied up to it, so a replica holding the old ids finds the log too short and loads
        everything again (:meth:`changes_since`), and nothing cached under an older version is reused.
        """
        started = time.perf_counter()
        with self._lock, self._transaction():
            top, chunks = self._row_span()
            if not sparse(top, chunks):
                return None
            rows = [row for (row,) in self._db.execute("SELECT row FROM chunks ORDER BY row")]
            moves = [(new, row) for new, row in enumerate(rows, start=1) if new != row]
            self._db.executemany("UPDATE chunks SET row = ? WHERE row = ?", moves)
            self._db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'chunks'", (len(rows),))
            version = self._bump_version()
            self._db.execute("DELETE FROM changes")
            self._set_meta("changes_kept_after", str(version))
        seconds = round(time.perf_counter() - started, 3)
        log.info("chunk rows renumbered", extra={"fields": {"chunks": chunks, "highest_id": top, "seconds": seconds}})
        return version

    def reclaim_space(self) -> int | None:
        """Rewrite the store file without the pages deleted documents left free (VACUUM), when :func:`worth_reclaiming`;
        returns the bytes given back to the disk, or None when the file is left as it is (the writer, as it starts).

        SQLite reuses free pages but never returns them, so a collection cut by half kept its largest size on disk.
        Chunk row ids are kept (an INTEGER PRIMARY KEY), and nothing readers see changes.
        """
        started = time.perf_counter()
        with self._lock:
            free, size = (self._db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("freelist_count", "page_count"))
            (page,) = self._db.execute("PRAGMA page_size").fetchone()
            if not worth_reclaiming(free * page, size * page):
                return None
            try:
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as exc:
                raise storage_problem(exc, self._folder) or exc from None
            (after,) = self._db.execute("PRAGMA page_count").fetchone()
        reclaimed = (size - after) * page
        seconds = round(time.perf_counter() - started, 3)
        log.info("store file compacted", extra={"fields": {"bytes_reclaimed": reclaimed, "seconds": seconds}})
        return reclaimed

    def _row_span(self) -> tuple[int, int]:
        """The highest chunk row id handed out (new rows continue after it) and how many chunks there are."""
        (top,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        (chunks,) = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        return int(top), int(chunks)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state of the store, whatever another process commits meanwhile: a replica
        loads while its writer may renumber the rows, and ids read before and after that must not meet."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _changes_kept_after(self) -> int:
        """The version after which the log holds every change (0: all of them, as it was never pruned)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='changes_kept_after'").fetchone()
        return int(row[0]) if row else 0

    def _bump_version(self) -> int:
        """A version no store has had before: after the last one, and at least the time in microseconds (as the
        Milvus backend's). Cache keys name versions, and the caches outlive a store: a data folder replaced or
        started afresh beside a kept Redis counted 1, 2, ... again, and was served the old store's results."""
        version = max(self.version + 1, time.time_ns() // 1_000)
        self._set_meta("index_version", str(version))
        return version

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._folder)


def sparse(top: int, chunks: int) -> bool:
    """Whether chunk row ids handed out up to top are worth renumbering for chunks stored (SPARSE_FLOOR)."""
    return top > SPARSE_RATIO * chunks + SPARSE_FLOOR


def worth_reclaiming(free: int, size: int) -> bool:
    """Whether free bytes inside a store file of size bytes are worth rewriting it for (RECLAIM_FLOOR_BYTES)."""
    return free > RECLAIM_FLOOR_BYTES and free > RECLAIM_SHARE * size


DATA_FOLDER = "retrieval_svc's data folder (LIKEOPT_DATA_DIR)"
"""How a caller is told which place refused a write."""


def storage_problem(error: sqlite3.OperationalError, folder: Path) -> BackendUnavailable | None:
    """A write refused by the disk as BackendUnavailable naming the data folder (likeopt.runtime.storage); None for
    any other error."""
    refused = refused_by_disk(error, DATA_FOLDER, folder)
    return BackendUnavailable(refused) if refused else None


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error (COMMIT's own included: SQLite may leave a transaction
    open when a disk is full)."""

    def __init__(self, db: sqlite3.Connection, folder: Path) -> None:
        self._db = db
        self._folder = folder

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: BaseException | None, *_: object) -> None:
        if exc is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.OperationalError as failed:
                exc = failed
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and (problem := storage_problem(exc, self._folder)):
            raise problem from None
        if exc_type is None:
            raise exc
