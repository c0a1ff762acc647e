"""The retrieval engine: chunking, embedding, both indexes and fusion, in process.

The durable store is the source of truth; the BM25 and vector indexes live in
memory and are rebuilt from it at start-up. Methods here are synchronous and
CPU-bound: the gRPC service calls them from worker threads, never on its event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from opentelemetry import trace

from likeopt.text import tokenize
from retrieval_svc.bm25 import BM25Index
from retrieval_svc.chunking import chunk_text
from retrieval_svc.embedder import Embedder
from retrieval_svc.fusion import convex, rrf
from retrieval_svc.store import NewDocument, Store
from retrieval_svc.vectors import VectorIndex

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

CANDIDATE_DEPTH = 100
"""How many candidates each retriever contributes to hybrid fusion."""


@dataclass(frozen=True)
class ChunkRef:
    """What a hit needs to know about a chunk, kept in memory."""

    doc_id: str
    ordinal: int
    text: str


@dataclass(frozen=True)
class DocumentInput:
    """A document as received, before chunking."""

    id: str
    title: str
    text: str
    metadata: dict[str, str]


@dataclass
class Hit:
    """One fused result, with each retriever's score and rank (0 = not ranked)."""

    row: int
    score: float
    bm25_score: float = 0.0
    dense_score: float = 0.0
    bm25_rank: int = 0
    dense_rank: int = 0


@dataclass(frozen=True)
class SearchParams:
    """Everything that changes a search's result besides the query."""

    top_k: int
    mode: str  # "hybrid", "bm25" or "dense"
    fusion: str  # "rrf" or "convex"
    rrf_k: float
    alpha: float
    filters: tuple[tuple[str, str], ...] = ()


def embedding_text(title: str, chunk: str) -> str:
    """The text a chunk is embedded and BM25-indexed as: its title gives context."""
    return f"{title}\n{chunk}" if title else chunk


