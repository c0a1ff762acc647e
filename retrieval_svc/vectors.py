"""Dense vector index: exact inner-product search over unit vectors with FAISS.

Vectors are keyed by the store's integer chunk row id, so removal and metadata
filters address the same ids as the BM25 index.
"""

from __future__ import annotations

import faiss
import numpy as np


class VectorIndex:
    """FAISS IndexFlatIP behind an id map; inner product of unit vectors is cosine."""

    kind = "flat"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under integer keys (keys must not be present already)."""
        if len(keys):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), keys.astype(np.int64))

    def remove(self, keys: np.ndarray) -> None:
        """Remove the vectors of the given keys; unknown keys are ignored."""
        if len(keys):
            self._index.remove_ids(faiss.IDSelectorBatch(keys.astype(np.int64)))

    def search(self, query: np.ndarray, top_k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The top_k (key, cosine) pairs, best first, optionally restricted to allowed keys."""
        if len(self) == 0 or top_k <= 0:
            return []
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))
        scores, keys = self._index.search(
            np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), min(top_k, len(self)), params=params
        )
        return [(int(k), float(s)) for k, s in zip(keys[0], scores[0], strict=True) if k >= 0]
