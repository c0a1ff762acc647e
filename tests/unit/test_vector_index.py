"""VectorIndex: a bulk add past the exact limit builds the same IVF index as crossing it step by step."""

from __future__ import annotations

import numpy as np

from retrieval_svc.vectors import VectorIndex, cells_for

DIM = 8


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_bulk_load_past_the_limit_equals_crossing_it_with_a_flat_index_first() -> None:
    keys, vectors = np.arange(1000, 2000, dtype=np.int64), unit_vectors(1000)
    bulk = VectorIndex(DIM, exact_max=500)
    bulk.add(keys, vectors)
    stepwise = VectorIndex(DIM, exact_max=500)
    stepwise.add(keys[:400], vectors[:400])
    assert stepwise.kind == "flat"
    stepwise.add(keys[400:], vectors[400:])
    assert bulk.kind == stepwise.kind == "ivf" and len(bulk) == len(stepwise) == 1000
    for query in unit_vectors(20, seed=1):
        assert bulk.search(query, 10) == stepwise.search(query, 10)


def test_every_vector_of_a_bulk_load_is_found_again() -> None:
    keys, vectors = np.arange(1000, dtype=np.int64) * 7, unit_vectors(1000)
    index = VectorIndex(DIM, exact_max=0, nprobe=cells_for(1000))  # every cell scanned: exact
    index.add(keys, vectors)
    assert index.kind == "ivf"
    assert [index.search(v, 1)[0][0] for v in vectors[::50]] == keys[::50].tolist()


def test_the_index_stays_exact_up_to_its_limit() -> None:
    index = VectorIndex(DIM, exact_max=100)
    index.add(np.arange(100, dtype=np.int64), unit_vectors(100))
    assert index.kind == "flat"
