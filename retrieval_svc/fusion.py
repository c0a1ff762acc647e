"""Fuse the BM25 and dense rankings into one, for both retrieval backends.

rrf and convex return (key, score) best first with ties broken by the smaller
key, so equal inputs always give the same order (stable pagination, cache hits
and reproducible evaluation); fuse picks one as the search's parameters say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from retrieval_svc.backend import SearchParams

Ranked = list[tuple[int, float]]
"""(key, score) best first: a chunk's row in the embedded engine, a numbered candidate in Milvus's."""


def rrf(rankings: list[list[int]], k: float = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each key scores sum(1 / (k + rank)), rank 1-based.

    Uses ranks only, so it needs no score calibration between retrievers. A key
    repeated within one ranking counts at its best rank.
    """
    fused: dict[int, float] = {}
    for ranking in rankings:
        seen: set[int] = set()
        for rank, key in enumerate(ranking, start=1):
            if key not in seen:
                seen.add(key)
                fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return _best_first(fused.items())


def convex(bm25: list[tuple[int, float]], dense: list[tuple[int, float]], alpha: float) -> list[tuple[int, float]]:
    """alpha * dense + (1 - alpha) * bm25 after min-max normalising each side to [0, 1].

    Normalising puts unbounded BM25 scores and cosines on one scale; a key
    missing from one side scores 0 there.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    fused = {key: (1 - alpha) * score for key, score in _min_max(bm25).items()}
    for key, score in _min_max(dense).items():
        fused[key] = fused.get(key, 0.0) + alpha * score
    return _best_first(fused.items())


def _min_max(scored: list[tuple[int, float]]) -> dict[int, float]:
    """Scores mapped linearly onto [0, 1]; all-equal scores (including a single one) map to 1."""
    if not scored:
        return {}
    low = min(score for _, score in scored)
    span = max(score for _, score in scored) - low
    return {key: (score - low) / span if span > 0 else 1.0 for key, score in scored}


def _best_first(scored: Iterable[tuple[int, float]]) -> list[tuple[int, float]]:
    return sorted(scored, key=lambda item: (-item[1], item[0]))


@dataclass
class Hit:
    """One fused result, with each retriever's score and rank (0 = not ranked)."""

    row: int
    score: float
    bm25_score: float = 0.0
    dense_score: float = 0.0
    bm25_rank: int = 0
    dense_rank: int = 0


def fuse(lexical: Ranked, dense: Ranked, params: SearchParams) -> list[Hit]:
    """Combine the two rankings as the params say, keeping each side's score and rank. Only the top_k
    become Hits: building one per candidate was most of fusion's cost, under the GIL."""
    if params.mode == "bm25":
        ranked = lexical
    elif params.mode == "dense":
        ranked = dense
    elif params.fusion == "convex":
        ranked = convex(lexical, dense, params.alpha)
    else:
        ranked = rrf([[r for r, _ in lexical], [r for r, _ in dense]], params.rrf_k)
    lexical_at = {row: (score, rank) for rank, (row, score) in enumerate(lexical, start=1)}
    dense_at = {row: (score, rank) for rank, (row, score) in enumerate(dense, start=1)}
    unranked = (0.0, 0)
    hits = []
    for row, score in ranked[: params.top_k]:
        bm25_score, bm25_rank = lexical_at.get(row, unranked)
        dense_score, dense_rank = dense_at.get(row, unranked)
        hits.append(Hit(row, score, bm25_score, dense_score, bm25_rank, dense_rank))
    return hits
