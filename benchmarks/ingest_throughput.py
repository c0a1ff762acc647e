"""Ingestion throughput of retrieval_svc against bare SentenceTransformer.encode, in one run (not a test).

The same SciFact documents are chunked once with the service's chunker; the bare
figure is ``SentenceTransformer.encode`` over exactly those chunk texts (batch 64,
torch's default threads, in this process); the service figure is a fresh retrieval_svc ingesting the
documents over gRPC (IngestDocuments: chunking, embedding, SQLite commit, BM25
and FAISS updates) from the first document sent to the last acknowledgement.
Both are chunks per second; the ratio is service / bare.

Usage, from the repository root:
    python -m benchmarks.ingest_throughput [--docs 400]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import grpc
import torch

from likeopt.ops.evaluate import private_retrieval
from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.backend import DocumentInput, embedding_text
from retrieval_svc.embedder import Embedder
from retrieval_svc.engine import RetrievalEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--docs", type=int, default=400)
    args = parser.parse_args()
    config = Config.from_env()
    with (args.data / "corpus.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for _, line in zip(range(args.docs), lines, strict=False)]
    docs = [DocumentInput(r["_id"], r.get("title", ""), r["text"], {}) for r in records]

    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        embedder = Embedder(config.embedding_model or None)  # sets torch to one thread, as in the service
        torch.set_num_threads(default_threads)  # the bare baseline runs as a user would run it
        engine = RetrievalEngine(Path(scratch), embedder, config.chunk_tokens, config.chunk_overlap)
        texts = [embedding_text(d.title, chunk) for d in docs for chunk in engine.prepare(d)]
        engine.store.close()
        embedder.encode(texts[:8])  # warm-up, as the service warms up at load
        started = time.perf_counter()
        embedder.model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True)
        bare_s = time.perf_counter() - started

        data_dir = Path(scratch) / "service"
        with private_retrieval(data_dir, Path(scratch) / "retrieval_svc.log") as address:
            with grpc.insecure_channel(address) as channel:
                stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
                messages = [retrieval_pb2.Document(id=d.id, title=d.title, text=d.text) for d in docs]
                started = time.perf_counter()
                chunks = sum(p.chunks for p in stub.IngestDocuments(iter(messages), timeout=3600))
                service_s = time.perf_counter() - started
    assert chunks == len(texts), f"the service made {chunks} chunks, the chunker {len(texts)}"
    bare, service = len(texts) / bare_s, chunks / service_s
    print(
        json.dumps(
            {
                "documents": len(docs),
                "chunks": len(texts),
                "bare_encode_chunks_per_s": round(bare, 1),
                "service_chunks_per_s": round(service, 1),
                "ratio": round(service / bare, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
