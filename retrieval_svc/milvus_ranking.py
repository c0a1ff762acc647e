"""Milvus search results as ranked ChunkHits: candidates from each retriever, fused here as the embedded
engine fuses them (retrieval_svc/fusion.py), or ranked by Milvus itself."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from retrieval_svc.backend import ChunkHit, SearchParams
from retrieval_svc.fusion import fuse


@dataclass(frozen=True)
class Candidate:
    """One chunk a retriever returned: its id, its score there, and the hit it shows (scores not yet set)."""

    chunk_id: str
    score: float
    shown: ChunkHit

    @property
    def doc_id(self) -> str:
        return self.shown.doc_id

    @staticmethod
    def of(hit: dict[str, Any], sign: float = 1.0) -> Candidate:
        entity = hit["entity"]
        metadata = dict(entity.get("metadata") or {})
        shown = ChunkHit(entity["doc_id"], int(entity["ordinal"]), entity["title"], entity["text"], metadata, 0.0)
        return Candidate(str(hit.get("chunk_id", hit.get("id"))), sign * float(hit["distance"]), shown)


def best_first(candidates: list[Candidate]) -> list[Candidate]:
    """Higher score first, ties by chunk id: the same results always come in the same order."""
    return sorted(candidates, key=lambda c: (-c.score, c.chunk_id))


def bm25_candidates(raw: list[dict[str, Any]]) -> list[Candidate]:
    """BM25 hits with positive-is-better scores: milvus-lite reports BM25 as a distance (its negation)."""
    sign = -1.0 if any(float(h["distance"]) < 0 for h in raw) else 1.0
    return best_first([Candidate.of(h, sign) for h in raw])


def fuse_candidates(lexical: list[Candidate], dense: list[Candidate], params: SearchParams) -> list[ChunkHit]:
    """Combine the two candidate lists as the params say, with the embedded engine's ``fuse``.

    Keys are chunks, or documents with ``per_document`` (a document's hit shows its best BM25 chunk, else
    its best dense one). fusion.py breaks ties by the smaller key; keys are numbered in chunk (or document)
    id order, so ties fall to the smaller id.
    """

    def key_of(c: Candidate) -> str:
        return c.doc_id if params.per_document else c.chunk_id

    number = {name: n for n, name in enumerate(sorted({key_of(c) for c in [*lexical, *dense]}))}
    shown: dict[int, Candidate] = {}
    for c in [*lexical, *dense]:
        shown.setdefault(number[key_of(c)], c)
    lex = [(number[key_of(c)], c.score) for c in lexical]
    den = [(number[key_of(c)], c.score) for c in dense]
    return [
        replace(
            shown[hit.row].shown,
            score=hit.score,
            bm25_score=hit.bm25_score,
            dense_score=hit.dense_score,
            bm25_rank=hit.bm25_rank,
            dense_rank=hit.dense_rank,
        )
        for hit in fuse(lex, den, params)
    ]


def chunk_hit(c: Candidate) -> ChunkHit:
    """A hit ranked by the server (hybrid_search): only the fused score is known."""
    return replace(c.shown, score=c.score)
