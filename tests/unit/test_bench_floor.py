"""The floor's run split in two halves around the mesh's: together they make the run the options ask for."""

from __future__ import annotations

import random
import threading

from likeopt.ops.bench.floor import BracketingFloor
from likeopt.ops.bench.load import LoadSettings
from likeopt.ops.bench.scenarios import build
from retrieval_svc.search_threads import search_pool


class CountingWork:
    """FloorWork's search, answering at once and recording the queries it was asked and the threads it ran in."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.threads: set[str] = set()
        self.pool = search_pool()

    def search(self, query: str) -> tuple[bytes, bool]:
        self.queries.append(query)
        self.threads.add(threading.current_thread().name)
        return b"{}", False


async def test_two_halves_add_up_to_the_requested_count_and_continue_one_query_stream() -> None:
    work = CountingWork()
    scenario = build("search-uncached", ["zebra stripes", "vitamin d"], random.Random(3), 7)
    floor = BracketingFloor(work, scenario, LoadSettings(duration_s=60, concurrency=1, max_requests=9))  # type: ignore[arg-type]
    await floor.run_half()
    first_half = list(work.queries)
    await floor.run_half()
    assert len(first_half) == 5 and len(floor.samples) == 10  # ceil(9 / 2) each
    assert len(set(work.queries)) == len(work.queries)  # the second half went on with new, uncached queries
    assert floor.elapsed_s > 0 and all(s.latency_s >= 0 for s in floor.samples)


async def test_searches_run_in_a_pool_like_retrieval_svcs_not_in_asyncios_default_one() -> None:
    work = CountingWork()
    scenario = build("search-uncached", ["zebra stripes", "vitamin d"], random.Random(3), 7)
    floor = BracketingFloor(work, scenario, LoadSettings(duration_s=60, concurrency=8, max_requests=40))  # type: ignore[arg-type]
    await floor.run_half()
    assert work.threads and all(name.startswith("search") for name in work.threads)
