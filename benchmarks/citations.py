"""Citation quality on SciFact: how often an answer's [n] citations include a relevant document.

For each test query, the top 5 documents by BM25 (retrieval_svc's BM25Index, in
process) are numbered as passages; a backend answers in process, exactly as
generation_svc would run it (the local backend with its own short prompt, unless
--prompt names another); the [n] markers of the answer are mapped to documents
and checked against qrels/test.tsv. Also reported: answers with any citation,
answers citing more than one passage, and the retrieval ceiling (queries with a
relevant document among the 5 passages). With the local backend, also the time to its
first token, since the prompt's size trades it against the citation rate.

Usage, from the repository root:
    python -m benchmarks.citations [--backend extractive|local] [--limit N] [--prompt NAME]
        [--answer-prefix TEXT] [--max-tokens N] [--excerpts N] [--excerpt-chars N] [--show N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

from generation_svc.backends import Backend, Passage, Turn, Usage
from generation_svc.extractive import ExtractiveBackend
from generation_svc.prompts import (
    ANSWER_PREFIX,
    LOCAL_PASSAGE_CHARS,
    LOCAL_PASSAGES,
    SYSTEM,
    build_local_messages,
    build_messages,
    format_passages,
)
from generation_svc.service import cited_numbers
from likeopt.runtime.config import LOCAL_MAX_TOKENS
from likeopt.runtime.percentiles import percentile
from likeopt.runtime.text import tokenize
from retrieval_svc.bm25 import BM25Index

DATA = Path("/work/shared/data/scifact")


def system_only_prompt(question: str, passages: list[Passage], history: list[Turn]) -> list[dict[str, str]]:
    """The plain alternative: the citing rule only in the system message, the question last."""
    user = f"Passages:\n\n{format_passages(passages)}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def lead_with_marker_prompt(question: str, passages: list[Passage], history: list[Turn]) -> list[dict[str, str]]:
    """The answer must open with the marker of the passage that answers it."""
    user = (
        f"Question: {question}\n\nPassages:\n\n{format_passages(passages)}\n\n"
        f"Question: {question}\n\nWhich passage answers the question? Begin your answer with its number "
        "in square brackets, like [2], then answer in one or two sentences."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


PROMPTS = {
    "local": build_local_messages,
    "whole-passages": build_messages,
    "system-only": system_only_prompt,
    "lead-with-marker": lead_with_marker_prompt,
}


def load(data: Path) -> tuple[dict[str, dict], dict[str, str], dict[str, set[str]]]:
    """Corpus by id, test queries by id (only those with judgements), relevant doc ids by query."""
    with (data / "corpus.jsonl").open() as lines:
        corpus = {d["_id"]: d for d in map(json.loads, lines)}
    relevant: dict[str, set[str]] = defaultdict(set)
    with (data / "qrels" / "test.tsv").open() as rows:
        for row in csv.DictReader(rows, delimiter="\t"):
            if int(row["score"]) > 0:
                relevant[row["query-id"]].add(row["corpus-id"])
    with (data / "queries.jsonl").open() as lines:
        queries = {q["_id"]: q["text"] for q in map(json.loads, lines) if q["_id"] in relevant}
    return corpus, queries, relevant


def make_backend(
    name: str, prompt: Callable[[str, list[Passage], list[Turn]], list[dict[str, str]]], max_tokens: int, prefix: str
) -> Backend:
    if name == "extractive":
        return ExtractiveBackend()
    from generation_svc.local import LocalBackend, resolve_model_path

    local = LocalBackend(resolve_model_path(""), max_tokens=max_tokens, queue_limit=1)
    local.prompt = prompt
    local.answer_prefix = prefix
    return local


async def answer(backend: Backend, question: str, passages: list[Passage]) -> tuple[str, float]:
    """The answer's text and the seconds to its first piece."""
    started = time.perf_counter()
    first = 0.0
    pieces = []
    async for piece in backend.stream(question, passages, [], Usage()):
        first = first or time.perf_counter() - started
        pieces.append(piece)
    return "".join(pieces), first


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backend", choices=["extractive", "local"], default="extractive")
    parser.add_argument("--prompt", choices=list(PROMPTS), default="local", help="the local backend's prompt")
    parser.add_argument(
        "--answer-prefix", default=ANSWER_PREFIX, help=f"how the local answer begins (default {ANSWER_PREFIX!r})"
    )
    parser.add_argument("--limit", type=int, default=0, help="first N test queries only (0: all)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=LOCAL_MAX_TOKENS)
    parser.add_argument("--excerpts", type=int, default=LOCAL_PASSAGES, help="passages the local prompt keeps")
    parser.add_argument("--excerpt-chars", type=int, default=LOCAL_PASSAGE_CHARS, help="characters of each")
    parser.add_argument("--show", type=int, default=0, help="print the first N answers")
    args = parser.parse_args()

    corpus, queries, relevant = load(args.data)
    ids = list(corpus)
    index = BM25Index()
    for key, doc_id in enumerate(ids):
        index.add(key, tokenize(f"{corpus[doc_id].get('title', '')} {corpus[doc_id]['text']}"))
    prompt = PROMPTS[args.prompt]
    excerpts = "-"
    if args.backend == "local" and prompt is build_local_messages:
        prompt = partial(build_local_messages, count=args.excerpts, chars=args.excerpt_chars)
        excerpts = f"{args.excerpts} x {args.excerpt_chars} characters"
    backend = make_backend(args.backend, prompt, args.max_tokens, args.answer_prefix)
    items = list(queries.items())[: args.limit or None]

    outcomes: list[bool] = []
    firsts: list[float] = []
    cited_any = cited_several = ceiling = 0
    started = time.perf_counter()
    for number, (query_id, question) in enumerate(items):
        hits = index.search(tokenize(question), args.top_k)
        passages = [
            Passage(n, ids[key], ids[key], corpus[ids[key]].get("title", ""), corpus[ids[key]]["text"])
            for n, (key, _) in enumerate(hits, start=1)
        ]
        text, first = await answer(backend, question, passages)
        firsts.append(first)
        cited = {passages[n - 1].doc_id for n in cited_numbers(text, len(passages))}
        ceiling += any(p.doc_id in relevant[query_id] for p in passages)
        cited_any += bool(cited)
        cited_several += len(cited) > 1
        outcomes.append(bool(cited & relevant[query_id]))
        if number < args.show:
            print(f"--- {question}\n{text}\n")
    total = len(items)
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "backend": args.backend,
                "prompt": args.prompt if args.backend == "local" else "-",
                "excerpts": excerpts,
                "answer_prefix": args.answer_prefix if args.backend == "local" else "-",
                "queries": total,
                "top_k": args.top_k,
                "answers_citing_a_relevant_doc": round(sum(outcomes) / total, 3),
                "first_20_citing_a_relevant_doc": round(sum(outcomes[:20]) / min(total, 20), 3),
                "answers_with_any_citation": round(cited_any / total, 3),
                "answers_citing_several_passages": round(cited_several / total, 3),
                "retrieval_ceiling": round(ceiling / total, 3),
                "first_token_s_p50": round(statistics.median(firsts), 3),
                "first_token_s_p95": round(percentile(firsts, 95) or 0.0, 3),
                "seconds": round(elapsed, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
