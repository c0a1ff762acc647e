"""The milvus backend through ``milvus-lite server`` against the embedded engine on one corpus (not a test).

Builds (or reuses) an embedded store of the corpus with the configured model, migrates it into a private
milvus-lite server (nothing embedded again), then, with every query embedded once beforehand so that only
the indexes and the network are timed:

- parity: the share of each query's top 10 (chunks) both backends return, per mode (milvus_migrate.verify);
- quality: nDCG@10 of one hit per document, per mode, on the dataset's judgements, for both backends;
- latency per search (p50/p95) of the embedded engine and of Milvus per mode, client-side fusion (two
  searches, fusion.py) against server-side hybrid_search, per document, and Strong against Eventually
  consistency; and of refresh() (one Strong query of the meta collection).

Usage, from the repository root:
    python -m benchmarks.milvus_backend --data /work/shared/data/scifact [--docs 1000] [--queries 300]
        [--work var/bench/milvus]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from likeopt.ops.evaluate import Dataset, best_chunk_per_document, ndcg_at, percentile
from likeopt.runtime.config import Config
from likeopt.runtime.loaders import LoadedDocument, load_paths
from retrieval_svc import milvus_collection
from retrieval_svc.backend import DocumentInput, SearchParams
from retrieval_svc.embedder import Embedder, configured_embedder
from retrieval_svc.engine import RetrievalEngine
from retrieval_svc.milvus_backend import MilvusBackend
from retrieval_svc.milvus_migrate import chunk_ids, migrate, verify
from tests.support import MilvusServer

MODES = ("bm25", "dense", "hybrid")


def embedded_engine(work: Path, data: Path, docs: int, embedder: Embedder, config: Config) -> RetrievalEngine:
    """The embedded engine over the first ``docs`` documents of the corpus, ingested once and kept."""
    engine = RetrievalEngine(work, embedder, config.chunk_tokens, config.chunk_overlap)
    engine.load()
    if engine.documents:
        return engine
    loaded = (d for d in load_paths([str(data)]) if isinstance(d, LoadedDocument))
    batch: list[DocumentInput] = []
    for doc in itertools.islice(loaded, docs):
        batch.append(DocumentInput(doc.id, doc.title, doc.text, doc.metadata))
        if len(batch) == 256:
            engine.upsert(batch, [engine.prepare(d) for d in batch])
            batch = []
    if batch:
        engine.upsert(batch, [engine.prepare(d) for d in batch])
    return engine


def timed(runs: dict[str, Callable[[str], object]], queries: list[str]) -> dict[str, dict[str, float]]:
    """p50 and p95 wall time of each run(query) in milliseconds, after two untimed warm-ups. The runs take
    turns query by query, so a noisy neighbour or a slow spell on the shared machine hits them alike."""
    for query in queries[:2]:
        for run in runs.values():
            run(query)
    return {
        name: {"p50_ms": round(percentile(t, 50), 2), "p95_ms": round(percentile(t, 95), 2)}
        for name, t in in_turns(runs, queries).items()
    }


def in_turns(runs: dict[str, Callable[[str], object]], queries: list[str]) -> dict[str, list[float]]:
    """Each run's wall time per query in milliseconds, the runs taking turns query by query."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for query in queries:
        for name, run in runs.items():
            started = time.perf_counter()
            run(query)
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def params(mode: str, fusion: str = "rrf", per_document: bool = False) -> SearchParams:
    return SearchParams(top_k=10, mode=mode, fusion=fusion, rrf_k=60, alpha=0.5, per_document=per_document)


