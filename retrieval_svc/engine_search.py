"""Searching the embedded engine: BM25 and dense ranking over the rows a search may see (metadata filters and the
reader's access), optionally one chunk per document, fused, and each hit given its document's fields, all under
one shared hold of the index (retrieval_svc/rwlock.py) so that searches run side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from opentelemetry import trace

from likeopt.runtime.principal import Reader
from likeopt.runtime.text import tokenize
from retrieval_svc.access import RowMask
from retrieval_svc.backend import ChunkHit, SearchParams, best_per_document
from retrieval_svc.doc_vectors import blend
from retrieval_svc.engine_indexes import EngineIndexes
from retrieval_svc.fusion import Hit, Ranked, fuse

tracer = trace.get_tracer(__name__)

CANDIDATE_DEPTH = 100
"""How many candidates each retriever contributes to hybrid fusion."""
DOCUMENT_POOL = 2
"""With document vectors, dense search re-scores this many times the results it returns, so that a document
whose whole text matches can climb in from below the cut."""


class EngineSearch(EngineIndexes):
    """Query embedding and search; each read holds the index shared."""

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
