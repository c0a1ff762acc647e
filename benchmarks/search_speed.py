"""retrieval_svc Search latency over gRPC against the in-process floor, and its memory, in one run (not a test).

For each data directory: start a retrieval_svc on it (cache off), report how long
it took to serve (start-up with the corpus loaded, nothing re-embedded) and its
resident memory, send every SciFact test query once, one at a time, uncached, and
time the round trips. Then load the same directory in this process and time the
same queries through the engine alone (query embedding + BM25 + vector search +
fusion, no gRPC): the floor. The ratio is p95 over gRPC divided by the floor's p95.

An empty data directory is measured first, so that memory per chunk is the
service's resident memory above that of the same service with nothing indexed
(the model, ONNX Runtime and gRPC), divided by the chunks.

Usage, from the repository root:
    python -m benchmarks.search_speed --dir var/eval/scifact-… [--dir var/bench/synthetic-100k] [--mode hybrid]
        [--port 47100]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from likeopt.ops.evaluate import Dataset, EvalSettings, wait_serving
from likeopt.ops.processes import CHILD_ENV
from likeopt.runtime.config import Config
from likeopt.runtime.percentiles import percentile
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.backend import SearchParams
from retrieval_svc.engine import loaded_engine
from retrieval_svc.engine_search import CANDIDATE_DEPTH

HOST = "127.0.0.1"
DEFAULT_PORT = 47100
"""A fixed port, unlike likeopt eval's kernel-chosen one: on a shared machine others' meshes own fixed ranges."""


def latencies_ms(run: Callable[[str], object], queries: list[str]) -> list[float]:
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


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak so far (VmHWM), in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: round(int(fields[key].split()[0]) / 1024, 1) for name, key in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def load_average() -> float:
    """The one-minute load average: how busy the shared machine was."""
    return round(os.getloadavg()[0], 2)


@contextmanager
def retrieval_process(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """retrieval_svc on data_dir at HOST:port, cache and metrics off, once it answers SERVING."""
    env = {
        **os.environ,
        **CHILD_ENV,
        "LIKEOPT_HOST": HOST,
        "LIKEOPT_RETRIEVAL_PORT": str(port),
        "LIKEOPT_RETRIEVAL_METRICS_PORT": "0",
        "LIKEOPT_DATA_DIR": str(data_dir),
        "LIKEOPT_CACHE_ENABLED": "0",
    }
    argv = [sys.executable, "-m", "retrieval_svc"]
    with (
        (data_dir / "retrieval_svc.log").open("ab") as log,
        subprocess.Popen(argv, env=env, stdout=log, stderr=log) as process,
    ):
        try:
            wait_serving(f"{HOST}:{port}", process)
            yield process
        finally:
            process.terminate()  # it drains and exits; leaving the with block waits for that


def over_grpc(data_dir: Path, port: int, queries: list[str], mode: str, top_k: int) -> dict[str, object]:
    """Start-up, index status, memory and gRPC latencies of a retrieval_svc on data_dir."""
    started = time.perf_counter()
    with retrieval_process(data_dir, port) as process:
        serving_s = time.perf_counter() - started
        at_serving = memory_mb(process.pid)
        with grpc.insecure_channel(f"{HOST}:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            status = stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=10)
            settings = EvalSettings(mode)

            def search(query: str) -> None:
                request = settings.request(query)
                request.top_k, request.per_document = top_k, False
                stub.Search(request, timeout=30)

            times = latencies_ms(search, queries)
        after_queries = memory_mb(process.pid)
    return {
        "documents": status.documents,
        "chunks": status.chunks,
        "vector_index": status.vector_index,
        "start_to_serving_s": round(serving_s, 2),
        "load_s": round(status.load_seconds, 2),
        "rss_at_serving_mb": at_serving["rss"],
        "rss_mb": after_queries["rss"],
        "peak_rss_mb": after_queries["peak"],
        "grpc_ms": summary(times),
    }


def in_process(data_dir: Path, queries: list[str], mode: str, top_k: int, config: Config) -> dict[str, object]:
    """The floor: the same queries through an engine loaded in this process, and where its time goes.

    The stages are timed apart, each retriever at the depth hybrid search asks of it, so a
    slow corpus shows whether the model, BM25 or the vector index is what grew.
    """
    engine = loaded_engine(config, data_dir)
    params = SearchParams(top_k, mode, config.fusion, config.rrf_k, config.fusion_alpha)

    def search(query: str) -> None:
        vector = engine.embed_query(query) if mode != "bm25" else None
        engine.search(query, params, vector)

    times = latencies_ms(search, queries)
    vectors = {query: engine.embed_query(query) for query in queries}

    def alone(retriever: str) -> Callable[[str], object]:
        alone_params = dataclasses.replace(params, top_k=max(top_k, CANDIDATE_DEPTH), mode=retriever)
        return lambda query: engine.search(query, alone_params, vectors[query])

    stages = {
        "embedding": summary(latencies_ms(engine.embed_query, queries)),
        "bm25": summary(latencies_ms(alone("bm25"), queries)),
        "dense": summary(latencies_ms(alone("dense"), queries)),
    }
    engine.store.close()
    return {**summary(times), "stages": stages}


def measure(data_dir: Path, port: int, queries: list[str], mode: str, top_k: int, config: Config) -> dict[str, object]:
    """Everything about one data directory, with the load average before and after."""
    load_before = load_average()
    served = over_grpc(data_dir, port, queries, mode, top_k)
    floor = in_process(data_dir, queries, mode, top_k, config)
    grpc_ms = served["grpc_ms"]
    assert isinstance(grpc_ms, dict) and isinstance(floor["p95"], float)
    return {
        "dir": str(data_dir),
        **served,
        "mode": mode,
        "top_k": top_k,
        "in_process_ms": floor,
        "p95_ratio": round(grpc_ms["p95"] / floor["p95"], 2),
        "load_average": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, action="append", required=True, help="a retrieval_svc data directory")
    parser.add_argument("--queries", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--mode", choices=["hybrid", "bm25", "dense"], default="hybrid")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="loopback port of the measured retrieval_svc")
    args = parser.parse_args()
    queries = list(Dataset.load(args.queries).queries.values())
    config = Config.from_env()
    with tempfile.TemporaryDirectory(prefix="search-speed-empty-") as empty:
        baseline = measure(Path(empty), args.port, queries, args.mode, args.top_k, config)
    print(json.dumps(baseline), flush=True)
    for data_dir in args.dir:
        figures = measure(data_dir, args.port, queries, args.mode, args.top_k, config)
        chunks, rss = figures["chunks"], figures["rss_mb"]
        assert isinstance(chunks, int) and isinstance(rss, float) and isinstance(baseline["rss_mb"], float)
        figures["kb_per_chunk"] = round((rss - baseline["rss_mb"]) * 1024 / chunks, 2) if chunks else None
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
