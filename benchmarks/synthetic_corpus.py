"""Build a retrieval_svc data directory of synthetic chunks from an ingested SciFact (not a test).

Embedding 100,000 real chunks takes hours on a shared two-core machine, and search
speed depends on the number of vectors and postings, not on where the text came
from. So each synthetic document is one chunk made of two to four random sentences
of random SciFact chunks (real vocabulary and term statistics for BM25), and its
embedding is the normalised mean of those chunks' real embeddings plus a little
noise (real geometry for FAISS). The documents are written straight into the
store, which retrieval_svc loads at start-up exactly as it loads ingested ones.

Usage, from the repository root, after ``likeopt eval --data /work/shared/data/scifact``:
    python -m benchmarks.synthetic_corpus --source var/eval/scifact-… [--out var/bench/synthetic-100k] [--chunks 100000]

The scaling curve in benchmarks/README.md uses 5,000, 50,000, 100,000 and 500,000 chunks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from likeopt.runtime.text import split_sentences
from retrieval_svc.store import NewDocument, Store

BATCH = 2_000
NOISE = 0.02


def build(source: Path, out: Path, chunks: int, seed: int = 0) -> None:
    """Write chunks one-chunk documents into out/store.sqlite3, mixed from the store in source."""
    reader = Store(source / "store.sqlite3")
    titles = {doc_id: title for doc_id, title, _ in reader.documents()}
    stored = list(reader.chunks())
    reader.close()
    sentences = [split_sentences(chunk.text) for chunk in stored]
    vectors = np.vstack([chunk.embedding for chunk in stored])
    rng = np.random.default_rng(seed)
    store = Store(out / "store.sqlite3")
    for start in range(0, chunks, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, chunks)):
            sources = rng.choice(len(stored), size=int(rng.integers(2, 5)), replace=False)
            text = " ".join(sentences[s][int(rng.integers(len(sentences[s])))] for s in sources)
            vector = vectors[sources].mean(axis=0) + rng.normal(0, NOISE, vectors.shape[1])
            vector /= np.linalg.norm(vector)
            title = titles[stored[sources[0]].doc_id]
            batch.append(NewDocument(f"syn-{n}", title, {}, [text], vector[None, :].astype(np.float32)))
        store.upsert(batch)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="data directory of an ingested SciFact")
    parser.add_argument("--out", type=Path, default=Path("var/bench/synthetic-100k"))
    parser.add_argument("--chunks", type=int, default=100_000)
    args = parser.parse_args()
    if (args.out / "store.sqlite3").exists():
        raise SystemExit(f"{args.out} exists already; remove it to rebuild")
    build(args.source, args.out, args.chunks)
    print(f"wrote {args.chunks} chunks to {args.out}")


if __name__ == "__main__":
    main()
