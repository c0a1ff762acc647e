"""Dense vector index: inner-product search over unit vectors with FAISS.

Vectors are keyed by the store's integer chunk row id, so removal and metadata
filters address the same ids as the BM25 index.

Up to ``exact_max`` vectors the search is exact (IndexFlatIP behind an id map).
Past it the index is rebuilt once as an inverted file (IndexIVFFlat): k-means
cells, of which a query scans the ``nprobe`` nearest. IVF rather than HNSW
because it supports removal by id, which upserts and deletes need; its recall@10
against exact search is measured by ``benchmarks/ann_recall.py``. The index stays
approximate if deletes later shrink it (rebuilding back would buy little).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from likeopt.runtime.config import setting_default
from retrieval_svc.access import RowMask

TRAIN_POINTS_PER_CELL = 64
"""k-means training sample per cell: faiss wants at least 39, more buys little."""


def cells_for(n: int) -> int:
    """IVF cell count for n vectors: 2 * sqrt(n), fewer than the usual 4 * sqrt(n) because
    sentence embeddings cluster loosely and recall@10 >= 0.95 needs a large share scanned anyway."""
    return max(1, int(2 * math.sqrt(n)))


class VectorIndex:
    """Exact cosine search up to exact_max vectors, IVF beyond; both accept add, remove and filters."""

    def __init__(self, dim: int, exact_max: int, nprobe: int = setting_default("vector_nprobe")) -> None:
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.kind = "flat"
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under integer keys (keys must not be present already)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.kind == "flat" and len(self) + len(keys) > self.exact_max:
            self._become_approximate(keys.astype(np.int64), vectors)
        elif len(keys):
            self._index.add_with_ids(vectors, keys.astype(np.int64))

    def remove(self, keys: np.ndarray) -> None:
        """Remove the vectors of the given keys; unknown keys are ignored."""
        if len(keys):
            self._index.remove_ids(faiss.IDSelectorBatch(keys.astype(np.int64)))

    def search(
        self, query: np.ndarray, top_k: int, allowed: np.ndarray | RowMask | None = None
    ) -> list[tuple[int, float]]:
        """The top_k (key, cosine) pairs, best first, optionally restricted to allowed keys (an integer array or
        a RowMask, whose bitmap FAISS reads in place)."""
        if len(self) == 0 or top_k <= 0:
            return []
        # One query is searched at a time, from several worker threads: OpenMP teams cost more than
        # they save on such small work and fight each other and the model for two cores (a flat
        # search of 14k vectors: 1.5 ms on one thread, 24 ms with two on a busy machine). The
        # setting is per thread in OpenMP, so each search thread sets it; IVF training keeps its team.
        faiss.omp_set_num_threads(1)
        selector = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            if isinstance(allowed, RowMask):
                selector = allowed.selector()
            else:
                selector = faiss.IDSelectorBatch(allowed.astype(np.int64))
        if self.kind == "ivf":
            params: faiss.SearchParameters = faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, keys = self._index.search(
            np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), min(top_k, len(self)), params=params
        )
        return [(int(k), float(s)) for k, s in zip(keys[0], scores[0], strict=True) if k >= 0]

    def _become_approximate(self, new_keys: np.ndarray, new_vectors: np.ndarray) -> None:
        """Move every vector, the new ones included, into an IVF index trained on (a sample of) them.

        The new vectors go straight into the IVF index: a bulk load past exact_max (start-up on
        a large store) no longer copies them into a flat index and back out, copies which at
        500,000 chunks put the build's peak at 2.5 GB instead of 1.5 GB.
        """
        keys, vectors = new_keys, new_vectors
        if len(self):
            old_keys = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            old_vectors = faiss.downcast_index(self._index.index).reconstruct_n(0, len(old_keys))
            keys, vectors = np.concatenate([old_keys, new_keys]), np.vstack([old_vectors, new_vectors])
        cells = cells_for(len(keys))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, cells, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).permutation(len(keys))[: cells * TRAIN_POINTS_PER_CELL]
        ivf.train(vectors[np.sort(sample)])
        ivf.add_with_ids(vectors, keys)
        self._index, self.kind = ivf, "ivf"
