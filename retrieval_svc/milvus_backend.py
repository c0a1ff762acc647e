"""The ``milvus`` retrieval backend: chunks live in a Milvus server or cluster, so replicas hold no state.

MilvusBackend composes one part per job, each holding the same MilvusCollection: milvus_collection (the
connection, the collections, their checks and the shared index version; what is stored and why is said there),
milvus_writes, milvus_search and milvus_reads (listings, documents, counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access
from retrieval_svc.backend import ChunkHit, DocumentChunks, DocumentInput, DocumentSummary, IndexStats, SearchParams
from retrieval_svc.embedder import Embedder
from retrieval_svc.milvus_collection import TIMEOUT_S, MilvusCollection
from retrieval_svc.milvus_reads import MilvusReads
from retrieval_svc.milvus_search import MilvusSearch
from retrieval_svc.milvus_writes import MilvusWrites, stale_chunks_filters

__all__ = ["MilvusBackend", "stale_chunks_filters"]


class MilvusBackend:
    """RetrievalBackend over a Milvus collection; any number of processes may serve (and write) one corpus.

    Each method is its part's (``milvus``, ``writes``, ``searches``, ``reads``), documented there; only the
    counters the protocol asks for are kept here. ``server_fusion`` is MilvusSearch's.
    """

    read_only = False
    """Every replica takes writes: Milvus, not this process, orders them."""
    shared_version = True
    """Other replicas write to the same collection: the service reads the version before each search."""

    def __init__(
        self,
        embedder: Embedder,
        uri: str,
        token: str,
        collection: str,
        chunk_tokens: int,
        chunk_overlap: int,
        shards: int = 1,
        replicas: int = 1,
        *,
        server_fusion: bool = False,
        consistency_level: str = "Strong",
        dense_index: str = "AUTOINDEX",
        timeout_s: float = TIMEOUT_S,
        bm25_terms: bool = True,
    ) -> None:
        self.embedder = embedder
        self.counters: Counter[str] = Counter()
        """Query embeddings and searches computed: what caching and single-flight are meant to save."""
        self.milvus = MilvusCollection(
            embedder,
            uri,
            token,
            collection,
            shards,
            replicas,
            consistency_level=consistency_level,
            dense_index=dense_index,
            timeout_s=timeout_s,
            bm25_terms=bm25_terms,
        )
        self.reads = MilvusReads(self.milvus)
        self.writes = MilvusWrites(self.milvus, self.reads, chunk_tokens, chunk_overlap)
        self.searches = MilvusSearch(self.milvus, self.reads, server_fusion)

    @property
    def collection(self) -> str:
        """The chunk collection's name (LIKEOPT_MILVUS_COLLECTION)."""
        return self.milvus.name

    @property
    def version(self) -> int:
        return self.milvus.version

    def load(self) -> None:
        self.milvus.load()

    def refresh(self) -> bool:
        return self.milvus.refresh()

    def meta(self, key: str) -> str | None:
        return self.milvus.meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.milvus.set_meta(key, value)

    def prepare(self, doc: DocumentInput) -> list[str]:
        return self.writes.prepare(doc)

    def unfit(self, doc: DocumentInput, chunks: Sequence[str]) -> str | None:
        return self.writes.unfit(doc, chunks)

    def upsert(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> int:
        return self.writes.upsert(docs, chunked)

    def embed(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> np.ndarray:
        return self.writes.embed(docs, chunked)

    def store_embedded(
        self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]], embeddings: np.ndarray, bump: bool = True
    ) -> int:
        return self.writes.store_embedded(docs, chunked, embeddings, bump)

    def flush(self) -> None:
        self.writes.flush()

    def delete(self, doc_ids: Sequence[str]) -> tuple[int, int]:
        return self.writes.delete(doc_ids)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's unit vector."""
        self.counters["embeddings"] += 1
        return self.embedder.encode_query(query)

    def search(self, query: str, params: SearchParams, query_vector: np.ndarray | None) -> list[ChunkHit]:
        """Rank chunks for the query; query_vector is needed unless mode is bm25."""
        return self.search_batch([query], params, [query_vector])[0]

    def search_batch(
        self, queries: Sequence[str], params: SearchParams, vectors: Sequence[np.ndarray | None]
    ) -> list[list[ChunkHit]]:
        self.counters["searches"] += len(queries)
        return self.searches.search_batch(queries, params, vectors)

    def existing(self, doc_ids: Sequence[str]) -> list[str]:
        return self.reads.existing(doc_ids)

    def stored_chunks(self, chunk_ids: Sequence[str]) -> set[str]:
        return self.reads.stored_chunks(chunk_ids)

    def document_ids(self) -> set[str]:
        return self.reads.document_ids()

    def list_documents(
        self, after_id: str, limit: int, reader: Reader | None = None, ids: Sequence[str] = ()
    ) -> tuple[list[DocumentSummary], int]:
        return self.reads.list_documents(after_id, limit, reader, ids)

    def accesses_of(self, doc_ids: Sequence[str]) -> dict[str, Access]:
        return self.reads.accesses_of(doc_ids)

    def get_document(self, doc_id: str, reader: Reader | None = None) -> DocumentChunks | None:
        return self.reads.get_document(doc_id, reader)

    def stats(self, reader: Reader | None = None) -> IndexStats:
        return self.reads.stats(reader)

    def close(self) -> None:
        """Close the connection and forget the vectors kept (a later load() may reach another Milvus)."""
        self.searches.close()
        self.milvus.close()