class RetrievalEngine:
    """Owns the store and both indexes, and keeps them in agreement."""

    def __init__(self, data_dir: Path, embedder: Embedder, chunk_tokens: int, chunk_overlap: int) -> None:
        if chunk_tokens > embedder.max_tokens:
            raise ValueError(f"LIKEOPT_CHUNK_TOKENS={chunk_tokens} exceeds the model's window of {embedder.max_tokens}")
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.store = Store(data_dir / "store.sqlite3")
        self.bm25 = BM25Index()
        self.vectors = VectorIndex(embedder.dim)
        self.chunks: dict[int, ChunkRef] = {}
        self.documents: dict[str, tuple[str, dict[str, str]]] = {}
        self.rows_by_doc: dict[str, list[int]] = {}
        self.version = 0
        self._write_lock = threading.Lock()
        self._index_lock = threading.RLock()

    # -- start-up ---------------------------------------------------------

    def load(self) -> None:
        """Rebuild the in-memory indexes from the store (no re-embedding)."""
        started = time.perf_counter()
        for doc_id, title, metadata in self.store.documents():
            self.documents[doc_id] = (title, metadata)
        rows: list[int] = []
        vectors: list[np.ndarray] = []
        for chunk in self.store.chunks():
            title = self.documents[chunk.doc_id][0]
            self._index_chunk_text(chunk.row, chunk.doc_id, chunk.ordinal, chunk.text, title)
            rows.append(chunk.row)
            vectors.append(chunk.embedding)
        if rows:
            self.vectors.add(np.asarray(rows, dtype=np.int64), np.vstack(vectors))
        self.version = self.store.version
        log.info(
            "index loaded",
            extra={
                "fields": {
                    "documents": len(self.documents),
                    "chunks": len(self.chunks),
                    "index_version": self.version,
                    "load_s": round(time.perf_counter() - started, 3),
                }
            },
        )

    # -- writes -----------------------------------------------------------

    def prepare(self, doc: DocumentInput) -> list[str]:
        """Split a document into chunks that fit the model's window with the title."""
        title_cost = self.embedder.count_tokens(embedding_text(doc.title, "")) if doc.title else 0

        def count(chunk: str) -> int:
            return self.embedder.count_tokens(chunk) + title_cost

        return chunk_text(doc.text, count, self.chunk_tokens, self.chunk_overlap)

    def upsert(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> int:
        """Embed, store durably, then index; returns the new index version."""
        texts = [embedding_text(d.title, c) for d, chunks in zip(docs, chunked, strict=True) for c in chunks]
        embeddings = self.embedder.encode(texts)
        new_docs: list[NewDocument] = []
        offset = 0
        for doc, chunks in zip(docs, chunked, strict=True):
            new_docs.append(
                NewDocument(doc.id, doc.title, doc.metadata, chunks, embeddings[offset : offset + len(chunks)])
            )
            offset += len(chunks)
        with self._write_lock:
            removed, version = self.store.upsert(new_docs)
            with self._index_lock:
                self._unindex(removed)
                for doc in new_docs:
                    self.documents[doc.id] = (doc.title, doc.metadata)
                    for ordinal, (row, text) in enumerate(zip(doc.rows, doc.chunks, strict=True)):
                        self._index_chunk_text(row, doc.id, ordinal, text, doc.title)
                all_rows = np.asarray([r for d in new_docs for r in d.rows], dtype=np.int64)
                self.vectors.add(all_rows, embeddings)
                self.version = version
        return version

    def delete(self, doc_ids: Sequence[str]) -> tuple[int, int]:
        """Delete documents from the store and every index; returns (deleted, version)."""
        with self._write_lock:
            removed, deleted, version = self.store.delete(list(doc_ids))
            with self._index_lock:
                self._unindex(removed)
                for doc_id in doc_ids:
                    self.documents.pop(doc_id, None)
                self.version = version
        return deleted, version

    def _index_chunk_text(self, row: int, doc_id: str, ordinal: int, text: str, title: str) -> None:
        self.chunks[row] = ChunkRef(doc_id, ordinal, text)
        self.rows_by_doc.setdefault(doc_id, []).append(row)
        self.bm25.add(row, tokenize(embedding_text(title, text)))

    def _unindex(self, rows: Iterable[int]) -> None:
        rows = list(rows)
        for row in rows:
            ref = self.chunks.pop(row, None)
            if ref is not None:
                self.rows_by_doc.pop(ref.doc_id, None)
            self.bm25.remove(row)
        self.vectors.remove(np.asarray(rows, dtype=np.int64))

    # -- reads ------------------------------------------------------------

    def embed_query(self, query: str) -> np.ndarray:
        """The query's unit vector."""
        with tracer.start_as_current_span("query embedding"):
            return self.embedder.encode([query])[0]

    def search(self, query: str, params: SearchParams, query_vector: np.ndarray | None) -> list[Hit]:
        """Rank chunks for the query; query_vector is needed unless mode is bm25."""
        depth = max(params.top_k, CANDIDATE_DEPTH) if params.mode == "hybrid" else params.top_k
        with self._index_lock:
            allowed = self._allowed_rows(params.filters)
            with tracer.start_as_current_span("bm25 search"):
                lexical = self.bm25.search(tokenize(query), depth, allowed) if params.mode in ("hybrid", "bm25") else []
            with tracer.start_as_current_span(
                "vector search", attributes={"likeopt.retrieval.vector_index": self.vectors.kind}
            ):
                dense = (
                    self.vectors.search(query_vector, depth, allowed)
                    if params.mode in ("hybrid", "dense") and query_vector is not None
                    else []
                )
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

    def _allowed_rows(self, filters: tuple[tuple[str, str], ...]) -> np.ndarray | None:
        if not filters:
            return None
        rows = [
            row
            for doc_id, (_, metadata) in self.documents.items()
            if all(metadata.get(k) == v for k, v in filters)
            for row in self.rows_by_doc.get(doc_id, ())
        ]
        return np.asarray(rows, dtype=np.int64)

    def describe(self, row: int) -> tuple[ChunkRef, str, dict[str, str]]:
        """A chunk with its document's title and metadata."""
        ref = self.chunks[row]
        title, metadata = self.documents[ref.doc_id]
        return ref, title, metadata


def fuse(lexical: list[tuple[int, float]], dense: list[tuple[int, float]], params: SearchParams) -> list[Hit]:
    """Combine the two rankings as the params say, keeping each side's score and rank."""
    by_row: dict[int, Hit] = {}

    def hit(row: int) -> Hit:
        return by_row.setdefault(row, Hit(row=row, score=0.0))

    for rank, (row, score) in enumerate(lexical, start=1):
        h = hit(row)
        h.bm25_score, h.bm25_rank = score, rank
    for rank, (row, score) in enumerate(dense, start=1):
        h = hit(row)
        h.dense_score, h.dense_rank = score, rank

    ranked: list[tuple[int, float]]
    if params.mode == "bm25":
        ranked = lexical
    elif params.mode == "dense":
        ranked = dense
    elif params.fusion == "convex":
        ranked = convex(lexical, dense, params.alpha)
    else:
        ranked = rrf([[r for r, _ in lexical], [r for r, _ in dense]], params.rrf_k)
    hits = []
    for row, score in ranked[: params.top_k]:
        h = by_row[row]
        h.score = score
        hits.append(h)
    return hits
