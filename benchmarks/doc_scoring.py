"""Document-level scoring and fusion choices on ingested collections, in process (not a test).

How the document-level defaults were chosen (benchmarks/README.md, "Beyond SciFact"). For every
collection the queries are embedded once and every chunk and document is scored exhaustively, so
the variants differ only in how chunk scores become a document's score:

- dense: ``max`` over chunks (the engine before issue 21), ``first`` chunk, ``mean`` (cosine with the
  normalised mean of the document's chunk vectors), ``window`` (MiniLM over title and text, which
  the model cuts at its 256-word-piece window: the naive whole-document vector), and mixes
  ``(1 - w) * max + w * mean`` (``mix-mean-w``) and with the window (``mix-window-w``);
  ``engine-w`` is the mix as the engine computes it: the top 100 documents by max, re-scored;
- BM25: best chunk per document against BM25 over whole documents;
- fusion of BM25 (chunks) with each dense variant: convex on min-max scores (alpha 0.5), convex on
  z-scores, and RRF (k 60), each side's top 100 documents; and convex at other alphas;
- naive: rank_bm25's BM25Okapi over whole documents (our terms) and the window vectors, RRF k 60.

Queries are tokenised as retrieval_svc tokenises them (query_terms), so the BM25 rows score what
``likeopt eval --mode bm25`` scores.

The window vectors are kept in var/bench/haystack-<collection>.npy, the file
benchmarks/haystack_peer.py reads: the same model over the same ``title\\ntext`` strings.

Usage, from the repository root, after ``likeopt eval --data DIR`` has ingested each collection:
    python -m benchmarks.doc_scoring --data /work/shared/data/scifact --data benchmarks/data/scifact-long [--json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rank_bm25 import BM25Okapi

from likeopt.caching.cache_keys import normalise_query
from likeopt.ops.evaluate import DEPTH, Dataset, eval_data_dir, score_run
from likeopt.runtime.config import Config
from likeopt.runtime.text import tokenize
from retrieval_svc.backend import embedding_text
from retrieval_svc.bm25 import BM25Index
from retrieval_svc.embedder import Embedder, configured_embedder
from retrieval_svc.fusion import convex, rrf
from retrieval_svc.store import Store

CACHE_DIR = Path("var/bench")
EVAL_DIR = Path("var/eval")
WEIGHTS = (0.2, 0.3, 0.5)
ALPHAS = (0.3, 0.4, 0.6, 0.7)
"""Convex fusion's dense weight besides the default 0.5, with BM25 chunks and dense max."""
Scores = dict[str, float]
"""One query's documents with their scores."""


@dataclass
class Collection:
    """An ingested collection as arrays: chunk vectors grouped by document, in document order."""

    name: str
    dataset: Dataset
    doc_ids: list[str]
    texts: list[str]
    """Each document as ``title\\ntext``, corpus order (what the window vectors embed)."""
    chunk_doc: np.ndarray
    """Document index of each chunk, chunks sorted by document then ordinal."""
    chunk_vectors: np.ndarray
    chunk_terms: list[list[str]]
    query_vectors: dict[str, np.ndarray]


