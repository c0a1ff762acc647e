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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from generation_svc.backends import Backend, Passage, Turn, Usage
from generation_svc.extractive import ExtractiveBackend
from generation_svc.prompts import (
    ANSWER_PREFIX,
    LOCAL_PASSAGE_CHARS,
    LOCAL_PASSAGES,
    SYSTEM,
    Prompt,
    build_messages,
    format_passages,
    local_prompt,
)
from likeopt.runtime.config import LOCAL_MAX_TOKENS
from likeopt.runtime.percentiles import percentile
from likeopt.runtime.text import cited_numbers, tokenize
from retrieval_svc.bm25 import BM25Index

DATA = Path("/work/shared/data/scifact")
MessagesBuilder = Callable[[str, list[Passage], list[Turn]], list[dict[str, str]]]
PromptBuilder = Callable[..., Prompt]
"""What builds the chat messages for a question, its passages and the history (and chars= per passage, which
whole-passage prompts ignore): one per --prompt."""


def showing_all(prompt: MessagesBuilder) -> PromptBuilder:
    """prompt as the local backend takes it: its messages show every passage, in order."""
    return lambda question, passages, history, chars=0: Prompt(
        prompt(question, passages, history), [p.n for p in passages]
    )


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


PROMPTS: dict[str, PromptBuilder] = {
    "local": local_prompt,
    "whole-passages": showing_all(build_messages),
    "system-only": showing_all(system_only_prompt),
    "lead-with-marker": showing_all(lead_with_marker_prompt),
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


def make_backend(name: str, prompt: PromptBuilder, max_tokens: int, prefix: str, excerpt_chars: int) -> Backend:
    """The backend under test; the local one is built only when asked for, since building it loads a GGUF model."""
    if name == "extractive":
        return ExtractiveBackend()
    from generation_svc.local import LocalBackend, resolve_model_path

    local = LocalBackend(resolve_model_path(""), max_tokens=max_tokens, queue_limit=1)
    local.prompt = prompt
    local.excerpt_chars = excerpt_chars
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


class Bm25Passages:
    """BM25 over the whole corpus, in process, so the benchmark needs no running retrieval_svc."""

    def __init__(self, corpus: dict[str, dict]) -> None:
        self.corpus = corpus
        self.ids = list(corpus)
        self.index = BM25Index()
        for key, doc_id in enumerate(self.ids):
            self.index.add(key, tokenize(f"{corpus[doc_id].get('title', '')} {corpus[doc_id]['text']}"))

    def search(self, question: str, top_k: int) -> list[Passage]:
        """The top_k documents, numbered from 1 as the answer's [n] markers refer to them."""
        passages = []
        for n, (key, _) in enumerate(self.index.search(tokenize(question), top_k), start=1):
            doc_id = self.ids[key]
            passages.append(
                Passage(n, doc_id, doc_id, self.corpus[doc_id].get("title", ""), self.corpus[doc_id]["text"])
            )
        return passages


@dataclass
class Tally:
    """What the answers came to, counted as they arrive so one pass over the queries gives every figure."""

    cites_relevant: list[bool] = field(default_factory=list)
    """Per query, in order (the first-20 figure reads the head): whether the answer cites a relevant document."""
    first_token_s: list[float] = field(default_factory=list)
    cited_any: int = 0
    cited_several: int = 0
    relevant_retrieved: int = 0
    """Queries with a relevant document among their passages: the ceiling of the citation rate."""

    def add(self, passages: list[Passage], text: str, first_token_s: float, relevant: set[str]) -> None:
        """Map the answer's [n] markers to documents and count them against the relevant ones."""
        self.first_token_s.append(first_token_s)
        cited = {passages[n - 1].doc_id for n in cited_numbers(text, len(passages))}
        self.relevant_retrieved += any(p.doc_id in relevant for p in passages)
        self.cited_any += bool(cited)
        self.cited_several += len(cited) > 1
        self.cites_relevant.append(bool(cited & relevant))


def parse_args() -> argparse.Namespace:
    """The options in the module's usage line; the local backend's defaults are the service's own."""
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
    return parser.parse_args()


def choose_prompt(args: argparse.Namespace) -> tuple[PromptBuilder, str]:
    """The prompt builder and how its excerpts are described in the summary.

    Only the local backend's own prompt takes --excerpts and --excerpt-chars, since the other prompts
    send whole passages; elsewhere the excerpts are reported as "-".
    """
    prompt = PROMPTS[args.prompt]
    if args.backend == "local" and prompt is local_prompt:
        excerpts = f"{args.excerpts} x {args.excerpt_chars} characters"
        return partial(local_prompt, count=args.excerpts), excerpts
    return prompt, "-"


async def run(
    backend: Backend,
    items: list[tuple[str, str]],
    relevant: dict[str, set[str]],
    retriever: Bm25Passages,
    top_k: int,
    show: int,
) -> Tally:
    """Answer each (query id, question) in turn, one at a time as a single user would, printing the first show."""
    tally = Tally()
    for number, (query_id, question) in enumerate(items):
        passages = retriever.search(question, top_k)
        text, first = await answer(backend, question, passages)
        tally.add(passages, text, first, relevant[query_id])
        if number < show:
            print(f"--- {question}\n{text}\n")
    return tally


def summary(args: argparse.Namespace, excerpts: str, tally: Tally, elapsed: float) -> dict[str, object]:
    """The run's settings and figures, as the one JSON object the script prints."""
    total = len(tally.cites_relevant)
    local = args.backend == "local"
    return {
        "backend": args.backend,
        "prompt": args.prompt if local else "-",
        "excerpts": excerpts,
        "answer_prefix": args.answer_prefix if local else "-",
        "queries": total,
        "top_k": args.top_k,
        "answers_citing_a_relevant_doc": round(sum(tally.cites_relevant) / total, 3),
        "first_20_citing_a_relevant_doc": round(sum(tally.cites_relevant[:20]) / min(total, 20), 3),
        "answers_with_any_citation": round(tally.cited_any / total, 3),
        "answers_citing_several_passages": round(tally.cited_several / total, 3),
        "retrieval_ceiling": round(tally.relevant_retrieved / total, 3),
        "first_token_s_p50": round(statistics.median(tally.first_token_s), 3),
        "first_token_s_p95": round(percentile(tally.first_token_s, 95) or 0.0, 3),
        "seconds": round(elapsed, 1),
    }


async def main() -> None:
    """Answer the test queries with the chosen backend and prompt, and print the citation figures as JSON."""
    args = parse_args()
    corpus, queries, relevant = load(args.data)
    retriever = Bm25Passages(corpus)
    prompt, excerpts = choose_prompt(args)
    backend = make_backend(args.backend, prompt, args.max_tokens, args.answer_prefix, args.excerpt_chars)
    items = list(queries.items())[: args.limit or None]
    started = time.perf_counter()
    tally = await run(backend, items, relevant, retriever, args.top_k, args.show)
    elapsed = time.perf_counter() - started
    print(json.dumps(summary(args, excerpts, tally, elapsed)))


if __name__ == "__main__":
    asyncio.run(main())
