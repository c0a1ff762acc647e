"""Recall@10 of the approximate (IVF) dense index against exact search, and their speeds (not a test).

Vectors come from a retrieval_svc data directory (its stored chunk embeddings);
queries are the SciFact test queries embedded with the same model. Recall@10 is
the share of the exact top 10 that the IVF index also returns, averaged over the
queries, for several nprobe values.

Usage, from the repository root:
    python -m benchmarks.ann_recall --dir var/bench/synthetic-100k [--nprobe 16 32 48 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from likeopt.ops.evaluate import Dataset
from likeopt.runtime.percentiles import percentile
from retrieval_svc.embedder import Embedder
from retrieval_svc.store import Store
from retrieval_svc.vectors import VectorIndex, cells_for

K = 10


def timed_search(index: VectorIndex, queries: np.ndarray) -> tuple[list[set[int]], float]:
    """Each query's top K keys, and the p95 search time in milliseconds."""
    results, times = [], []
    for query in queries:
        started = time.perf_counter()
        results.append({key for key, _ in index.search(query, K)})
        times.append((time.perf_counter() - started) * 1000)
    return results, percentile(times, 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 48, 64])
    args = parser.parse_args()

    store = Store(args.dir / "store.sqlite3")
    chunks = list(store.chunks())
    store.close()
    keys = np.asarray([c.row for c in chunks], dtype=np.int64)
    vectors = np.vstack([c.embedding for c in chunks])
    queries = Embedder().encode(list(Dataset.load(args.queries).queries.values()))

    exact = VectorIndex(vectors.shape[1], exact_max=len(keys))
    exact.add(keys, vectors)
    truth, exact_p95 = timed_search(exact, queries)
    started = time.perf_counter()
    approximate = VectorIndex(vectors.shape[1], exact_max=0)
    approximate.add(keys, vectors)
    build_s = time.perf_counter() - started
    assert approximate.kind == "ivf"
    rows = []
    for nprobe in args.nprobe:
        approximate.nprobe = nprobe
        found, p95 = timed_search(approximate, queries)
        recall = float(np.mean([len(f & t) / len(t) for f, t in zip(found, truth, strict=True)]))
        rows.append({"nprobe": nprobe, "recall@10": round(recall, 4), "p95_ms": round(p95, 2)})
    print(
        json.dumps(
            {
                "vectors": len(keys),
                "cells": cells_for(len(keys)),
                "ivf_build_s": round(build_s, 1),
                "exact_p95_ms": round(exact_p95, 2),
                "ivf": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
