"""CPU cost of fusing two rankings as a hybrid search does (not a test: prints figures).

retrieval_svc fuses up to CANDIDATE_DEPTH candidates from each retriever for every uncached hybrid
search, holding the GIL throughout, so this cost is paid once per search on a thread the event loop
also needs.

Usage, from the repository root:
    python -m benchmarks.fusion_speed [--candidates 100] [--rows 5000]
"""

from __future__ import annotations

import argparse
import random
import timeit

from retrieval_svc.backend import SearchParams
from retrieval_svc.engine_search import CANDIDATE_DEPTH
from retrieval_svc.fusion import fuse

CALLS = 2000
REPEATS = 5


def rankings(candidates: int, rows: int, seed: int = 1) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """A BM25-like and a cosine-like ranking of candidates rows each, overlapping by chance as real ones do."""
    rng = random.Random(seed)
    lexical = [(row, 30 - rank * 0.1) for rank, row in enumerate(rng.sample(range(rows), candidates))]
    dense = [(row, 0.9 - rank * 0.001) for rank, row in enumerate(rng.sample(range(rows), candidates))]
    return lexical, dense


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=CANDIDATE_DEPTH)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    lexical, dense = rankings(args.candidates, args.rows)
    for fusion in ("convex", "rrf"):
        params = SearchParams(top_k=10, mode="hybrid", fusion=fusion, rrf_k=60, alpha=0.5)
        best = min(timeit.repeat(lambda p=params: fuse(lexical, dense, p), number=CALLS, repeat=REPEATS))
        top = [(hit.row, round(hit.score, 4)) for hit in fuse(lexical, dense, params)[:3]]
        print(f"{fusion:6s} {best / CALLS * 1e6:7.1f} µs per search  top 3 {top}")


if __name__ == "__main__":
    main()
