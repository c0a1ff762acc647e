"""The cache of a selective filter's vectors (retrieval_svc/milvus_vectors.py): ranks as milvus_ranking.best_first
does, holds one index version at a time, drops the least recently searched filter past its bounds, and has searches
of a filter arriving together share one read of its vectors."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
from pymilvus.exceptions import MilvusException

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


class GatedRead:
    """A read of a filter's vectors that stays under way until the test opens the gate, counting its calls."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.started, self.gate = threading.Event(), threading.Event()
        self.error = error

    def __call__(self) -> Passing:
        self.calls += 1
        self.started.set()
        self.gate.wait()
        if self.error is not None:
            raise self.error
        return passing(3)


def two_searches(cache: VectorCache, first_read: GatedRead, second_read: GatedRead) -> tuple[object, object]:
    """What two searches of filter "f" at version 1 got (a Passing or the error raised), the second arriving while
    the first one's read is under way, as a reader's first searches do when they come together (searches run on
    retrieval_svc's thread pool)."""
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_or_read, "f", 1, first_read)
        assert first_read.started.wait(5)
        second = pool.submit(cache.get_or_read, "f", 1, second_read)
        wait([second], timeout=0.5)  # time to reach the read under way (unfixed, it starts one of its own)
        first_read.gate.set()
        second_read.gate.set()
        return outcome(first), outcome(second)


def outcome(search: Future[Passing]) -> object:
    return search.exception(5) or search.result()


def test_searches_of_a_filter_arriving_together_share_one_read() -> None:
    """Each search that found the filter not kept read its vectors from Milvus itself: a reader's first searches,
    arriving together, each paid the 0.5-2 s read."""
    cache, first_read, second_read = VectorCache(), GatedRead(), GatedRead()
    got_first, got_second = two_searches(cache, first_read, second_read)
    assert (first_read.calls, second_read.calls) == (1, 0)
    assert got_second is got_first is cache.get("f", 1)
    other_version = GatedRead()
    other_version.gate.set()
    assert cache.get_or_read("f", 2, other_version) is not got_first and other_version.calls == 1


def test_a_failed_read_raises_in_every_waiting_search_and_the_next_search_reads_again() -> None:
    failing, waiting_read = GatedRead(MilvusException(message="milvus went away")), GatedRead()
    cache = VectorCache()
    assert two_searches(cache, failing, waiting_read) == (failing.error, failing.error)
    assert waiting_read.calls == 0 and cache.get("f", 1) is None
    again = GatedRead()
    again.gate.set()
    assert cache.get_or_read("f", 1, again) is cache.get("f", 1) is not None and again.calls == 1


def test_a_chunk_gone_since_the_vectors_were_read_is_replaced_by_the_next_readable_one() -> None:
    """A search showed fewer than limit chunks until the next index version: the chunks read gone were dropped and
    nothing took their place."""
    ids = [f"c{n:03d}" for n in range(40)]
    kept = Passing(ids, np.asarray([[1.0, n / 100] for n in range(40)], dtype=np.float32))  # c039 scores best
    gone = set(ids[-20:-1]) | {"c000"}  # nineteen of the best, as a deleted document of many chunks, and the worst
    asked: list[list[str]] = []

    def read(chunk_ids: list[str]) -> dict[str, dict[str, object]]:
        asked.append(chunk_ids)
        return {c: {"chunk_id": c} for c in chunk_ids if c not in gone}

    queries = np.asarray([[0.0, 1.0], [0.0, -1.0]], dtype=np.float32)
    best, worst = kept.readable_top(queries, 4, read)
    assert [c for c, _, _ in best] == ["c039", "c019", "c018", "c017"]
    assert [c for c, _, _ in worst] == ["c001", "c002", "c003", "c004"]
    assert all(row == {"chunk_id": c} for c, _, row in best + worst)
    read_ids = [c for chunk_ids in asked for c in chunk_ids]
    assert len(read_ids) == len(set(read_ids))  # no chunk read twice
    assert len(asked) <= 4  # reads asking for twice as many each time; refilling only the shortfall would take 8
