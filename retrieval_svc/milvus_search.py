"""Searches of a Milvus corpus: BM25 and dense candidates under a reader's filter, fused here as the embedded engine
fuses them or ranked by Milvus, and the dense search of a selective filter scored in process from vectors kept
per index version (milvus_vectors)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

from likeopt.runtime.text import tokenize
from retrieval_svc.backend import ChunkHit, SearchParams, best_per_document
from retrieval_svc.milvus_access import NOTHING, both
from retrieval_svc.milvus_collection import METRICS, SEARCH_DEPTH_LIMIT, MilvusCollection
from retrieval_svc.milvus_expressions import metadata_filter
from retrieval_svc.milvus_ranking import Candidate, best_first, bm25_candidates, chunk_hit, fuse_candidates
from retrieval_svc.milvus_reads import MilvusReads
from retrieval_svc.milvus_vectors import VECTOR_READS, Passing, VectorCache

CANDIDATE_DEPTH = 100
"""How many candidates each retriever contributes to hybrid fusion (as the embedded engine's)."""
HIT_FIELDS = ["doc_id", "ordinal", "title", "text", "metadata"]
GRAPH_INDEXES = frozenset({"AUTOINDEX", "HNSW"})
"""Dense index types searched by walking a graph (milvus-lite's and standalone Milvus's AUTOINDEX is HNSW), whose
``ef`` bounds how many rows a search can return: milvus-lite's default of 64 returned 433 of 602 rows asked for."""
GRAPH_EF = 64
"""The least ef a graph search is given; more when more rows are asked for, or few rows pass the filter."""
EXACT_ROWS = 2_000
"""A dense search whose filter passes at most this many chunks scores each of them in process (their vectors
read once per index version, milvus_vectors): a graph walk that skips the rows the filter refuses can miss every
row it passes (milvus-lite's HNSW found none of a small tenant's chunks among 602). Larger filtered sets get an ef
scaled by how few rows pass."""
COUNTS_KEPT = 1_024
"""Filters whose row counts are kept for the current index version."""


class MilvusSearch:
    """Ranks chunks for queries; keeps, per index version, how many rows each filter passes and the vectors of
    the selective ones.

    ``server_fusion`` ranks hybrid searches with Milvus's own hybrid_search (RRFRanker, or WeightedRanker for
    convex) instead of fusing two candidate lists here with fusion.py. It saves a round trip (milvus-lite,
    SciFact 1,500 documents: hybrid p50 23 ms against 29 ms; per document 23 ms against 60 ms, as Milvus
    groups only the top_k it returns) but its hits carry only the fused score, and WeightedRanker scales
    scores its own way, not min-max: convex results differ from the embedded engine's. Per document, Milvus
    (2.5 and 2.6, and its C++ engine in milvus-lite 2.5; not milvus-lite 3) keeps each retriever's best chunk
    of a document and adds scores by chunk: a document whose best BM25 and best dense chunks differ gets one
    side's score only, where the embedded engine adds both (benchmarks/README.md, "Fusion in retrieval_svc").
    """

    def __init__(self, milvus: MilvusCollection, reads: MilvusReads, server_fusion: bool) -> None:
        self.milvus, self.reads = milvus, reads
        self.server_fusion = server_fusion
        self._counts: dict[str, int] = {}
        """Rows each search filter passes, at index version _counts_version (dense search picks its way by it)."""
        self._counts_version = -1
        self._counts_lock = threading.Lock()
        self._vectors = VectorCache()
        """The vectors of the chunks each selective filter passes, at the current index version (_exact_dense)."""

    def search_batch(
        self, queries: Sequence[str], params: SearchParams, vectors: Sequence[np.ndarray | None]
    ) -> list[list[ChunkHit]]:
        """Rank chunks for each query as ``search`` does, sharing the reader's filter, one Milvus search per
        retriever for every query and, where a dense search scores in process, one read of every query's top
        chunks' hit fields (the vectors it scores are cached per filter and index version: milvus_vectors); one
        hit per document and server-side fusion go query by query."""
        readable = self.milvus.readable(params.reader)
        if readable is NOTHING:
            return [[] for _ in queries]
        condition = both(metadata_filter(params.filters), readable)
        hybrid = params.mode == "hybrid"
        depth = min(max(params.top_k, CANDIDATE_DEPTH) if hybrid else params.top_k, SEARCH_DEPTH_LIMIT)
        with self.milvus.guarded():
            if hybrid and self.server_fusion and not self._scored_here(condition):
                pairs = zip(queries, vectors, strict=True)
                return [self._server_hybrid(query, params, vector, condition, depth) for query, vector in pairs]
            texts = [self.milvus.bm25_text(q) if tokenize(q) else None for q in queries]  # no terms: BM25 has nothing
            dense = [v.tolist() if v is not None else None for v in vectors]
            nothing: list[Any | None] = [None] * len(queries)
            lexical = self._rankings("sparse", texts if params.mode != "dense" else nothing, condition, depth, params)
            semantic = self._rankings("dense", dense if params.mode != "bm25" else nothing, condition, depth, params)
        return [fuse_candidates(lex, sem, params) for lex, sem in zip(lexical, semantic, strict=True)]

    def _rankings(
        self, field: str, queries: Sequence[Any | None], condition: str, depth: int, params: SearchParams
    ) -> list[list[Candidate]]:
        """Each query's top depth of one retriever ([] for a None query): one Milvus call for them all, but one
        query at a time with ``per_document`` (``_ranking``)."""
        asked = [n for n, query in enumerate(queries) if query is not None]
        if params.per_document:
            ranked = [
                self._ranking(partial(self._candidates, field, queries[n], condition), depth, params.per_document)
                for n in asked
            ]
        else:
            ranked = self._candidates_each(field, [queries[n] for n in asked], condition, depth) if asked else []
        found: list[list[Candidate]] = [[] for _ in queries]
        for n, candidates in zip(asked, ranked, strict=True):
            found[n] = candidates
        return found

    @staticmethod
    def _ranking(retrieve: Callable[[int], list[Candidate]], depth: int, per_document: bool) -> list[Candidate]:
        """The top depth of a retriever; per document, each document at its best chunk only (fetched as the
        embedded engine does: Milvus's group_by_field took 66-90 ms for 100 groups on milvus-lite where 300
        chunks took 25 ms)."""
        if not per_document:
            return retrieve(depth)
        return best_per_document(retrieve, depth, lambda chunk: chunk.doc_id, most=SEARCH_DEPTH_LIMIT)

    def _candidates(self, field: str, query: Any, condition: str, limit: int) -> list[Candidate]:
        """One retriever's top ``limit`` chunks, best first, scores higher-is-better."""
        return self._candidates_each(field, [query], condition, limit)[0]

    def _candidates_each(self, field: str, queries: Sequence[Any], condition: str, limit: int) -> list[list[Candidate]]:
        """``_candidates`` of each query, from one Milvus call."""
        if field == "dense" and self._scored_here(condition):
            return self._exact_dense(queries, condition, limit)
        result = self.milvus.call(
            "search",
            self.milvus.name,
            data=list(queries),
            anns_field=field,
            search_params=self._search_params(field, limit, condition),
            limit=limit,
            filter=condition,
            output_fields=HIT_FIELDS,
            consistency_level=self.milvus.consistency_level,
            timeout=self.milvus.timeout_s,
        )
        raw = [list(hits) for hits in result] if result else [[] for _ in queries]
        if field == "sparse":
            return [bm25_candidates(hits) for hits in raw]
        return [best_first([Candidate.of(h) for h in hits]) for hits in raw]

    def _search_params(self, field: str, limit: int, condition: str) -> dict[str, Any]:
        """A graph index's dense search reaches at least ``limit`` rows, and as many more as the filter is
        selective (a walk meets about passing/total matching rows per row it visits); BM25 needs nothing."""
        if field != "dense" or self.milvus.dense_index not in GRAPH_INDEXES:
            return {"metric_type": METRICS[field]}
        ef = max(limit, GRAPH_EF)
        if condition:
            ef *= -(-self._rows(None) // max(self._rows(condition), 1))
        return {"metric_type": METRICS[field], "params": {"ef": min(ef, SEARCH_DEPTH_LIMIT)}}

    def _scored_here(self, condition: str) -> bool:
        """Whether a dense search under condition scores the rows it passes in process (EXACT_ROWS)."""
        return bool(condition) and self._rows(condition) <= EXACT_ROWS

    def _rows(self, condition: str | None) -> int:
        """How many chunks condition passes (None: all), counted once per index version."""
        key = condition or ""
        with self._counts_lock:
            if self._counts_version != self.milvus.version:
                self._counts, self._counts_version = {}, self.milvus.version
            if key in self._counts:
                return self._counts[key]
        counted = self.reads.count(key)
        with self._counts_lock:
            if len(self._counts) >= COUNTS_KEPT:
                self._counts.clear()
            self._counts[key] = counted
        return counted

    def _exact_dense(self, queries: Sequence[list[float]], condition: str, limit: int) -> list[list[Candidate]]:
        """Each query's top ``limit`` of the few chunks condition passes, every one scored from their cached vectors,
        so a selective filter never hides a readable chunk. Only the top chunks' hit fields are read, under
        condition again: a chunk deleted or moved out of reach since the vectors were read is dropped, and the next
        best readable chunk shown in its place (Passing.readable_top)."""
        passing = self._passing(condition)
        tops = passing.readable_top(np.asarray(queries, dtype=np.float32), limit, partial(self._hit_rows, condition))
        return [[Candidate.of({"id": c, "distance": score, "entity": row}) for c, score, row in top] for top in tops]

    def _hit_rows(self, condition: str, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The hit fields of those of chunk_ids that are stored and condition passes, by chunk id (in filters of
        bounded size: ids_filters)."""
        rows = self.reads.rows_by_ids("chunk_id", chunk_ids, [*HIT_FIELDS, "chunk_id"], condition)
        return {str(row["chunk_id"]): row for row in rows}

    def _passing(self, condition: str) -> Passing:
        """The chunks condition passes and their vectors: read from Milvus once per index version while the
        cache keeps them (a write, here or through another replica once refreshed, makes a new version)."""
        version = self.milvus.version  # before the read: what it finds is at least as new
        return self._vectors.get_or_read(condition, version, partial(self._read_passing, condition))

    def _read_passing(self, condition: str) -> Passing:
        """The chunks condition passes and their vectors, read from Milvus."""
        rows = self.milvus.call(
            "query",
            self.milvus.name,
            filter=condition,
            output_fields=["chunk_id", "dense"],
            limit=EXACT_ROWS,
            consistency_level=self.milvus.consistency_level,
            timeout=self.milvus.timeout_s,
        )
        VECTOR_READS.inc()
        rows = sorted(rows, key=lambda row: str(row["chunk_id"]))
        vectors = np.asarray([row["dense"] for row in rows], dtype=np.float32).reshape(
            len(rows), self.milvus.embedder.dim
        )
        return Passing([str(row["chunk_id"]) for row in rows], vectors)

    def _server_hybrid(
        self, query: str, params: SearchParams, vector: np.ndarray | None, condition: str, depth: int
    ) -> list[ChunkHit]:
        """Hybrid ranked by Milvus's hybrid_search: one round trip, fusion on the server."""
        requests, weights = [], []
        if tokenize(query):
            requests.append(
                AnnSearchRequest(
                    [self.milvus.bm25_text(query)],
                    "sparse",
                    {"metric_type": METRICS["sparse"]},
                    depth,
                    expr=condition or None,
                )
            )
            weights.append(1.0 - params.alpha)
        if vector is not None:
            requests.append(
                AnnSearchRequest(
                    [vector.tolist()],
                    "dense",
                    self._search_params("dense", depth, condition),
                    depth,
                    expr=condition or None,
                )
            )
            weights.append(params.alpha)
        if not requests:
            return []
        ranker = RRFRanker(round(params.rrf_k)) if params.fusion == "rrf" else WeightedRanker(*weights)
        grouping = {"group_by_field": "doc_id", "group_size": 1} if params.per_document else {}
        result = self.milvus.call(
            "hybrid_search",
            self.milvus.name,
            requests,
            ranker,
            limit=params.top_k,
            output_fields=HIT_FIELDS,
            consistency_level=self.milvus.consistency_level,
            timeout=self.milvus.timeout_s,
            **grouping,
        )
        return [chunk_hit(c) for c in best_first([Candidate.of(h) for h in (result[0] if result else [])])]

    def close(self) -> None:
        """Forget the vectors kept: a later load may reach another Milvus."""
        self._vectors.clear()