def latencies(
    engine: RetrievalEngine, backends: dict[str, MilvusBackend], queries: list[str], vectors: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Each configuration's search latency over the same queries and query vectors."""
    client, server = backends["analyzer"], backends["server"]

    def run(searcher: object, mode: str, fusion: str = "rrf", per_document: bool = False) -> Callable[[str], object]:
        return lambda q: searcher.search(q, params(mode, fusion, per_document), vectors[q])  # type: ignore[attr-defined]

    runs: dict[str, Callable[[str], object]] = {}
    for mode in MODES:
        runs[f"embedded {mode}"] = run(engine, mode)
        runs[f"milvus {mode}"] = run(client, mode)
    runs["milvus bm25, bm25_terms"] = run(backends["terms"], "bm25")
    for fusion in ("rrf", "convex"):
        runs[f"milvus hybrid {fusion} client-side"] = run(client, "hybrid", fusion)
        runs[f"milvus hybrid {fusion} server-side"] = run(server, "hybrid", fusion)
    runs["embedded hybrid per document"] = run(engine, "hybrid", per_document=True)
    runs["milvus hybrid per document client-side"] = run(client, "hybrid", per_document=True)
    runs["milvus hybrid per document server-side"] = run(server, "hybrid", per_document=True)
    runs["milvus hybrid Eventually"] = run(backends["eventually"], "hybrid")
    runs["milvus refresh()"] = lambda q: client.refresh()
    return timed(runs, queries)


def quality(
    searchers: dict[str, object], dataset: Dataset, ids: list[str], vectors: dict[str, np.ndarray]
) -> dict[str, float]:
    """nDCG@10 of one hit per document, per mode and searcher, over the queries given by id."""
    figures = {}
    for name, searcher in searchers.items():
        for mode in MODES:
            scores = []
            for qid in ids:
                query = dataset.queries[qid]
                hits = searcher.search(query, params(mode, per_document=True), vectors[query])  # type: ignore[attr-defined]
                ranking = best_chunk_per_document([c.split("#")[0] for c in chunk_ids(hits)])
                scores.append(ndcg_at(ranking, dataset.qrels[qid], 10))
            figures[f"{name} {mode} ndcg@10"] = round(sum(scores) / len(scores), 4)
    return figures


def milvus_backends(uri: str, embedder: Embedder, config: Config) -> dict[str, MilvusBackend]:
    """The configurations measured: raw text through the analyzer (the default) with client-side fusion,
    server-side fusion and Eventually consistency on the same collection, and bm25_terms on its own."""

    def backend(collection: str, **options: object) -> MilvusBackend:
        made = MilvusBackend(embedder, uri, "", collection, config.chunk_tokens, config.chunk_overlap, **options)  # type: ignore[arg-type]
        made.load()
        return made

    return {
        "analyzer": backend("bench"),
        "terms": backend("bench_terms", bm25_terms=True),
        "server": backend("bench", server_fusion=True),
        "eventually": backend("bench", consistency_level="Eventually"),
    }


def standard_analyzer_overlap(
    uri: str, embedder: Embedder, config: Config, engine: RetrievalEngine, store: Path, queries: list[str]
) -> float:
    """BM25 top-10 overlap with the embedded engine with Milvus's plain standard analyzer (no stop words)."""
    original = milvus_collection.ANALYZER
    milvus_collection.ANALYZER = {"tokenizer": "standard"}
    try:
        variant = MilvusBackend(embedder, uri, "", "bench_standard", config.chunk_tokens, config.chunk_overlap)
        variant.load()
        migrate(store, variant)
    finally:
        milvus_collection.ANALYZER = original
    return verify(engine, variant, queries, modes=("bm25",)).parity["bm25"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--docs", type=int, default=10**9, help="the corpus's first N documents")
    parser.add_argument("--queries", type=int, default=300, help="queries for overlap and quality")
    parser.add_argument("--timed", type=int, default=100, help="queries timed per configuration")
    parser.add_argument("--work", type=Path, default=Path("var/bench/milvus"))
    args = parser.parse_args()
    config = Config.from_env()
    embedder = configured_embedder(config)
    engine = embedded_engine(args.work / "embedded", args.data, args.docs, embedder, config)
    store = args.work / "embedded" / "store.sqlite3"
    dataset = Dataset.load(args.data)
    ids = [q for q in dataset.queries if set(dataset.qrels[q]) & set(engine.documents)][: args.queries]
    queries = [dataset.queries[q] for q in ids]
    vectors = {q: embedder.encode_query(q) for q in queries}
    server = MilvusServer(args.work / "milvus")
    server.start()
    try:
        backends = milvus_backends(server.uri, embedder, config)
        figures: dict[str, object] = {"queries": len(queries)}
        for name in ("analyzer", "terms"):
            started = time.perf_counter()
            report = migrate(store, backends[name])
            figures[f"migration {name}"] = {
                "documents": report.documents,
                "chunks": report.chunks,
                "copied": report.copied,
                "seconds": round(time.perf_counter() - started, 1),
            }
            check = verify(engine, backends[name], queries)
            figures[f"top10 overlap {name}"] = {m: round(share, 3) for m, share in check.parity.items()}
            figures[f"counts match {name}"] = check.counts_match
        figures["top10 overlap bm25, standard analyzer"] = round(
            standard_analyzer_overlap(server.uri, embedder, config, engine, store, queries), 3
        )
        searchers = {"embedded": engine, "milvus": backends["analyzer"], "milvus bm25_terms": backends["terms"]}
        figures["quality"] = quality(searchers, dataset, ids, vectors)
        figures["latency"] = latencies(engine, backends, queries[: args.timed], vectors)
        print(json.dumps(figures, indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
