"""The seam between retrieval_svc and where its chunks live.

``embedded`` keeps them in process (SQLite store, BM25 and FAISS in memory); ``milvus`` keeps them in a
Milvus server or cluster, so any number of stateless replicas can serve one corpus. The gRPC service only
ever talks to this interface: both backends take the same parameters and give the same kind of hits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from likeopt.runtime.config import Config
from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access
from retrieval_svc.chunking import chunk_text
from retrieval_svc.embedder import Embedder, configured_embedder


class BackendUnavailable(RuntimeError):
    """The backend's server cannot be reached now; the call may succeed later (gRPC UNAVAILABLE)."""


class BackendRefused(RuntimeError):
    """The backend's server answered but refused a call the service thought valid (gRPC INTERNAL): a fault
    to log and fix, not one a retry or the caller's input would change."""


@dataclass(frozen=True)
class DocumentInput:
    """A document as received, before chunking."""

    id: str
    title: str
    text: str
    metadata: dict[str, str]
    access: Access = field(default_factory=Access)
    """Who may read it; the default is every reader."""


@dataclass(frozen=True)
class SearchParams:
    """Everything that changes a search's result besides the query."""

    top_k: int
    mode: str  # "hybrid", "bm25" or "dense"
    fusion: str  # "rrf" or "convex"
    rrf_k: float
    alpha: float
    filters: tuple[tuple[str, str], ...] = ()
    per_document: bool = False
    reader: Reader | None = None
    """Only chunks of documents this reader may read are ranked, before fusion and top_k; None: every chunk
    (API-key mode, or a call from inside the mesh). Part of every cache and single-flight key through params."""
    document_weight: float | None = None
    """Share of a dense score that is the whole document's (LIKEOPT_DOCUMENT_WEIGHT); None: the backend's own
    setting. The service fills it in, so that cached results are keyed by it."""


@dataclass(frozen=True)
class ChunkHit:
    """One ranked chunk with its document's fields, each retriever's score and rank (0 = not ranked)."""

    doc_id: str
    ordinal: int
    title: str
    text: str
    metadata: dict[str, str]
    score: float
    bm25_score: float = 0.0
    dense_score: float = 0.0
    bm25_rank: int = 0
    dense_rank: int = 0


@dataclass(frozen=True)
class IndexStats:
    """What GetIndexStatus reports about a backend."""

    documents: int
    chunks: int
    bm25_chunks: int
    vector_chunks: int
    vector_index: str
    load_seconds: float


@dataclass(frozen=True)
class DocumentSummary:
    """A stored document without its text, as ListDocuments pages through them."""

    id: str
    title: str
    metadata: dict[str, str]
    chunks: int


@dataclass(frozen=True)
class DocumentChunks:
    """A stored document as the index holds it: the original text is not kept, its chunks are."""

    id: str
    title: str
    metadata: dict[str, str]
    chunks: list[tuple[int, str]]
    """(ordinal, text) of each chunk, in document order; the chunk id is ``<id>#<ordinal>``."""


OVERSAMPLE = 3
"""Chunks fetched per wanted document when collapsing to one hit per document (SciFact: 2 chunks a document)."""
Item = TypeVar("Item")


def best_per_document(
    retrieve: Callable[[int], list[Item]], depth: int, doc_of: Callable[[Item], str], most: int | None = None
) -> list[Item]:
    """A retriever's top depth documents, each at its best chunk (retrieve(n) gives the top n chunks).

    Collapsing needs more chunks than documents: fetch OVERSAMPLE times as many, and more while documents
    are short and chunks are not exhausted (never more than ``most`` at once, where the engine caps it).
    """
    wanted = depth * OVERSAMPLE
    while True:
        asked = wanted if most is None else min(wanted, most)
        chunks = retrieve(asked)
        best: dict[str, Item] = {}
        for chunk in chunks:
            best.setdefault(doc_of(chunk), chunk)
        if len(best) >= depth or len(chunks) < asked or (most is not None and asked >= most):
            return list(best.values())[:depth]
        wanted *= 2


def embedding_text(title: str, chunk: str) -> str:
    """The text a chunk is embedded and BM25-indexed as: its title gives context."""
    return f"{title}\n{chunk}" if title else chunk


