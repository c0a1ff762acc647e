"""The cache of a selective filter's vectors (retrieval_svc/milvus_vectors.py): ranks as milvus_ranking.best_first
does, holds one index version at a time, and drops the least recently searched filter past its bounds."""

from __future__ import annotations

import numpy as np

from retrieval_svc.milvus_vectors import Passing, VectorCache


def passing(rows: int, dim: int = 4) -> Passing:
    vectors = np.zeros((rows, dim), dtype=np.float32)
    vectors[:, 0] = 1.0
    return Passing([f"c{n:03d}" for n in range(rows)], vectors)


def test_each_query_s_top_is_best_first_and_ties_fall_to_the_smaller_chunk_id() -> None:
    vectors = np.asarray([[0.6, 0.8], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    kept = Passing(["a", "b", "c", "d"], vectors)
    tops = kept.top(np.asarray([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32), 3)
    assert [[chunk_id for chunk_id, _ in top] for top in tops] == [["d", "a", "c"], ["b", "a", "c"]]
    assert Passing([], np.zeros((0, 2), dtype=np.float32)).top(np.ones((2, 2), dtype=np.float32), 3) == [[], []]


def test_a_new_version_empties_the_cache() -> None:
    cache = VectorCache()
    cache.put("f", 1, passing(3))
    assert cache.get("f", 1) is not None and cache.get("f", 2) is None
    cache.put("g", 2, passing(3))
    assert cache.get("f", 2) is None and cache.get("f", 1) is None and cache.get("g", 2) is not None


def test_the_least_recently_searched_filter_goes_first_past_either_bound() -> None:
    by_bytes = VectorCache(most_bytes=passing(10).vectors.nbytes * 2, most_filters=100)
    for name in ("a", "b"):
        by_bytes.put(name, 1, passing(10))
    assert by_bytes.get("a", 1) is not None  # b is now the least recently searched
    by_bytes.put("c", 1, passing(10))
    assert [by_bytes.get(n, 1) is not None for n in "abc"] == [True, False, True]
    by_count = VectorCache(most_filters=2)
    for name in "xyz":
        by_count.put(name, 1, passing(0))
    assert [by_count.get(n, 1) is not None for n in "xyz"] == [False, True, True]
