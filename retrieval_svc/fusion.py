"""Fuse the BM25 and dense rankings into one.

Both functions return (key, score) best first with ties broken by the smaller
key, so equal inputs always give the same order (stable pagination, cache hits
and reproducible evaluation).
"""

from __future__ import annotations

from collections.abc import Iterable


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
