"""How the embedded engine's indexes come to match its store: loaded at start-up (the writer tidying the store
first), and, on a read-only replica, caught up with what the writer commits since (or loaded again when it fell
too far behind); the writer meanwhile trims the store's log of changes replicas read."""

from __future__ import annotations

import contextlib
import copy
import logging
import sqlite3
import time

import numpy as np

from retrieval_svc.access import Access
from retrieval_svc.backend import BackendUnavailable
from retrieval_svc.engine_indexes import EngineIndexes
from retrieval_svc.store import CHANGES_KEPT_S, PAGE, ChangesForgotten, StoredChunk

log = logging.getLogger(__name__)

PRUNE_CHANGES_EVERY_S = 60.0
"""How often the writer drops the store's changes older than CHANGES_KEPT_S: a deleted document's id stays in the
log at most this much longer."""


class EngineLoading(EngineIndexes):
    """Start-up and catching up: the store read into the indexes, whole or as the changes since a version."""

    def load(self) -> None:
        """Rebuild the in-memory indexes from the store (no re-embedding); the writer first tidies what churn left
        (:meth:`_tidy_store`). A replica reads one snapshot of the store."""
        started = time.perf_counter()
        if not self.read_only:
            self._tidy_store()
        with self.store.snapshot() if self.read_only else contextlib.nullcontext():
            self._load_store()
        self.bm25.compact()  # else the first search after a bulk load pays for sorting the postings
        self.bm25.settle()
        self.embedder.warm_up()
        self.load_seconds = time.perf_counter() - started
        log.info(
            "index loaded",
            extra={
                "fields": {
                    "documents": len(self.documents),
                    "chunks": len(self.chunks),
                    "index_version": self.version,
                    "vector_index": self.vectors.kind,
                    "load_s": round(self.load_seconds, 3),
                }
            },
        )

    def _tidy_store(self) -> None:
        """Renumber the store's chunk rows when sparse, as the indexes are sized by the highest (Store.renumber_rows),
        then give the disk back the space of deleted documents (Store.reclaim_space). A failure (a disk too full for
        the copy either writes) is logged and the store loaded as it is: it costs memory and disk, not answers."""
        steps = (
            (self.store.renumber_rows, "the chunk rows could not be renumbered; loading them as they are"),
            (self.store.reclaim_space, "the store file could not be compacted; loading it as it is"),
        )
        for tidy, failed in steps:
            try:
                tidy()
            except (sqlite3.Error, BackendUnavailable):
                log.exception(failed)

    def _load_store(self) -> None:
        """Index the store's documents and chunks."""
        if not self.read_only and not self.store.terms_current:
            self.store.forget_terms()  # another tokenizer's (or none): the chunks it drops are tokenised below
        # The version first (after forget_terms moved it): a change committed while a replica loads is then
        # re-applied by follow().
        version = self.store.version
        for doc_id, title, metadata in self.store.documents():
            self.documents[doc_id] = (title, metadata)
        for doc_id, access in self.store.access_lists():
            self.access.set(doc_id, Access.from_json(access))
        rows: list[int] = []
        vectors: list[np.ndarray] = []
        page: list[StoredChunk] = []
        for chunk in self.store.chunks():
            page.append(chunk)
            rows.append(chunk.row)
            vectors.append(chunk.embedding)
            if len(page) == PAGE:
                self._load_page(page)
                page = []
        self._load_page(page)
        if rows:
            matrix = np.vstack(vectors)
            vectors.clear()  # else the per-chunk arrays live through both index builds: 0.8 GB at 500,000 chunks
            self._set_document_vectors(rows, matrix)
            self.vectors.add(np.asarray(rows, dtype=np.int64), matrix)
        self.version = version

    def _load_page(self, page: list[StoredChunk]) -> None:
        """Index a page of stored chunks; the writer stores the terms of those stored without (the next
        start reads them instead)."""
        terms = self._index_stored(page)
        missing = [(chunk.row, " ".join(t)) for chunk, t in zip(page, terms, strict=True) if chunk.terms is None]
        if missing and not self.read_only:
            self.store.store_terms(missing)

    def follow(self) -> bool:
        """Catch up with what another process (the writer) committed to the store; True when it did.

        Read-only replicas call this periodically: the changed documents are dropped from the
        indexes and indexed again from the store, embeddings included, so nothing is re-embedded.
        A replica further behind than the store's log of changes reaches, or holding the chunk row ids the writer
        renumbered since (Store.renumber_rows), loads everything again.
        """
        if self.store.version == self.version:
            return False
        try:
            version, documents, chunks, changed = self.store.changes_since(self.version)
        except ChangesForgotten:
            self._reload()
            return True
        with self._index_lock.writing():
            for doc_id in changed:
                self._unindex(self.rows_by_doc.get(doc_id, []))
                self.documents.pop(doc_id, None)
                self.access.forget(doc_id)
            for doc_id, title, metadata, access in documents:
                self.documents[doc_id] = (title, metadata)
                self.access.set(doc_id, Access.from_json(access))
            self._index_stored(chunks)
            if chunks:
                rows, matrix = [c.row for c in chunks], np.vstack([c.embedding for c in chunks])
                self._set_document_vectors(rows, matrix)
                self.vectors.add(np.asarray(rows, dtype=np.int64), matrix)
            self.bm25.settle()
            self.version = version
        log.info("followed the writer", extra={"fields": {"index_version": version, "documents": len(changed)}})
        return True

    def _reload(self) -> None:
        """Load everything again, for a replica the store's log of changes no longer reaches (see follow). It is built
        beside the indexes searches keep using (memory for both, for the while) and then takes their place at once:
        the copy shares everything else with this engine, so taking its attributes changes only the indexes."""
        log.warning(
            "the store's log of changes does not reach back to this replica's version (it fell behind, or the writer"
            " renumbered the chunk rows as it started): loading everything again"
        )
        fresh = copy.copy(self)
        fresh._empty_indexes(self.vectors.exact_max, self.vectors.nprobe)
        fresh.load()
        with self._index_lock.writing():
            vars(self).update(vars(fresh))

    def _forget_old_changes(self) -> None:
        """The writer drops the store's changes no replica should need (older than CHANGES_KEPT_S), at most every
        PRUNE_CHANGES_EVERY_S; a failure (a full disk) is logged and retried, as it costs searches nothing."""
        now = time.monotonic()
        if now - self._changes_pruned_at < PRUNE_CHANGES_EVERY_S:
            return
        # A version is at least the time it was written in microseconds: none below this was written since.
        through = time.time_ns() // 1_000 - CHANGES_KEPT_S * 1_000_000
        try:
            self.store.forget_changes(through)
        except (sqlite3.Error, BackendUnavailable):
            log.exception("old changes could not be dropped from the store's log; retrying later")
            return
        self._changes_pruned_at = now

    def refresh(self) -> bool:
        """A read-only replica catches up with the writer's store; the writer, always current, keeps the store's
        log of changes to what replicas may still need."""
        if self.read_only:
            return self.follow()
        self._forget_old_changes()
        return False
