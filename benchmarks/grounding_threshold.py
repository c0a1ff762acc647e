"""Calibrate the grounding check's threshold (generation_svc/grounding.py SUPPORTED) on SciFact.

SciFact's claims come with the abstracts that hold their evidence (queries.jsonl metadata,
labelled SUPPORT or CONTRADICT). A claim is a one-sentence statement, as an answer sentence
is, so each claim is scored as the grounding check scores a sentence:

- against an abstract that holds its evidence (a citation that should count as supported);
- against the best-ranked passage (hybrid search, one per document) that holds no evidence for it:
  same subject and many shared words, the hardest case of a citation that should not count.

Reported per split: AUC of the word-recall score (and, with --embedding, of MiniLM cosine and of
their mean), the threshold that maximises Youden's J (supported share minus unrelated share) on
*train*, and the shares above SUPPORTED on *test*, which is held apart.

Usage, from the repository root:
    python -m benchmarks.grounding_threshold [--scifact DIR] [--store var/eval/scifact-…] [--embedding]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation_svc.grounding import SUPPORTED, PassageTerms, figures_of, sentence_score
from likeopt.ops.evaluate import Dataset, eval_data_dir
from likeopt.runtime.config import Config
from likeopt.runtime.text import tokenize
from retrieval_svc.backend import SearchParams
from retrieval_svc.embedder import configured_embedder
from retrieval_svc.engine import loaded_engine


@dataclass(frozen=True)
class Pair:
    split: str
    label: str  # SUPPORT, CONTRADICT or UNRELATED
    claim: str
    passage: str


def evidence_pairs(root: Path, store: Path | None) -> list[Pair]:
    """Every claim with evidence, paired with each evidence abstract and with its best-ranked unrelated passage."""
    corpus = {}
    with (root / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            corpus[str(record["_id"])] = f"{record.get('title', '')} {record['text']}"
    evidence = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            evidence[str(record["_id"])] = record.get("metadata") or {}
    config = Config.from_env()
    engine = loaded_engine(config, store or eval_data_dir(Dataset.load(root), config))
    params = SearchParams(5, "hybrid", config.fusion, config.rrf_k, config.fusion_alpha, per_document=True)
    pairs = []
    for split in ("train", "test"):
        dataset = Dataset.load(root, split)
        for query_id, claim in dataset.queries.items():
            if not evidence.get(query_id):
                continue
            for doc_id, sets in evidence[query_id].items():
                if doc_id in corpus:
                    pairs.append(Pair(split, sets[0]["label"], claim, corpus[doc_id]))
            related = set(dataset.qrels[query_id]) | set(evidence[query_id])
            hits = engine.search(claim, params, engine.embed_query(claim))
            unrelated = next((h for h in hits if h.doc_id not in related), None)
            if unrelated is not None:
                pairs.append(Pair(split, "UNRELATED", claim, f"{unrelated.title} {unrelated.text}"))
    return pairs


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def share_at(scores: Sequence[float], threshold: float) -> float:
    return float(np.mean(np.asarray(scores) >= threshold))


def report(pairs: list[Pair], scores: dict[str, list[float]]) -> dict[str, object]:
    """AUCs per split and score, the train-optimal threshold and the test shares at SUPPORTED."""

    def select(split: str, label: str, name: str) -> list[float]:
        return [s for p, s in zip(pairs, scores[name], strict=True) if p.split == split and p.label == label]

    figures: dict[str, object] = {}
    for name in scores:
        for split in ("train", "test"):
            figures[f"auc_{name}_{split}"] = round(
                auc(select(split, "SUPPORT", name), select(split, "UNRELATED", name)), 3
            )
    grid = [t / 100 for t in range(20, 96)]
    youden = {
        t: share_at(select("train", "SUPPORT", "recall"), t) - share_at(select("train", "UNRELATED", "recall"), t)
        for t in grid
    }
    figures["train_best_threshold"] = max(youden, key=lambda t: (youden[t], -t))
    figures["train_youden_by_threshold"] = {
        f"{t:.2f}": round(j, 3) for t, j in youden.items() if round(t * 100) % 5 == 0
    }
    for split in ("train", "test"):
        for label in ("SUPPORT", "CONTRADICT", "UNRELATED"):
            figures[f"{split}_{label.lower()}_supported"] = round(
                share_at(select(split, label, "recall"), SUPPORTED), 3
            )
            figures[f"{split}_{label.lower()}_pairs"] = len(select(split, label, "recall"))
    return figures


def recall(pair: Pair) -> float:
    """The claim scored against the passage as the grounding check scores an answer sentence."""
    return sentence_score(set(tokenize(pair.claim)), PassageTerms.of("", pair.passage), figures_of(pair.claim))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scifact", default="/work/shared/data/scifact", type=Path)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--embedding", action="store_true", help="also score by MiniLM cosine, and the mean of both")
    args = parser.parse_args()
    pairs = evidence_pairs(args.scifact, args.store)
    scores = {"recall": [recall(p) for p in pairs]}
    if args.embedding:
        embedder = configured_embedder(Config.from_env())
        claims = embedder.encode([p.claim for p in pairs])
        passages = embedder.encode([p.passage for p in pairs])
        scores["cosine"] = [float(c) for c in (claims * passages).sum(axis=1)]
        scores["mean"] = [(a + b) / 2 for a, b in zip(scores["recall"], scores["cosine"], strict=True)]
    print(json.dumps({"supported_threshold": SUPPORTED, **report(pairs, scores)}, indent=1))


if __name__ == "__main__":
    main()
