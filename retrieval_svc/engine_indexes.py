"""The embedded engine's state: the durable store and the in-memory indexes built from it (BM25, chunk and document
vectors, access lists, metadata filters), and the steps that add chunks to them all or take chunks out of them all,
so that every index holds the same rows. Loading, writing and searching (the other engine_* modules) go through
these steps and hold the index lock as they say."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from likeopt.runtime.config import setting_default
from likeopt.runtime.text import tokenize
from retrieval_svc.access_index import AccessIndex
from retrieval_svc.backend import check_chunk_tokens, embedding_text
from retrieval_svc.bm25 import BM25Index
from retrieval_svc.doc_vectors import DocumentVectors
from retrieval_svc.embedder import Embedder
from retrieval_svc.filter_masks import FilterMasks
from retrieval_svc.rwlock import ReadWriteLock
from retrieval_svc.store import STORE_FILE, Store, StoredChunk
from retrieval_svc.vectors import VectorIndex


@dataclass(frozen=True)
class ChunkRef:
    """What a hit needs to know about a chunk, kept in memory."""

    doc_id: str
    ordinal: int
    text: str


class EngineIndexes:
    """The store and every index over it, with the locks that keep searches, writes and catching up apart."""

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

    def close(self) -> None:
        self.store.close()
