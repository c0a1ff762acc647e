"""Time BM25Index against rank_bm25.BM25Okapi on SciFact (not a test: prints figures).

Usage, from the repository root:
    python -m benchmarks.bm25_speed [--data /work/shared/data/scifact] [--queries 300] [--top-k 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rank_bm25 import BM25Okapi

from likeopt.runtime.text import tokenize
from retrieval_svc.bm25 import BM25Index


def read_jsonl(path: Path) -> list[dict]:
    with path.open() as lines:
        return [json.loads(line) for line in lines]


def median_ms(run: Callable[[list[str]], object], queries: list[list[str]]) -> float:
    """Median wall time of run over the queries, in milliseconds."""
    times = []
    for query in queries:
        start = time.perf_counter()
        run(query)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()

    docs = [tokenize(f"{d['title']} {d['text']}") for d in read_jsonl(args.data / "corpus.jsonl")]
    queries = [tokenize(q["text"]) for q in read_jsonl(args.data / "queries.jsonl")[: args.queries]]

    start = time.perf_counter()
    index = BM25Index()
    for key, tokens in enumerate(docs):
        index.add(key, tokens)
    index.search(queries[0], args.top_k)  # folds the pending buffer in, as the first search would
    index_build = time.perf_counter() - start
    start = time.perf_counter()
    reference = BM25Okapi(docs)
    reference_build = time.perf_counter() - start

    def reference_search(query: list[str]) -> np.ndarray:
        return np.argsort(-reference.get_scores(query))[: args.top_k]

    worst = 0.0
    for query in queries:
        expected = reference.get_scores(query)
        worst = max([worst] + [abs(score - expected[key]) for key, score in index.search(query, args.top_k)])
    ours = median_ms(lambda q: index.search(q, args.top_k), queries)
    theirs = median_ms(reference_search, queries)
    print(f"corpus: {len(docs)} documents, {len(queries)} queries, top_k={args.top_k}")
    print(f"build: BM25Index {index_build:.2f} s (one add at a time), BM25Okapi {reference_build:.2f} s")
    print(f"median query: BM25Index {ours:.3f} ms, BM25Okapi {theirs:.3f} ms, speed-up {theirs / ours:.0f}x")
    print(f"max |score difference| on returned hits: {worst:.2e}")


if __name__ == "__main__":
    main()
