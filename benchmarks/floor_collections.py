"""The relevance floor as shipped (generation_svc/relevance.py) on any BEIR folders, not only SciFact's.

answer_floor.py calibrated the floor on SciFact and the demo corpus; this checks it on collections it never saw.
Each folder's store is the one ``likeopt eval --data DIR`` ingested (ingest once with
``likeopt eval --data DIR --mode bm25``); each corpus's background is measured with generation_svc's own PROBES
and every question is searched in process as generation_svc's Answer searches (hybrid, top 5). For every corpus it
reports the share refused of:

- its own queries (answerable: each has a judged document; the target is at most 5 % refused);
- likeopt/ops/data/offtopic_questions.txt (to be refused; the target is at least 90 %);
- the other folders' queries (cross-collection: partly answerable when the domains meet, reported only);

and, to say why a target is missed, the background's mean, spread and floor, the best dense scores of the refused
answerable queries, how many of those had their judged document in the top 5, and the shares a few other
FLOOR_SPREADS would give.

Usage, from the repository root:
    python -m benchmarks.floor_collections --data benchmarks/data/debian-descriptions --data … [--demo] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from benchmarks.answer_floor import DEMO_QUESTIONS, Searched, demo_engine, question_lines
from generation_svc import relevance
from likeopt.ops.answer_eval import OFF_TOPIC
from likeopt.ops.evaluate import Dataset, eval_data_dir
from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2
from retrieval_svc.backend import SearchParams
from retrieval_svc.engine import loaded_engine

OFF_TOPIC_SET = "off-topic"
SPREADS_TRIED = (2.0, 2.5, 3.0, 3.5)
"""FLOOR_SPREADS values whose shares are reported beside the shipped one's, to show how far a target is."""
EXAMPLES = 10
"""Refused answerable questions' scores, or answered unjudged questions, listed per set."""


@dataclass
class Questions:
    """One set of questions, and for each the document(s) judged to answer it (none for off-topic ones)."""

    name: str
    texts: list[str]
    judged: list[set[str]] = field(default_factory=list)


@dataclass
class Corpus:
    """One collection's searcher and its own questions."""

    name: str
    searched: Searched
    own: Questions


def collection(folder: Path, config: Config, params: SearchParams) -> Corpus:
    """A BEIR folder's corpus, read from the store likeopt eval ingested; a clear error when there is none."""
    dataset = Dataset.load(folder)
    store = eval_data_dir(dataset, config)
    if not store.is_dir():
        raise SystemExit(f"{store} is missing: ingest it first with `likeopt eval --data {folder} --mode bm25`")
    ids = sorted(dataset.queries)
    own = Questions(
        folder.name,
        [dataset.queries[i] for i in ids],
        [{doc for doc, score in dataset.qrels[i].items() if score > 0} for i in ids],
    )
    return Corpus(folder.name, Searched(loaded_engine(config, store), params), own)


def judge(corpus: Corpus, questions: Questions, spreads: Sequence[float] = SPREADS_TRIED) -> dict[str, object]:
    """The share of questions the corpus's floor refuses, as shipped and at each of spreads; for answerable
    questions, also what the refused ones scored and whether their judged document was found."""
    background = corpus.searched.background
    assert background is not None
    found = [corpus.searched.hits(q) for q in questions.texts]
    refused = [not background.covers(q, h) for q, h in zip(questions.texts, found, strict=True)]
    row: dict[str, object] = {"questions": len(refused), "refused": round(sum(refused) / len(refused), 4)}
    for spreads_tried in spreads:
        with mock.patch.object(relevance, "FLOOR_SPREADS", spreads_tried):
            tried = sum(not background.covers(q, h) for q, h in zip(questions.texts, found, strict=True))
        row[f"refused_at_{spreads_tried}"] = round(tried / len(refused), 4)
    if questions.judged:
        row.update(refused_answerable(found, refused, questions.judged))
    else:
        answered = [(q, h) for q, h, no in zip(questions.texts, found, refused, strict=True) if not no]
        row["answered_examples"] = [f"{best_dense(h):.3f} {q}" for q, h in answered[:EXAMPLES]]
    return row


def best_dense(hits: Sequence[retrieval_pb2.SearchHit]) -> float:
    """The question's best dense score: what the floor compares."""
    return max((h.dense_score for h in hits), default=0.0)


def refused_answerable(
    found: Sequence[Sequence[retrieval_pb2.SearchHit]], refused: Sequence[bool], judged: Sequence[set[str]]
) -> dict[str, object]:
    """Why answerable questions were refused: their best dense scores, and how many had the judged document
    in the top 5 (the floor's fault) rather than not (retrieval's)."""
    best = [best_dense(hits) for hits, no in zip(found, refused, strict=True) if no]
    retrieved = sum(
        bool(judged_docs & {h.doc_id for h in hits})
        for hits, no, judged_docs in zip(found, refused, judged, strict=True)
        if no
    )
    return {
        "refused_best_dense": [round(s, 3) for s in sorted(best)][:EXAMPLES],
        "refused_best_dense_median": round(statistics.median(best), 3) if best else None,
        "refused_with_judged_in_top5": retrieved,
    }


def report(corpora: Sequence[Corpus]) -> dict[str, object]:
    """Every corpus's background and its refusals of its own queries, the off-topic file and the other corpora's
    queries."""
    off_topic = Questions(OFF_TOPIC_SET, question_lines(OFF_TOPIC))
    out: dict[str, object] = {}
    for corpus in corpora:
        background = corpus.searched.measure()
        rows = {corpus.own.name: judge(corpus, corpus.own), OFF_TOPIC_SET: judge(corpus, off_topic)}
        for other in corpora:
            if other is not corpus:
                rows[f"cross: {other.own.name}"] = judge(corpus, Questions(other.own.name, other.own.texts))
        out[corpus.name] = {
            "background": {
                "mean": round(background.mean, 4),
                "spread": round(background.spread, 4),
                "floor": round(background.floor, 4),
            },
            "sets": rows,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", type=Path, default=[], help="a BEIR folder (repeatable)")
    parser.add_argument("--demo", action="store_true", help="also the demo corpus (docs/) and its questions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.data and not args.demo:
        parser.error("give at least one --data DIR, or --demo")
    config = Config.from_env()
    params = SearchParams(5, "hybrid", config.fusion, config.rrf_k, config.fusion_alpha)
    corpora = [collection(folder, config, params) for folder in args.data]
    with tempfile.TemporaryDirectory() as folder:
        if args.demo:  # its questions are answerable, but judged by no document
            own = Questions("demo questions", question_lines(DEMO_QUESTIONS))
            corpora.append(Corpus("demo", Searched(demo_engine(config, Path(folder)), params), own))
        result = report(corpora)
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
