"""nDCG@10 of hybrid fusion settings on an ingested BEIR dataset, in process (not a test).

How the fusion defaults were chosen: the queries are embedded once, then every
setting (RRF k, convex alpha, candidate depth) ranks the same candidates through
the engine, one hit per document, and is scored like ``likeopt eval``.

Usage, from the repository root:
    python -m benchmarks.fusion_sweep --dir var/eval/scifact-… [--data /work/shared/data/scifact]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from likeopt.ops.evaluate import DEPTH, Dataset, document_scores, score_run
from likeopt.runtime.config import Config
from retrieval_svc import engine_search
from retrieval_svc.backend import SearchParams
from retrieval_svc.embedder import configured_embedder
from retrieval_svc.engine import RetrievalEngine

RRF_K = (1, 5, 10, 20, 30, 60, 100)
ALPHAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
DEPTHS = (100, 200, 300)
"""Candidates per retriever; eval asks for top 100 documents, so fewer would change nothing."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    args = parser.parse_args()
    config = Config.from_env()
    dataset = Dataset.load(args.data)
    embedder = configured_embedder(config)
    engine = RetrievalEngine(args.dir, embedder, config.chunk_tokens, config.chunk_overlap)
    engine.load()
    vectors = {q: engine.embed_query(text) for q, text in dataset.queries.items()}

    def ndcg(mode: str, fusion: str = "rrf", rrf_k: float = 60, alpha: float = 0.5) -> float:
        params = SearchParams(DEPTH, mode, fusion, rrf_k, alpha, per_document=True)
        run = {q: document_scores(engine.search(text, params, vectors[q])) for q, text in dataset.queries.items()}
        return round(score_run(run, dataset.qrels)["ndcg@10"], 4)

    rows: list[dict[str, object]] = [{"mode": m, "ndcg@10": ndcg(m)} for m in ("bm25", "dense")]
    for depth in DEPTHS:
        engine_search.CANDIDATE_DEPTH = depth
        rows += [{"depth": depth, "fusion": "rrf", "k": k, "ndcg@10": ndcg("hybrid", "rrf", rrf_k=k)} for k in RRF_K]
        rows += [
            {"depth": depth, "fusion": "convex", "alpha": a, "ndcg@10": ndcg("hybrid", "convex", alpha=a)}
            for a in ALPHAS
        ]
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