def load(data: Path, embedder: Embedder) -> Collection:
    """Read the collection's corpus and its likeopt eval store; embed its queries."""
    dataset = Dataset.load(data)
    with (data / "corpus.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    doc_ids = [str(r["_id"]) for r in records]
    index = {doc_id: n for n, doc_id in enumerate(doc_ids)}
    store = Store(eval_data_dir(dataset, Config.from_env(), EVAL_DIR) / "store.sqlite3")
    chunks = sorted(store.chunks(), key=lambda c: (index[c.doc_id], c.ordinal))
    store.close()
    if {c.doc_id for c in chunks} != set(doc_ids):
        raise SystemExit(f"{data}: not fully ingested; run likeopt eval --data {data} first")
    return Collection(
        name=data.resolve().name,
        dataset=dataset,
        doc_ids=doc_ids,
        texts=[f"{r.get('title', '')}\n{r['text']}" for r in records],
        chunk_doc=np.asarray([index[c.doc_id] for c in chunks]),
        chunk_vectors=np.vstack([c.embedding for c in chunks]).astype(np.float32),
        chunk_terms=[
            c.terms.split()
            if c.terms is not None
            else tokenize(embedding_text(records[index[c.doc_id]].get("title", ""), c.text))
            for c in chunks
        ],
        query_vectors={q: embedder.encode_query(text) for q, text in dataset.queries.items()},
    )


def window_vectors(collection: Collection, embedder: Embedder) -> np.ndarray:
    """MiniLM over each whole document (cut at the model's window), computed once and cached."""
    cache = CACHE_DIR / f"haystack-{collection.dataset.data_dir(Path('.')).name}.npy"
    if cache.is_file():
        return np.load(cache)
    vectors = embedder.encode(collection.texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def document_table(collection: Collection, chunk_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per document: its best chunk's score and its first chunk's score."""
    starts = np.flatnonzero(np.r_[True, np.diff(collection.chunk_doc) != 0])
    return np.maximum.reduceat(chunk_scores, starts), chunk_scores[starts]


def mean_vectors(collection: Collection) -> np.ndarray:
    """Each document's normalised mean chunk vector."""
    sums = np.zeros((len(collection.doc_ids), collection.chunk_vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, collection.chunk_doc, collection.chunk_vectors)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True)


def top(doc_ids: list[str], scores: np.ndarray, depth: int = DEPTH) -> Scores:
    """The depth best documents with their scores."""
    best = np.argsort(-scores, kind="stable")[:depth]
    return {doc_ids[i]: float(scores[i]) for i in best if np.isfinite(scores[i])}


def dense_runs(collection: Collection, window: np.ndarray) -> dict[str, dict[str, Scores]]:
    """Every dense variant's top documents for every query."""
    means = mean_vectors(collection)
    runs: dict[str, dict[str, Scores]] = {}
    for query_id, vector in collection.query_vectors.items():
        best, first = document_table(collection, collection.chunk_vectors @ vector)
        mean, whole = means @ vector, window @ vector
        variants = {"max": best, "first": first, "mean": mean, "window": whole}
        for w in WEIGHTS:
            variants[f"mix-mean-{w}"] = (1 - w) * best + w * mean
            variants[f"mix-window-{w}"] = (1 - w) * best + w * whole
            for pool, label in ((DEPTH, "engine"), (2 * DEPTH, "engine2x")):
                chosen = np.argsort(-best, kind="stable")[:pool]
                engine = np.full(len(best), -np.inf, dtype=np.float32)
                engine[chosen] = ((1 - w) * best + w * mean)[chosen]
                variants[f"{label}-{w}"] = engine
        for name, scores in variants.items():
            runs.setdefault(name, {})[query_id] = top(collection.doc_ids, scores)
    return runs


def query_terms(text: str) -> list[str]:
    """A query's BM25 terms as retrieval_svc searches it: casefolded by normalise_query before tokenize, so an
    identifier split by its case in a document ("OpenAPI": open, api) is matched by its joined form only."""
    return tokenize(normalise_query(text))


def bm25_runs(collection: Collection) -> dict[str, dict[str, Scores]]:
    """BM25 over chunks (each document at its best chunk) and over whole documents."""
    chunks, documents = BM25Index(), BM25Index()
    chunks.add_many(list(enumerate(collection.chunk_terms)))
    documents.add_many([(n, tokenize(text)) for n, text in enumerate(collection.texts)])
    runs: dict[str, dict[str, Scores]] = {"bm25-chunks": {}, "bm25-documents": {}}
    for query_id, text in collection.dataset.queries.items():
        terms = query_terms(text)
        best = np.zeros(len(collection.doc_ids), dtype=np.float64)
        matched = chunks.scores(terms)
        np.maximum.at(best, collection.chunk_doc[list(matched)], list(matched.values()))
        whole = np.zeros(len(collection.doc_ids), dtype=np.float64)
        scored = documents.scores(terms)
        whole[list(scored)] = list(scored.values())
        runs["bm25-chunks"][query_id] = top(collection.doc_ids, np.where(best > 0, best, -np.inf))
        runs["bm25-documents"][query_id] = top(collection.doc_ids, np.where(whole > 0, whole, -np.inf))
    return runs


def _keyed(fuse: Callable[[list[tuple[int, float]], list[tuple[int, float]]], list[tuple[int, float]]]):
    """A fusion of two document-id score maps through retrieval_svc.fusion's integer-keyed functions."""

    def fused(lexical: Scores, dense: Scores) -> Scores:
        ids = sorted(set(lexical) | set(dense))
        key = {doc: n for n, doc in enumerate(ids)}
        ranked = fuse([(key[d], s) for d, s in lexical.items()], [(key[d], s) for d, s in dense.items()])
        return {ids[k]: s for k, s in ranked[:DEPTH]}

    return fused


def zscore_convex(alpha: float = 0.5) -> Callable[[Scores, Scores], Scores]:
    """Convex fusion of z-scores (each side's top list standardised; a missing side counts as its lowest)."""

    def standard(scores: Scores) -> tuple[Scores, float]:
        values = np.asarray(list(scores.values()), dtype=np.float64)
        spread = float(values.std()) or 1.0
        z = {d: (s - float(values.mean())) / spread for d, s in scores.items()}
        return z, min(z.values(), default=0.0)

    def fused(lexical: Scores, dense: Scores) -> Scores:
        (zl, floor_l), (zd, floor_d) = standard(lexical), standard(dense)
        both = {d: (1 - alpha) * zl.get(d, floor_l) + alpha * zd.get(d, floor_d) for d in set(zl) | set(zd)}
        return dict(sorted(both.items(), key=lambda item: (-item[1], item[0]))[:DEPTH])

    return fused


FUSIONS = {
    "convex": _keyed(lambda lexical, dense: convex(lexical, dense, 0.5)),
    "zscore": zscore_convex(0.5),
    "rrf": _keyed(lambda lexical, dense: rrf([[k for k, _ in lexical], [k for k, _ in dense]], 60)),
}


def naive_run(collection: Collection, window: np.ndarray) -> dict[str, Scores]:
    """rank_bm25 over whole documents and whole-document MiniLM, fused by RRF k 60 (top 100 each)."""
    bm25 = BM25Okapi([tokenize(text) for text in collection.texts])
    run: dict[str, Scores] = {}
    for query_id, text in collection.dataset.queries.items():
        lexical = top(collection.doc_ids, np.asarray(bm25.get_scores(query_terms(text))))
        dense = top(collection.doc_ids, window @ collection.query_vectors[query_id])
        run[query_id] = FUSIONS["rrf"](lexical, dense)
    return run


def figures(collection: Collection, embedder: Embedder) -> dict[str, dict[str, float]]:
    """nDCG@10, Recall@100 and MRR@10 of every variant on one collection."""
    window = window_vectors(collection, embedder)
    dense, lexical = dense_runs(collection, window), bm25_runs(collection)
    runs = {**lexical, **{f"dense {name}": run for name, run in dense.items()}}
    for name in ("max", "mix-mean-0.3", "engine-0.3", "mix-window-0.3", "window"):
        for fusion, fuse in FUSIONS.items():
            runs[f"hybrid {fusion} bm25-chunks + {name}"] = {
                q: fuse(lexical["bm25-chunks"][q], dense[name][q]) for q in collection.dataset.queries
            }
    for alpha in ALPHAS:
        fuse = _keyed(lambda lexical, dense, a=alpha: convex(lexical, dense, a))
        runs[f"hybrid convex alpha {alpha}"] = {
            q: fuse(lexical["bm25-chunks"][q], dense["max"][q]) for q in collection.dataset.queries
        }
    runs["naive (rank_bm25 + window, rrf 60)"] = naive_run(collection, window)
    qrels = collection.dataset.qrels
    return {name: {k: round(v, 4) for k, v in score_run(run, qrels).items()} for name, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    embedder = configured_embedder(Config.from_env())
    table = {}
    for data in args.data:
        collection = load(data, embedder)
        table[collection.name] = figures(collection, embedder)
    if args.json:
        print(json.dumps(table, indent=1))
        return
    for name, rows in table.items():
        print(f"\n{name}\n{'variant':<48} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7}")
        for variant, row in rows.items():
            print(f"{variant:<48} {row['ndcg@10']:>8.4f} {row['recall@100']:>7.4f} {row['mrr@10']:>7.4f}")


if __name__ == "__main__":
    main()