def chunk_texts(docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> list[str]:
    """The embedding_text of every chunk of docs, in chunk order."""
    return [embedding_text(d.title, c) for d, chunks in zip(docs, chunked, strict=True) for c in chunks]


MAX_TITLE_SHARE = 0.5
"""A title is embedded in front of every chunk of its document, so it may fill at most this share of the chunk
window (128 of 256 word pieces by default); a document with a longer one is refused with the reason."""


class UnfitDocument(ValueError):
    """A document that cannot be chunked as sent; the message says why, for the writer."""


def check_chunk_tokens(chunk_tokens: int, embedder: Embedder) -> None:
    """Refuse, at start, chunks longer than the model reads: it would embed only their first part, and the rest could
    be found by its words alone."""
    if chunk_tokens > embedder.max_tokens:
        raise ValueError(f"LIKEOPT_CHUNK_TOKENS={chunk_tokens} exceeds the model's window of {embedder.max_tokens}")


def chunk_document(doc: DocumentInput, embedder: Embedder, chunk_tokens: int, chunk_overlap: int) -> list[str]:
    """doc's chunks, each fitting the model's window with the title in front, as both backends store them."""
    title_tokens = embedder.count_tokens(doc.title) if doc.title else 0
    if title_tokens > chunk_tokens * MAX_TITLE_SHARE:
        raise UnfitDocument(
            f"title is {title_tokens} word pieces long; at most {int(chunk_tokens * MAX_TITLE_SHARE)} fit in front"
            f" of each chunk of {chunk_tokens} (LIKEOPT_CHUNK_TOKENS)"
        )

    def count(chunk: str) -> int:
        return embedder.count_tokens(embedding_text(doc.title, chunk))

    return chunk_text(doc.text, count, chunk_tokens, chunk_overlap)


class RetrievalBackend(Protocol):
    """Everything RetrievalServicer needs from an engine. Methods are synchronous and may block: the service
    calls them from worker threads."""

    embedder: Embedder
    read_only: bool
    """A replica that must refuse writes (an embedded replica following the writer's store)."""
    shared_version: bool
    """Other processes write to the same index (Milvus): a search reads the current version first, so a
    result cached before another replica's write is never served after it."""
    counters: Counter[str]
    """``embeddings`` and ``searches`` computed: what caching and single-flight are meant to save."""

    @property
    def version(self) -> int:
        """The index version: changes with every committed write, whichever process made it."""

    def load(self) -> None:
        """Get ready to serve (build indexes, check the collection); raises when the backend cannot serve."""

    def refresh(self) -> bool:
        """Catch up with writes other processes committed; True when the version changed."""

    def prepare(self, doc: DocumentInput) -> list[str]:
        """The document's chunks, each fitting the embedding model's window with the title."""

    def upsert(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> int:
        """Embed and store durably (replacing earlier versions of the same ids); returns the new version."""

    def embed(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> np.ndarray:
        """Every chunk's embedding, in chunk order: the slow half of upsert, which a write's checks may follow."""

    def store_embedded(
        self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]], embeddings: np.ndarray
    ) -> int:
        """upsert's other half: store documents whose chunks embed gave; returns the new version."""

    def delete(self, doc_ids: Sequence[str]) -> tuple[int, int]:
        """Delete documents; returns (how many existed, the new version)."""

    def embed_query(self, query: str) -> np.ndarray:
        """The query's unit vector."""

    def search(self, query: str, params: SearchParams, query_vector: np.ndarray | None) -> list[ChunkHit]:
        """Ranked chunks; query_vector is needed unless mode is bm25."""

    def search_batch(
        self, queries: Sequence[str], params: SearchParams, vectors: Sequence[np.ndarray | None]
    ) -> list[list[ChunkHit]]:
        """``search`` of each query (with its vector) in order, sharing what the searches have in common."""

    def stats(self, reader: Reader | None = None) -> IndexStats:
        """Counts for GetIndexStatus: of the documents and chunks reader may read (all without one)."""

    def list_documents(
        self, after_id: str, limit: int, reader: Reader | None = None, ids: Sequence[str] = ()
    ) -> tuple[list[DocumentSummary], int]:
        """Up to limit documents reader may read whose ids sort after after_id, in id order, and how many it may
        read in all; with ids, of those documents only (which of them it may still read)."""

    def accesses_of(self, doc_ids: Sequence[str]) -> dict[str, Access]:
        """Who may read each of doc_ids that is stored (writes check its tenant and name a change of it)."""

    def get_document(self, doc_id: str, reader: Reader | None = None) -> DocumentChunks | None:
        """The document with its chunks, or None when there is none with that id that reader may read."""

    def close(self) -> None:
        """Release connections and files."""


def _embedded(config: Config) -> RetrievalBackend:
    from retrieval_svc.engine import configured_engine

    return configured_engine(config)


def _milvus(config: Config) -> RetrievalBackend:
    from retrieval_svc.milvus_backend import MilvusBackend

    return MilvusBackend(
        configured_embedder(config),
        uri=config.milvus_uri,
        token=config.milvus_token.get_secret_value(),
        collection=config.milvus_collection,
        chunk_tokens=config.chunk_tokens,
        chunk_overlap=config.chunk_overlap,
        shards=config.milvus_shards,
        replicas=config.milvus_replicas,
    )


BACKENDS: dict[str, Callable[[Config], RetrievalBackend]] = {"embedded": _embedded, "milvus": _milvus}
"""LIKEOPT_RETRIEVAL_BACKEND's values and how each is built (not yet loaded)."""


def configured_backend(config: Config) -> RetrievalBackend:
    """The configured backend, model loaded; call its load() before serving."""
    return BACKENDS[config.retrieval_backend](config)
