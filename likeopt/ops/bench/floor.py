"""The floor: a scenario's work done in this process by direct library calls, no mesh.

``likeopt bench --floor`` runs it in two halves, one just before the mesh's measured run
and one just after, with the same scenario (a fresh query stream: its own run token, so
its cache starts as cold as the mesh's did), the same number of concurrent workers
(closed loop) and, the halves together, the same duration or request count. The halves
bracket the mesh's run because a shared machine's speed drifts within minutes, and a floor
measured only before or after the mesh carries that drift into mesh/floor
(benchmarks/README.md, "The floor measured in halves").
The ratio mesh/floor is then what the mesh costs on top of the work itself: HTTP, Envoy,
gRPC hops, serialisation, queueing between processes.

The work is the mesh's own code, loaded from the mesh's own settings: the retrieval
engine over retrieval_svc's data directory (read, never written), its query encoder,
the answer backend generation_svc runs, the same JSON rendering. Cached scenarios get
an in-process cache keyed like the near caches, so a repeat costs a lookup, as it
would at best anywhere.

The services' packages are imported inside the functions: this is the one place of the
common package that runs their code, and only when asked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likeopt.caching.cache_keys import normalise_query
from likeopt.caching.near_cache import VersionedLRU
from likeopt.ops.bench.load import LoadSettings, Sample
from likeopt.ops.bench.probes import own_cpu_seconds
from likeopt.ops.bench.scenarios import Scenario
from likeopt.runtime.config import Config

SEARCH_TOP_K = 10
"""What the bench's search requests ask for (the gateway's default)."""
CHAT_TOP_K = 5


@dataclass
class FloorWork:
    """The mesh's code for one request of each kind, run in this process; searches run in a pool of the size
    retrieval_svc's is, since a pool of another size queues them differently and so moves the floor's p95."""

    engine: Any
    backend: Any
    retrieval_config: Config
    cache: VersionedLRU[bytes]
    pool: ThreadPoolExecutor

    @classmethod
    def load(cls, retrieval_env: dict[str, str], retrieval_cwd: Path, generation_env: dict[str, str]) -> FloorWork:
        """Load what retrieval_svc and generation_svc run, from the settings in their environments."""
        from generation_svc.__main__ import make_backend
        from retrieval_svc.engine import loaded_engine
        from retrieval_svc.search_threads import search_pool

        # As the services read them, and read-only: never writes the mesh's store.
        config = Config.for_process("retrieval_svc", retrieval_env).replace(retrieval_read_only=True)
        engine = loaded_engine(config, retrieval_cwd / config.data_dir)  # an absolute data_dir stays as it is
        backend = make_backend(Config.for_process("generation_svc", generation_env))
        return cls(engine, backend, config, VersionedLRU("floor"), search_pool())

    def search(self, query: str, top_k: int = SEARCH_TOP_K) -> tuple[bytes, bool]:
        """A search's JSON body as the gateway renders it, and whether it came from the cache."""
        from gateway.convert import hit_json
        from gateway.fast_json import hits_json, search_body, search_head

        started = time.perf_counter()
        key = (normalise_query(query), top_k)
        if (head := self.cache.get(key, self.engine.version)) is not None:
            return search_body(head, (time.perf_counter() - started) * 1000), True
        hits = hits_json([hit_json(hit) for hit in self.ranked(query, top_k)])
        head = search_head(hits, self.engine.version, cached=False)
        self.cache.put(key, self.engine.version, head, len(head))
        return search_body(head, (time.perf_counter() - started) * 1000), False

    def ranked(self, query: str, top_k: int) -> list[Any]:
        """The SearchHit messages retrieval_svc would return for an uncached hybrid search."""
        from likeopt.v1 import retrieval_pb2
        from retrieval_svc.search_messages import hit_message, search_params

        params = search_params(retrieval_pb2.SearchRequest(query=query, top_k=top_k), self.retrieval_config)
        normalised = normalise_query(query)
        vector = self.engine.embed_query(normalised)
        return [hit_message(hit) for hit in self.engine.search(normalised, params, vector)]

    async def answer(self, query: str) -> float:
        """Stream an answer to query from the top passages; returns the seconds to its first piece."""
        from generation_svc.backends import Passage, Usage

        started = time.perf_counter()
        hits = await asyncio.get_running_loop().run_in_executor(self.pool, self.ranked, query, CHAT_TOP_K)
        passages = [Passage(n, h.doc_id, h.chunk_id, h.title, h.text) for n, h in enumerate(hits, start=1)]
        first: float | None = None
        async for _ in self.backend.stream(query, passages, [], Usage()):
            if first is None:
                first = time.perf_counter() - started
        return first if first is not None else time.perf_counter() - started


@dataclass
class BracketingFloor:
    """The floor's run split in halves around the mesh's: ``run_half`` before and after it, then the samples,
    seconds and this process's CPU seconds of both together."""

    work: FloorWork
    scenario: Scenario
    settings: LoadSettings
    samples: list[Sample] = field(default_factory=list)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0

    async def run_half(self) -> None:
        half = dataclasses.replace(
            self.settings,
            duration_s=self.settings.duration_s / 2,
            max_requests=math.ceil(self.settings.max_requests / 2),
        )
        run = await run_floor(self.work, self.scenario, half)
        self.samples += run.samples
        self.elapsed_s += run.elapsed_s
        self.cpu_s += run.cpu_s


@dataclass(frozen=True)
class FloorRun:
    """One closed-loop run of the floor: its samples, its seconds and this process's CPU seconds in them."""

    samples: list[Sample]
    elapsed_s: float
    cpu_s: float


async def run_floor(work: FloorWork, scenario: Scenario, settings: LoadSettings) -> FloorRun:
    """The scenario's requests against work, closed loop, after its warm-up (which no figure counts)."""
    for query in scenario.warmup:
        await _one(work, scenario, query)
    samples: list[Sample] = []
    cpu_before = own_cpu_seconds()
    started = time.perf_counter()
    deadline = started + settings.duration_s

    def more() -> bool:
        return time.perf_counter() < deadline and not (settings.max_requests and len(samples) >= settings.max_requests)

    async def worker() -> None:
        while more():
            query = next(scenario.queries)
            at = time.perf_counter()
            ttft, cached = await _one(work, scenario, query)
            samples.append(Sample(at - started, time.perf_counter() - at, ttft_s=ttft, cached=cached))

    await asyncio.gather(*(worker() for _ in range(settings.concurrency)))
    return FloorRun(samples, time.perf_counter() - started, own_cpu_seconds() - cpu_before)


async def _one(work: FloorWork, scenario: Scenario, query: str) -> tuple[float | None, bool | None]:
    """One request's work: (seconds to the first answer piece for chat, whether a search came from the cache)."""
    if scenario.streaming:
        return await work.answer(query), False
    _, cached = await asyncio.get_running_loop().run_in_executor(work.pool, work.search, query)
    return None, cached
