"""Searches a second over one engine from one thread and from two (not a test: prints figures).

retrieval_svc runs uncached searches on one thread per core against one engine, each embedding its query
and then searching the indexes. The second thread adds what the two can do at once: everything while
searches took the engine's index one at a time, only the embedding could overlap, and the dense and BM25
search that grow with the collection could not. Each search here is what a pool task in retrieval_svc
does (``embedded``), or the index part alone on vectors embedded beforehand (``index only``).

Usage, from the repository root, on a retrieval_svc data directory (benchmarks/synthetic_corpus.py makes
large ones):
    python -m benchmarks.concurrent_search --dir DIR [--queries /work/shared/data/scifact] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from likeopt.ops.evaluate import Dataset
from likeopt.runtime.config import Config
from retrieval_svc.backend import SearchParams
from retrieval_svc.engine import RetrievalEngine, loaded_engine


def searches_per_second(search: Callable[[str], object], queries: list[str], threads: int) -> float:
    """Every query searched once by threads workers; searches per wall-clock second."""
    with ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        for _ in pool.map(search, queries):
            pass
        return len(queries) / (time.perf_counter() - started)


def kinds(engine: RetrievalEngine, params: SearchParams, queries: list[str]) -> dict[str, Callable[[str], object]]:
    """The two ways of searching measured: as a retrieval_svc pool task, and the index part alone."""
    vectors: dict[str, np.ndarray] = {query: engine.embed_query(query) for query in queries}
    return {
        "embedded": lambda query: engine.search(query, params, engine.embed_query(query)),
        "index only": lambda query: engine.search(query, params, vectors[query]),
    }


def measure(engine: RetrievalEngine, params: SearchParams, queries: list[str], rounds: int) -> dict[str, object]:
    """Per kind: searches a second with one and two threads (medians of rounds, alternating), and their ratio."""
    figures: dict[str, object] = {"chunks": len(engine.chunks), "vector_index": engine.vectors.kind}
    for name, search in kinds(engine, params, queries).items():
        runs: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(rounds):
            for threads in runs:
                runs[threads].append(searches_per_second(search, queries, threads))
        one, two = statistics.median(runs[1]), statistics.median(runs[2])
        figures[name] = {"one_thread": round(one, 1), "two_threads": round(two, 1), "ratio": round(two / one, 2)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="a retrieval_svc data directory")
    parser.add_argument("--queries", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--count", type=int, default=300, help="queries per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = Config.for_process("retrieval_svc", {}).replace(retrieval_read_only=True)
    engine = loaded_engine(config, args.dir)
    params = SearchParams(10, "hybrid", config.fusion, config.rrf_k, config.fusion_alpha)
    queries = list(Dataset.load(args.queries).queries.values())[: args.count]
    print(json.dumps(measure(engine, params, queries, args.rounds)), flush=True)
    engine.close()


if __name__ == "__main__":
    main()
