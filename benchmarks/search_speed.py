"""retrieval_svc Search latency over gRPC against the in-process floor, in one run (not a test).

For each data directory: start a private retrieval_svc on it (cache off), report how
long it took to serve (start-up with the corpus loaded, nothing re-embedded), send
every SciFact test query once, one at a time, uncached, and time the round trips.
Then load the same directory in this process and time the same queries through
the engine alone (query embedding + BM25 + vector search + fusion, no gRPC): the
floor. The ratio is p95 over gRPC divided by the floor's p95.

Usage, from the repository root:
    python -m benchmarks.search_speed --dir var/eval/scifact-… [--dir var/bench/synthetic-100k] [--mode hybrid]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from likeopt.config import Config
from likeopt.evaluate import Dataset, EvalSettings, percentile, private_retrieval
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.embedder import configured_embedder
from retrieval_svc.engine import RetrievalEngine, SearchParams


def latencies_ms(run: Callable[[str], None], queries: list[str]) -> list[float]:
    """Wall time of run(query) for each query, after one untimed warm-up."""
    run(queries[0])
    times = []
    for query in queries:
        started = time.perf_counter()
        run(query)
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {f"p{p}": round(percentile(times, p), 2) for p in (50, 95, 99)}


def measure(data_dir: Path, queries: list[str], mode: str, top_k: int, config: Config) -> dict[str, object]:
    """Start-up time, gRPC latencies and the in-process floor on one data directory."""
    started = time.perf_counter()
    with private_retrieval(data_dir, data_dir / "retrieval_svc.log") as address:
        serving_s = time.perf_counter() - started
        with grpc.insecure_channel(address) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            status = stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=10)
            settings = EvalSettings(mode)

            def over_grpc(query: str) -> None:
                request = settings.request(query)
                request.top_k, request.per_document = top_k, False
                stub.Search(request, timeout=30)

            grpc_times = latencies_ms(over_grpc, queries)
    engine = RetrievalEngine(
        data_dir,
        configured_embedder(config),
        config.chunk_tokens,
        config.chunk_overlap,
        vector_exact_max=config.vector_exact_max,
        vector_nprobe=config.vector_nprobe,
    )
    engine.load()
    params = SearchParams(top_k, mode, config.fusion, config.rrf_k, config.fusion_alpha)

    def in_process(query: str) -> None:
        vector = engine.embed_query(query) if mode != "bm25" else None
        engine.search(query, params, vector)

    floor_times = latencies_ms(in_process, queries)
    engine.store.close()
    grpc_summary, floor_summary = summary(grpc_times), summary(floor_times)
    return {
        "dir": str(data_dir),
        "documents": status.documents,
        "chunks": status.chunks,
        "vector_index": status.vector_index,
        "start_to_serving_s": round(serving_s, 2),
        "load_s": round(status.load_seconds, 2),
        "mode": mode,
        "top_k": top_k,
        "grpc_ms": grpc_summary,
        "in_process_ms": floor_summary,
        "p95_ratio": round(grpc_summary["p95"] / floor_summary["p95"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, action="append", required=True, help="a retrieval_svc data directory")
    parser.add_argument("--queries", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--mode", choices=["hybrid", "bm25", "dense"], default="hybrid")
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()
    queries = list(Dataset.load(args.queries).queries.values())
    config = Config.from_env()
    for data_dir in args.dir:
        print(json.dumps(measure(data_dir, queries, args.mode, args.top_k, config)), flush=True)


if __name__ == "__main__":
    main()
