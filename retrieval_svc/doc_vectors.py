"""Whole-document vectors for dense search: each document's normalised mean chunk vector.

A chunk alone can match a query by accident (a short tail, a stray paragraph); the document
around it says whether the whole text is about the query. Dense scores therefore blend each
chunk's cosine with its document's (``blend``), so a document ranks at
``(1 - w) * best chunk + w * document``. How much weight, and why the mean of the chunk vectors
rather than the first chunk or the first window, is measured in benchmarks/README.md
("Beyond SciFact").

Only documents of two or more chunks keep a vector, in float16: a one-chunk document's mean is
its chunk, and half precision moves a cosine by about 1e-3 while halving the memory. An engine whose
weight is 0 keeps none; a search asking for a weight then finds no document vector and keeps each
chunk's own cosine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Ranked = list[tuple[int, float]]
"""(chunk row, score) pairs, best first."""


class DocumentVectors:
    """Mean chunk vectors of multi-chunk documents, by document id, in one growing float16 matrix."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self._matrix = np.zeros((0, dim), dtype=np.float16)

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def nbytes(self) -> int:
        """Bytes held by the vectors (the matrix, free slots included)."""
        return int(self._matrix.nbytes)

    def set(self, doc_id: str, chunk_vectors: np.ndarray) -> None:
        """Record a document from all its chunk vectors (a one-chunk document needs none)."""
        self.forget(doc_id)
        if len(chunk_vectors) < 2:
            return
        mean = np.asarray(chunk_vectors, dtype=np.float32).sum(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm == 0.0:
            return
        slot = self._free.pop() if self._free else self._grow()
        self._matrix[slot] = mean / norm
        self._slot_of[doc_id] = slot

    def forget(self, doc_id: str) -> None:
        slot = self._slot_of.pop(doc_id, None)
        if slot is not None:
            self._free.append(slot)

    def _grow(self) -> int:
        used = len(self._slot_of) + len(self._free)
        if used == len(self._matrix):
            bigger = np.zeros((max(1024, 2 * len(self._matrix)), self.dim), dtype=np.float16)
            bigger[:used] = self._matrix[:used]
            self._matrix = bigger
        return used

    def scores(self, doc_ids: list[str], query: np.ndarray) -> dict[str, float]:
        """Cosine of the query with each listed document that has a vector."""
        known = [d for d in dict.fromkeys(doc_ids) if d in self._slot_of]
        if not known:
            return {}
        rows = self._matrix[[self._slot_of[d] for d in known]].astype(np.float32)
        return dict(zip(known, (rows @ np.asarray(query, dtype=np.float32)).tolist(), strict=True))


def blend(
    ranked: Ranked, doc_of: Callable[[int], str], documents: DocumentVectors, query: np.ndarray, weight: float
) -> Ranked:
    """Chunks re-scored as (1 - weight) * own cosine + weight * their document's, best first (ties by row).

    A chunk of a one-chunk document is its document, so it keeps its own cosine.
    """
    if weight <= 0.0 or not ranked:
        return ranked
    docs = [doc_of(row) for row, _ in ranked]
    whole = documents.scores(docs, query)
    mixed = [
        (row, (1.0 - weight) * score + weight * whole.get(doc, score))
        for (row, score), doc in zip(ranked, docs, strict=True)
    ]
    return sorted(mixed, key=lambda item: (-item[1], item[0]))
