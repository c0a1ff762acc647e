"""The retrieval engine: chunking, embedding, both indexes and fusion, in process.

The durable store is the source of truth; the BM25 and vector indexes live in
memory and are rebuilt from it at start-up. Methods here are synchronous and
CPU-bound: the gRPC service calls them from worker threads, never on its event loop.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import logging
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from opentelemetry import trace

from likeopt.runtime.config import Config, setting_default
from likeopt.runtime.principal import Reader
from likeopt.runtime.text import tokenize
from retrieval_svc.access import Access, RowMask
from retrieval_svc.access_index import AccessIndex
from retrieval_svc.backend import (
    BackendUnavailable,
    ChunkHit,
    DocumentChunks,
    DocumentInput,
    DocumentSummary,
    IndexStats,
    SearchParams,
    best_per_document,
    check_chunk_tokens,
    chunk_document,
    embedding_text,
)
from retrieval_svc.bm25 import BM25Index
from retrieval_svc.cancellable_writes import raise_if_stopped
from retrieval_svc.doc_vectors import DocumentVectors, blend
from retrieval_svc.embedder import Embedder, configured_embedder
from retrieval_svc.filter_masks import FilterMasks
from retrieval_svc.fusion import Hit, Ranked, fuse
from retrieval_svc.rwlock import ReadWriteLock
from retrieval_svc.store import CHANGES_KEPT_S, PAGE, STORE_FILE, ChangesForgotten, NewDocument, Store, StoredChunk
from retrieval_svc.vectors import VectorIndex

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

CANDIDATE_DEPTH = 100
"""How many candidates each retriever contributes to hybrid fusion."""
DOCUMENT_POOL = 2
"""With document vectors, dense search re-scores this many times the results it returns, so that a document
whose whole text matches can climb in from below the cut."""
PRUNE_CHANGES_EVERY_S = 60.0
"""How often the writer drops the store's changes older than CHANGES_KEPT_S: a deleted document's id stays in the
log at most this much longer."""


@dataclass(frozen=True)
class ChunkRef:
    """What a hit needs to know about a chunk, kept in memory."""

    doc_id: str
    ordinal: int
    text: str


class RetrievalEngine:
    """The embedded backend: owns the store and both indexes, and keeps them in agreement."""

    def __init__(
        self,
        data_dir: Path,
        embedder: Embedder,
        chunk_tokens: int,
        chunk_overlap: int,
        vector_exact_max: int = setting_default("vector_exact_max"),
        vector_nprobe: int = setting_default("vector_nprobe"),
        read_only: bool = False,
        document_weight: float = setting_default("document_weight"),
    ) -> None:
        check_chunk_tokens(chunk_tokens, embedder)
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.read_only = read_only
        """A replica that follows the writer: it never writes to the store."""
        self.shared_version = False
        """One writer, in process or followed every half second: no read of the version per search."""
        self.store = Store(data_dir / STORE_FILE)
        self.document_weight = document_weight
        """Share of a chunk's dense score that is its document's (retrieval_svc.doc_vectors)."""
        self._empty_indexes(vector_exact_max, vector_nprobe)
        self.load_seconds = 0.0
        self.counters: Counter[str] = Counter()
        """Query embeddings and searches computed: what caching and single-flight are meant to save."""
        self._write_lock = threading.Lock()
        self._index_lock = ReadWriteLock()
        self._counts_lock = threading.Lock()
        self._id_order: tuple[tuple[int, int], list[str]] = ((-1, -1), [])
        self._changes_pruned_at = -math.inf

    def _empty_indexes(self, vector_exact_max: int, vector_nprobe: int) -> None:
        """The in-memory indexes, empty, at version 0: what load() fills."""
        self.bm25 = BM25Index()
        self.vectors = VectorIndex(self.embedder.dim, vector_exact_max, vector_nprobe)
        self.doc_vectors = DocumentVectors(self.embedder.dim)
        self.chunks: dict[int, ChunkRef] = {}
        self.documents: dict[str, tuple[str, dict[str, str]]] = {}
        self.rows_by_doc: dict[str, list[int]] = {}
        self.access = AccessIndex()
        self.filter_masks = FilterMasks()
        self.version = 0

    # -- start-up ---------------------------------------------------------

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
        self.embedder.encode_query("warm-up")  # the first forward pass allocates; keep it out of a user's search
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
        # The version first: a change committed while the writer loads is then re-applied by follow().
        version = self.store.version
        for doc_id, title, metadata in self.store.documents():
            self.documents[doc_id] = (title, metadata)
        for doc_id, access in self.store.access_lists():
            self.access.set(doc_id, Access.from_json(access))
        rows: list[int] = []
        vectors: list[np.ndarray] = []
        if not self.read_only and not self.store.terms_current:
            self.store.forget_terms()  # another tokenizer's (or none): the chunks it drops are tokenised below
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

    # -- writes -----------------------------------------------------------

    def prepare(self, doc: DocumentInput) -> list[str]:
        """Split a document into chunks that fit the model's window with the title (UnfitDocument if it cannot)."""
        return chunk_document(doc, self.embedder, self.chunk_tokens, self.chunk_overlap)

    def upsert(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> int:
        """Embed, store durably, then index; returns the new index version."""
        texts = [embedding_text(d.title, c) for d, chunks in zip(docs, chunked, strict=True) for c in chunks]
        embeddings = self.embedder.encode(texts)
        raise_if_stopped()  # the last look before anything is stored (a write of one slice has had none)
        terms = [tokenize(text) for text in texts]  # embedded and BM25-indexed as the same text
        new_docs: list[NewDocument] = []
        offset = 0
        for doc, chunks in zip(docs, chunked, strict=True):
            end = offset + len(chunks)
            stored_terms = [" ".join(t) for t in terms[offset:end]]
            new_docs.append(
                NewDocument(
                    doc.id, doc.title, doc.metadata, chunks, embeddings[offset:end], stored_terms, doc.access.to_json()
                )
            )
            offset = end
        with self._write_lock:
            removed, version = self.store.upsert(new_docs)
            with self._index_lock.writing():
                self._unindex(removed)
                located = []
                for doc in new_docs:
                    self.documents[doc.id] = (doc.title, doc.metadata)
                    self.access.set(doc.id, Access.from_json(doc.access))
                    located += [
                        (row, doc.id, n, text) for n, (row, text) in enumerate(zip(doc.rows, doc.chunks, strict=True))
                    ]
                self._index_chunks(located, terms)
                for doc in new_docs if self.document_weight > 0 else ():
                    self.doc_vectors.set(doc.id, doc.embeddings)
                all_rows = np.asarray([r for d in new_docs for r in d.rows], dtype=np.int64)
                self.vectors.add(all_rows, embeddings)
                self.bm25.settle()
                self.version = version
        return version

    def delete(self, doc_ids: Sequence[str]) -> tuple[int, int]:
        """Delete documents from the store and every index; returns (deleted, version)."""
        with self._write_lock:
            removed, deleted, version = self.store.delete(list(doc_ids))
            with self._index_lock.writing():
                self._unindex(removed)
                for doc_id in doc_ids:
                    self.documents.pop(doc_id, None)
                    self.access.forget(doc_id)
                self.bm25.settle()
                self.version = version
        return deleted, version

    def _index_stored(self, chunks: list[StoredChunk]) -> list[list[str]]:
        """Index chunks read from the store, with their stored terms or, without them, tokenised now."""
        terms = [
            c.terms.split() if c.terms is not None else tokenize(embedding_text(self.documents[c.doc_id][0], c.text))
            for c in chunks
        ]
        self._index_chunks([(c.row, c.doc_id, c.ordinal, c.text) for c in chunks], terms)
        return terms

    def _index_chunks(self, chunks: list[tuple[int, str, int, str]], terms: list[list[str]]) -> None:
        """Index (row, doc_id, ordinal, text) chunks with their BM25 terms; BM25 takes them all at once."""
        for row, doc_id, ordinal, text in chunks:
            self.chunks[row] = ChunkRef(doc_id, ordinal, text)
            self.rows_by_doc.setdefault(doc_id, []).append(row)
        self.access.place([(row, doc_id) for row, doc_id, _, _ in chunks])
        self.bm25.add_many([(chunk[0], chunk_terms) for chunk, chunk_terms in zip(chunks, terms, strict=True)])

    def _set_document_vectors(self, rows: list[int], matrix: np.ndarray) -> None:
        """Document vectors of indexed chunks given as rows and their vectors (every chunk of each document); none
        when the weight is 0, so that a service scoring chunks alone pays no memory for them."""
        if self.document_weight <= 0:
            return
        by_doc: dict[str, list[int]] = {}
        for n, row in enumerate(rows):
            by_doc.setdefault(self.chunks[row].doc_id, []).append(n)
        for doc_id, positions in by_doc.items():
            if len(positions) > 1:
                self.doc_vectors.set(doc_id, matrix[positions])

    def _unindex(self, rows: Iterable[int]) -> None:
        rows = list(rows)
        for row in rows:
            ref = self.chunks.pop(row, None)
            if ref is not None:
                self.rows_by_doc.pop(ref.doc_id, None)
                self.doc_vectors.forget(ref.doc_id)
            self.bm25.remove(row)
        self.access.unplace(rows)
        self.vectors.remove(np.asarray(rows, dtype=np.int64))

    # -- reads: each holds the index shared, so searches run side by side (retrieval_svc/rwlock.py) --------

    def _count(self, what: str) -> None:
        with self._counts_lock:  # searches run at once: an unlocked += may lose one
            self.counters[what] += 1

    def embed_query(self, query: str) -> np.ndarray:
        """The query's unit vector."""
        self._count("embeddings")
        with tracer.start_as_current_span("query embedding"):
            return self.embedder.encode_query(query)

    def search(self, query: str, params: SearchParams, query_vector: np.ndarray | None) -> list[ChunkHit]:
        """Ranked chunks with their document's fields; query_vector is needed unless mode is bm25.

        One hold of the index from ranking to the hits' fields: a write (or a replica catching up, or reloading
        after the writer renumbered the rows) between them removed rows the ranking had found, or gave their ids
        to other chunks.
        """
        self._count("searches")
        with self._index_lock.reading():
            return [self._chunk_hit(hit) for hit in self._ranked_rows(query, params, query_vector)]

    def search_batch(
        self, queries: Sequence[str], params: SearchParams, vectors: Sequence[np.ndarray | None]
    ) -> list[list[ChunkHit]]:
        """Each query's search, one after another: in process, searches share nothing worth batching."""
        return [self.search(query, params, vector) for query, vector in zip(queries, vectors, strict=True)]

    def _chunk_hit(self, hit: Hit) -> ChunkHit:
        ref = self.chunks[hit.row]
        title, metadata = self.documents[ref.doc_id]
        return ChunkHit(
            doc_id=ref.doc_id,
            ordinal=ref.ordinal,
            title=title,
            text=ref.text,
            metadata=metadata,
            score=hit.score,
            bm25_score=hit.bm25_score,
            dense_score=hit.dense_score,
            bm25_rank=hit.bm25_rank,
            dense_rank=hit.dense_rank,
        )

    def _ranked_rows(self, query: str, params: SearchParams, query_vector: np.ndarray | None) -> list[Hit]:
        """Rank chunks for the query, as store rows (the caller holds the index for reading)."""
        depth = max(params.top_k, CANDIDATE_DEPTH) if params.mode == "hybrid" else params.top_k
        allowed = self._allowed_rows(params.filters, params.reader)
        readable = self.access.mask(params.reader, self.version) if params.reader is not None else None
        lexical: Ranked = []
        dense: Ranked = []
        if params.mode in ("hybrid", "bm25"):
            terms = tokenize(query)
            with tracer.start_as_current_span("bm25 search"):
                lexical = self._ranking(
                    lambda n: self.bm25.search(terms, n, allowed, part=readable), depth, params.per_document
                )
        if params.mode in ("hybrid", "dense") and query_vector is not None:
            with tracer.start_as_current_span(
                "vector search", attributes={"likeopt.retrieval.vector_index": self.vectors.kind}
            ):
                dense = self._dense_ranking(query_vector, depth, params, allowed)
        if params.per_document:
            dense = self._rows_of_first(lexical, dense)
        with tracer.start_as_current_span(
            "fusion",
            attributes={
                "likeopt.retrieval.mode": params.mode,
                "likeopt.retrieval.fusion": params.fusion,
                "likeopt.retrieval.top_k": params.top_k,
                "likeopt.retrieval.index_version": self.version,
            },
        ):
            return fuse(lexical, dense, params)

    def _dense_ranking(self, vector: np.ndarray, depth: int, params: SearchParams, allowed: RowMask | None) -> Ranked:
        """The top depth of dense search, each chunk's cosine blended with its document's (when weighted) over
        DOCUMENT_POOL times as many candidates."""
        weight = self.document_weight if params.document_weight is None else params.document_weight
        if weight <= 0.0:
            return self._ranking(lambda n: self.vectors.search(vector, n, allowed), depth, params.per_document)

        def retrieve(n: int) -> Ranked:
            found = self.vectors.search(vector, n, allowed)
            return blend(found, lambda row: self.chunks[row].doc_id, self.doc_vectors, vector, weight)

        return self._ranking(retrieve, depth * DOCUMENT_POOL, params.per_document)[:depth]

    def _rows_of_first(self, first: Ranked, second: Ranked) -> Ranked:
        """second with each document's row replaced by its row in first, so fusion sees one key per document."""
        row_of = {self.chunks[row].doc_id: row for row, _ in first}
        return [(row_of.get(self.chunks[row].doc_id, row), score) for row, score in second]

    def _ranking(self, retrieve: Callable[[int], Ranked], depth: int, per_document: bool) -> Ranked:
        """The top depth of a retriever; per document, each document at its best chunk only."""
        if not per_document:
            return retrieve(depth)
        return best_per_document(retrieve, depth, lambda chunk: self.chunks[chunk[0]].doc_id)

    def _allowed_rows(self, filters: tuple[tuple[str, str], ...], reader: Reader | None = None) -> RowMask | None:
        """The rows a search may rank: those of documents matching every metadata filter and readable by the
        reader; None when neither restricts. Both retrievers take only these, so nothing hidden is ever ranked,
        fused or counted."""
        mask = self.access.mask(reader, self.version) if reader is not None else None
        if not filters:
            return mask
        matching = self.filter_masks.mask(filters, self.version, lambda: self._matching_rows(filters))
        return matching if mask is None else matching & mask

    def _matching_rows(self, filters: tuple[tuple[str, str], ...]) -> RowMask:
        """The rows of the documents whose metadata holds every filter's value (a walk over all of them)."""
        rows = [
            row
            for doc_id, (_, metadata) in self.documents.items()
            if all(metadata.get(k) == v for k, v in filters)
            for row in self.rows_by_doc.get(doc_id, ())
        ]
        return RowMask.of_rows(rows, self.access.size)

    def refresh(self) -> bool:
        """A read-only replica catches up with the writer's store; the writer, always current, keeps the store's
        log of changes to what replicas may still need."""
        if self.read_only:
            return self.follow()
        self._forget_old_changes()
        return False

    def list_documents(
        self, after_id: str, limit: int, reader: Reader | None = None, ids: Sequence[str] = ()
    ) -> tuple[list[DocumentSummary], int]:
        """Up to limit documents whose ids sort after after_id, in id order, and how many there are in all; with a
        reader, of the documents it may read only; with ids, of those documents only."""
        with self._index_lock.reading():
            listed = sorted({doc_id for doc_id in ids if doc_id in self.documents}) if ids else self._sorted_ids()
            start = bisect.bisect_right(listed, after_id) if after_id else 0
            if reader is None:
                chosen, total = listed[start : start + limit], len(listed)
            else:
                visible = self.access.readable(reader, self.version)
                chosen = [doc_id for doc_id in listed[start:] if visible(doc_id)][:limit]
                total = sum(1 for doc_id in listed if visible(doc_id))
            page = [
                DocumentSummary(doc_id, *self.documents[doc_id], chunks=len(self.rows_by_doc.get(doc_id, ())))
                for doc_id in chosen
            ]
            return page, total

    def _sorted_ids(self) -> list[str]:
        """Document ids in order; sorted again only after a write, as pages are read one after another."""
        key = (self.version, len(self.documents))
        if self._id_order[0] != key:
            self._id_order = (key, sorted(self.documents))
        return self._id_order[1]

    def accesses_of(self, doc_ids: Sequence[str]) -> dict[str, Access]:
        """The access of each of doc_ids that is stored."""
        with self._index_lock.reading():
            return {d: self.access.access_of(d) for d in doc_ids if d in self.documents}

    def get_document(self, doc_id: str, reader: Reader | None = None) -> DocumentChunks | None:
        """The document with its chunks in order, or None when there is none with that id (that reader may read:
        a hidden document and a missing one look the same)."""
        with self._index_lock.reading():
            if doc_id not in self.documents:
                return None
            if reader is not None and not self.access.readable(reader, self.version)(doc_id):
                return None
            title, metadata = self.documents[doc_id]
            refs = sorted((self.chunks[row] for row in self.rows_by_doc.get(doc_id, ())), key=lambda r: r.ordinal)
            return DocumentChunks(doc_id, title, dict(metadata), [(r.ordinal, r.text) for r in refs])

    def stats(self, reader: Reader | None = None) -> IndexStats:
        """Counts for GetIndexStatus; a reader's are of what it may read (the index's own sizes are not shown)."""
        with self._index_lock.reading():
            if reader is not None:
                visible = self.access.readable(reader, self.version)
                documents = sum(1 for doc_id in self.documents if visible(doc_id))
                chunks = len(self.access.mask(reader, self.version))
                return IndexStats(documents, chunks, chunks, chunks, self.vectors.kind, self.load_seconds)
            return IndexStats(
                documents=len(self.documents),
                chunks=len(self.chunks),
                bm25_chunks=len(self.bm25),
                vector_chunks=len(self.vectors),
                vector_index=self.vectors.kind,
                load_seconds=self.load_seconds,
            )

    def close(self) -> None:
        self.store.close()


def configured_engine(config: Config, data_dir: Path | None = None) -> RetrievalEngine:
    """An engine as retrieval_svc runs it (the configured model, chunking and vector index) on data_dir, by
    default the configured one; not loaded yet."""
    return RetrievalEngine(
        data_dir or config.data_dir,
        configured_embedder(config),
        config.chunk_tokens,
        config.chunk_overlap,
        vector_exact_max=config.vector_exact_max,
        vector_nprobe=config.vector_nprobe,
        read_only=config.retrieval_read_only,
        document_weight=config.document_weight,
    )


def loaded_engine(config: Config, data_dir: Path | None = None) -> RetrievalEngine:
    """configured_engine, loaded from its store."""
    engine = configured_engine(config, data_dir)
    engine.load()
    return engine
