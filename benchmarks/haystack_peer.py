"""Like-Opt's hybrid search against Haystack's on SciFact, in one run (not a test: prints figures).

Haystack (``pip install -e '.[bench]'``): InMemoryDocumentStore with its default
BM25 (BM25L), InMemoryBM25Retriever and InMemoryEmbeddingRetriever with the same
all-MiniLM-L6-v2 model, joined by DocumentJoiner's reciprocal rank fusion; each
document is ``title\\ntext``, embedded whole (the model truncates at 256 word pieces).
Like-Opt runs through retrieval_svc over gRPC exactly as ``likeopt eval`` does,
while Haystack runs in this process without any network hop.

Document embeddings for Haystack are computed once by its own document embedder
and kept under var/bench/ (they take minutes on two cores); queries are always
embedded at search time, in both systems, with torch single-threaded in both (the
faster setting on this two-core machine, see retrieval_svc/embedder.py).

Usage, from the repository root:
    python -m benchmarks.haystack_peer [--data /work/shared/data/scifact] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from likeopt.ops.evaluate import DEPTH, Dataset, EvalSettings, run_eval, score_run
from likeopt.runtime.config import Config
from likeopt.runtime.percentiles import percentile
from retrieval_svc.embedder import default_model_path

CACHE_DIR = Path("var/bench")


def corpus(data: Path) -> list[dict]:
    with (data / "corpus.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def haystack_documents(data: Path) -> list:
    """SciFact as Haystack documents with their embeddings, embedded once by Haystack and cached."""
    from haystack import Document
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
    )

    records = corpus(data)
    contents = [(r["_id"], f"{r.get('title', '')}\n{r['text']}") for r in records]
    cache = CACHE_DIR / f"haystack-{Dataset.load(data).data_dir(Path('.')).name}.npy"
    if cache.is_file():
        vectors = np.load(cache)
        return [
            Document(id=doc_id, content=content, embedding=vector.tolist())
            for (doc_id, content), vector in zip(contents, vectors, strict=True)
        ]
    documents = [Document(id=doc_id, content=content) for doc_id, content in contents]
    embedder = SentenceTransformersDocumentEmbedder(
        model=str(default_model_path()), local_files_only=True, normalize_embeddings=True, progress_bar=False
    )
    embedder.warm_up()
    documents = embedder.run(documents=documents)["documents"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, np.asarray([d.embedding for d in documents], dtype=np.float32))
    return documents


def haystack_row(data: Path, dataset: Dataset) -> dict[str, object]:
    """Haystack's hybrid pipeline over every test query: quality and per-query latency."""
    from haystack import Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersTextEmbedder,
    )

    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    store.write_documents(haystack_documents(data))
    pipeline = Pipeline()
    pipeline.add_component(
        "embedder",
        SentenceTransformersTextEmbedder(
            model=str(default_model_path()), local_files_only=True, normalize_embeddings=True, progress_bar=False
        ),
    )
    pipeline.add_component("bm25", InMemoryBM25Retriever(store, top_k=DEPTH))
    pipeline.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=DEPTH))
    pipeline.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=DEPTH))
    pipeline.connect("embedder.embedding", "dense.query_embedding")
    pipeline.connect("bm25", "join")
    pipeline.connect("dense", "join")

    def search(text: str) -> list[str]:
        result = pipeline.run({"embedder": {"text": text}, "bm25": {"query": text}})
        return [document.id for document in result["join"]["documents"]]

    search(next(iter(dataset.queries.values())))  # warm-up, not timed
    run: dict[str, list[str]] = {}
    latencies: list[float] = []
    for query_id, text in dataset.queries.items():
        started = time.perf_counter()
        run[query_id] = search(text)
        latencies.append((time.perf_counter() - started) * 1000)
    figures: dict[str, object] = {key: round(value, 4) for key, value in score_run(run, dataset.qrels).items()}
    figures["latency_ms"] = {f"p{p}": round(percentile(latencies, p), 2) for p in (50, 95, 99)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)

    dataset = Dataset.load(args.data)
    rows = {
        "haystack": haystack_row(args.data, dataset),
        "like-opt": run_eval(args.data, EvalSettings("hybrid"), Config.from_env()),
    }
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'system':<10} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, row in rows.items():
        latency = row["latency_ms"]
        assert isinstance(latency, dict)
        print(
            f"{name:<10} {row['ndcg@10']:>8.4f} {row['recall@100']:>7.4f} {row['mrr@10']:>7.4f} "
            f"{latency['p50']:>8.2f} {latency['p95']:>8.2f} {latency['p99']:>8.2f}"
        )


if __name__ == "__main__":
    main()
