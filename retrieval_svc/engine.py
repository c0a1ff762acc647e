"""The retrieval engine: chunking, embedding, both indexes and fusion, in process.

The durable store is the source of truth; the BM25 and vector indexes live in
memory and are rebuilt from it at start-up. Methods here are synchronous and
CPU-bound: the gRPC service calls them from worker threads, never on its event loop.
This module holds the writes and builds the engine as retrieval_svc runs it; its state is in engine_indexes.py,
loading and following the writer in engine_loading.py, search in engine_search.py, listings in engine_reads.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from likeopt.runtime.config import Config
from likeopt.runtime.text import tokenize
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentInput, chunk_document, chunk_texts
from retrieval_svc.cancellable_writes import raise_if_stopped
from retrieval_svc.embedder import configured_embedder
from retrieval_svc.engine_loading import EngineLoading
from retrieval_svc.engine_reads import EngineReads
from retrieval_svc.engine_search import EngineSearch
from retrieval_svc.store import NewDocument


class RetrievalEngine(EngineLoading, EngineSearch, EngineReads):
    """The embedded backend: owns the store and both indexes, and keeps them in agreement."""

    def prepare(self, doc: DocumentInput) -> list[str]:
        """Split a document into chunks that fit the model's window with the title (UnfitDocument if it cannot)."""
        return chunk_document(doc, self.embedder, self.chunk_tokens, self.chunk_overlap)

    def upsert(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> int:
        """Embed, store durably, then index; returns the new index version."""
        embeddings = self.embed(docs, chunked)
        raise_if_stopped()  # the last look before anything is stored (a write of one slice has had none)
        return self.store_embedded(docs, chunked, embeddings)

    def embed(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> np.ndarray:
        """Every chunk's embedding, in chunk order."""
        return self.embedder.encode(chunk_texts(docs, chunked))

    def store_embedded(
        self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]], embeddings: np.ndarray
    ) -> int:
        """Store durably, then index, documents whose chunks are embedded already; returns the new index version."""
        terms = [tokenize(text) for text in chunk_texts(docs, chunked)]  # embedded and BM25-indexed as the same text
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
