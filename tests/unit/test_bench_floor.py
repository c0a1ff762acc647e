"""The floor's run split in two halves around the mesh's: together they make the run the options ask for."""

from __future__ import annotations

import random

from likeopt.ops.bench.floor import BracketingFloor
from likeopt.ops.bench.load import LoadSettings
from likeopt.ops.bench.scenarios import build


class CountingWork:
    """FloorWork's search, answering at once and recording the queries it was asked."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def search(self, query: str) -> tuple[bytes, bool]:
        self.queries.append(query)
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
