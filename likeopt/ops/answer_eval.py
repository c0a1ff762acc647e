"""``likeopt eval --answers``: are the answers right, grounded and honest, and how fast do they come?

Retrieval figures (``likeopt eval``) say whether the right passages were found; these say what
an answer made of them is worth. Each question is asked through GenerationService.Answer, one
at a time, either of a running mesh (``--addr``: Envoy's port carries gRPC) or of a private one
started here: retrieval_svc on the collection's own data directory (the one ``likeopt eval``
keeps, so nothing is ingested twice) and generation_svc with the chosen backend, cache off.

Figures:

- citation precision: the share of citations pointing to a document judged relevant (qrels > 0);
- answer support: the mean of the answers' ``done.support`` (the grounding check's share of sentences
  supported by the passage they cite), and its distribution;
- wrongly refused: the share of answerable questions answered "not in your documents";
- abstention: the share of the off-topic questions (likeopt/ops/data/offtopic_questions.txt) refused;
- errors: the questions that got no answer at all (counted in neither share above; a run in which every
  question failed exits 1);
- time to first token and whole-answer time, p50 and p95, measured here around the call.

A collection is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) or a folder of
documents with a questions file (``--questions``; one question a line, a tab, then the relevant
file names from the folder separated by commas), as benchmarks/data/demo_questions.txt is for docs/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from likeopt.ops.evaluate import (
    Dataset,
    eval_collection,
    free_port,
    ingest_once,
    private_retrieval,
    private_service,
    shaped_digest,
    store_shape,
)
from likeopt.runtime.config import Config
from likeopt.runtime.contract import LIST_LIMIT
from likeopt.runtime.loaders import file_id, id_base
from likeopt.runtime.loaders.files import BEIR_CORPUS
from likeopt.runtime.percentiles import percentile
from likeopt.v1 import generation_pb2, generation_pb2_grpc

OFF_TOPIC = Path(__file__).resolve().parent / "data" / "offtopic_questions.txt"
"""The default questions to refuse: package data, so an installed copy has it too (not only a checkout)."""
REPO = Path(__file__).resolve().parents[2]
DEMO_QUESTIONS = REPO / "benchmarks" / "data" / "demo_questions.txt"
ANSWER_TIMEOUT_S = 120.0
SUPPORT_BUCKETS = (0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Question:
    """One question to ask and the documents judged relevant to it (none for an off-topic one)."""

    text: str
    relevant: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Collection:
    """What to ingest (a folder or a BEIR corpus) and the answerable questions about it."""

    root: Path
    questions: list[Question]
    beir: bool

    def data_dir(self, base: Path, shape: str = "") -> Path:
        """The collection's own retrieval data directory (``likeopt eval``'s for a BEIR folder), per store shape
        (likeopt.ops.evaluate.store_shape) and per the ids its files get from here (likeopt.runtime.loaders.id_base)."""
        if self.beir:
            return Dataset.load(self.root).data_dir(base, shape)
        files = sorted(p for p in self.root.rglob("*") if p.is_file())
        names = id_base(self.root)
        signature = "".join(f"{file_id(p, names)}:{p.stat().st_size};" for p in files)
        return base / f"{self.root.resolve().name}-{shaped_digest(f'{self.root.resolve()}|{signature}', shape)}"


def read_questions(path: Path) -> list[Question]:
    """Questions from a text file: ``question[<TAB>relevant,ids]`` a line; # comments and blanks skipped."""
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, _, relevant = line.partition("\t")
        questions.append(Question(text.strip(), frozenset(r.strip() for r in relevant.split(",") if r.strip())))
    return questions


def ingested_names(folder: Path, questions: list[Question]) -> list[Question]:
    """The questions with their relevant files, named from the folder in a questions file, as the ids
    ``likeopt ingest`` gives them (docs/'s architecture.md is docs/architecture.md), so citations can match."""
    base = id_base(folder)
    return [Question(q.text, frozenset(file_id(folder / name, base) for name in q.relevant)) for q in questions]


def input_problem(data: Path | None, questions: str | None, offtopic: str | None) -> str | None:
    """What is missing before any question is asked, as the error to print; None when nothing is.

    Checked first so a wrong path ends the command at once, not after a private mesh has started."""
    if data is not None and not data.is_dir():
        return f"--data {data}: no such folder"
    for flag, value in (("--questions", questions), ("--offtopic", offtopic)):
        if value and not Path(value).is_file():
            return f"{flag} {value}: no such file"
    beir = data is not None and (data / BEIR_CORPUS).is_file()
    if data is not None and not beir and not questions and not DEMO_QUESTIONS.is_file():
        return (
            f"--data {data} is a folder of documents, not a BEIR folder (no corpus.jsonl), and the demo questions"
            " come only with a checkout: give --questions FILE (one question a line)"
        )
    return None


def load_collection(data: Path, questions_file: Path | None, limit: int, seed: int) -> Collection:
    """The collection at data, its questions sampled down to limit (0: all) with a fixed seed."""
    if (data / BEIR_CORPUS).is_file() and questions_file is None:
        dataset = Dataset.load(data)
        judged = {q: frozenset(d for d, rel in dataset.qrels[q].items() if rel > 0) for q in dataset.queries}
        questions = [Question(text, judged[q]) for q, text in dataset.queries.items() if judged[q]]
        beir = True
    else:
        questions, beir = ingested_names(data, read_questions(questions_file or DEMO_QUESTIONS)), False
    if limit and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return Collection(data, questions, beir)


@dataclass
class Asked:
    """What one answer came to."""

    question: Question
    answer: str = ""
    cited: list[str] = field(default_factory=list)
    support: float = 0.0
    no_answer: bool = False
    error: str = ""
    first_token_ms: float | None = None
    total_ms: float = 0.0


def ask(
    stub: generation_pb2_grpc.GenerationServiceStub, question: Question, metadata: Sequence[tuple[str, str]]
) -> Asked:
    """Ask one question, timing the first delta and the end as a client sees them."""
    asked = Asked(question)
    started = time.perf_counter()
    text: list[str] = []
    try:
        call = stub.Answer(
            generation_pb2.AnswerRequest(query=question.text), timeout=ANSWER_TIMEOUT_S, metadata=metadata
        )
        for event in call:
            kind = event.WhichOneof("event")
            if kind == "delta":
                if asked.first_token_ms is None:
                    asked.first_token_ms = (time.perf_counter() - started) * 1000
                text.append(event.delta.text)
            elif kind == "citation":
                asked.cited.append(event.citation.doc_id)
            elif kind == "done":
                asked.support, asked.no_answer = event.done.support, event.done.no_answer
            elif kind == "error":
                asked.error = f"{event.error.code}: {event.error.message}"
    except grpc.RpcError as exc:
        asked.error = asked.error or f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    asked.total_ms = (time.perf_counter() - started) * 1000
    asked.answer = "".join(text)
    return asked


def summarise(answerable: list[Asked], off_topic: list[Asked]) -> dict[str, object]:
    """The figures of the module doc from every answer. A question that failed is counted in ``errors`` only: it
    was neither refused nor answered, and every share of nothing is None (n/a), not 0 %."""
    answered = [a for a in answerable if not a.no_answer and not a.error]
    replied, replied_off_topic = [a for a in answerable if not a.error], [a for a in off_topic if not a.error]
    citations = [doc for a in answered for doc in a.cited]
    relevant = sum(doc in a.question.relevant for a in answered for doc in a.cited)
    supports = [a.support for a in answered]
    figures: dict[str, object] = {
        "questions": len(answerable),
        "errors": sum(bool(a.error) for a in answerable + off_topic),
        "answered": len(answered),
        "citations": len(citations),
        "citation_precision": _ratio(relevant, len(citations)),
        "answers_citing_relevant": _ratio(
            sum(any(d in a.question.relevant for d in a.cited) for a in answered), len(answered)
        ),
        "answers_without_citation": _ratio(sum(not a.cited for a in answered), len(answered)),
        "answer_support": _ratio(sum(supports), len(supports)),
        "support_distribution": _distribution(supports),
        "wrongly_refused": _ratio(sum(a.no_answer for a in replied), len(replied)),
        "off_topic_questions": len(off_topic),
        "abstention": _ratio(sum(a.no_answer for a in replied_off_topic), len(replied_off_topic)),
        "off_topic_citations": sum(len(a.cited) for a in off_topic),
    }
    timed = [a for a in answered if a.first_token_ms is not None]
    figures["first_token_ms"] = _percentiles([a.first_token_ms or 0.0 for a in timed])
    figures["total_ms"] = _percentiles([a.total_ms for a in timed])
    figures["first_error"] = next((a.error for a in answerable + off_topic if a.error), None)
    return figures


def all_failed(figures: Mapping[str, object]) -> str | None:
    """Why a run measured nothing (every question failed), or None: its figures are then all n/a, and
    ``likeopt eval --answers`` exits 1 rather than report them."""
    asked = sum(n for n in (figures["questions"], figures["off_topic_questions"]) if isinstance(n, int))
    if not asked or figures["errors"] != asked:
        return None
    return f"all {asked} questions failed, the first with {figures['first_error']}"


def _ratio(part: float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": None if (v := percentile(values, p)) is None else round(v, 1) for p in (50, 95)}


def _distribution(supports: list[float]) -> dict[str, int]:
    """How many answers fall in each support band: (0.8, 1.0] is "1.0" and so on; exactly 0 is "0"."""
    bands = {"0": sum(s == 0 for s in supports)}
    low = 0.0
    for high in SUPPORT_BUCKETS:
        bands[f"{high:.1f}"] = sum(low < s <= high for s in supports)
        low = high
    return bands


def run_questions(
    address: str, collection: Collection, off_topic: list[Question], metadata: Sequence[tuple[str, str]] = ()
) -> dict[str, object]:
    """Ask everything through GenerationService at address (after one untimed warm-up) and summarise."""
    with grpc.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        ask(stub, Question("What is this collection about?"), metadata)
        answerable = [ask(stub, q, metadata) for q in collection.questions]
        refused = [ask(stub, q, metadata) for q in off_topic]
    return summarise(answerable, refused)


@contextmanager
def private_generation(retrieval_addr: str, backend: str, data_dir: Path) -> Iterator[str]:
    """generation_svc of our own on a free loopback port with the given backend, cache off, once SERVING."""
    host = "127.0.0.1"
    port = free_port(host)
    settings = {
        "LIKEOPT_HOST": host,
        "LIKEOPT_GENERATION_PORT": str(port),
        "LIKEOPT_GENERATION_METRICS_PORT": "0",
        "LIKEOPT_RETRIEVAL_ADDR": retrieval_addr,
        "LIKEOPT_CACHE_ENABLED": "0",
        "LIKEOPT_GENERATION_BACKEND": backend,
        "LIKEOPT_FEEDBACK_DB": str(data_dir / "answers-eval.sqlite3"),
    }
    with private_service("generation_svc", f"{host}:{port}", settings, data_dir / "generation_svc.log") as address:
        yield address


def run_answer_eval(
    collection: Collection,
    off_topic: list[Question],
    backend: str,
    addr: str = "",
    api_key: str = "",
    base_dir: Path = Path("var/eval"),
    shape: str = "",
) -> dict[str, object]:
    """The figures through the mesh at addr, or through a private retrieval_svc (its store of the given shape,
    likeopt.ops.evaluate.store_shape) and generation_svc."""
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    if addr:
        figures = run_questions(addr, collection, off_topic, metadata)
    else:
        data_dir = collection.data_dir(base_dir, shape)
        data_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("LIKEOPT_MILVUS_COLLECTION", eval_collection(data_dir))
        with private_retrieval(data_dir, data_dir / "retrieval_svc.log") as retrieval_addr:
            documents = Dataset.load(collection.root).corpus_size() if collection.beir else 1
            ingest_once(retrieval_addr, collection.root, data_dir, documents, quiet=True)
            with private_generation(retrieval_addr, backend, data_dir) as generation_addr:
                figures = run_questions(generation_addr, collection, off_topic)
    figures.update(collection=str(collection.root), backend=backend if not addr else f"mesh at {addr}")
    return figures


def format_answer_report(figures: Mapping[str, object]) -> str:
    """The figures as a few lines for people."""

    def pct(name: str) -> str:
        value = figures.get(name)
        return "n/a" if value is None else f"{float(value) * 100:.1f} %"  # type: ignore[arg-type]

    def ms(name: str, quantile: str) -> str:
        value = figures[name][quantile]  # type: ignore[index]
        return "n/a" if value is None else str(value)

    return "\n".join(
        [
            f"{figures['backend']} on {figures['collection']}: {figures['questions']} questions,"
            f" {figures['off_topic_questions']} off-topic, {figures['errors']} errors",
            f"citation precision   {pct('citation_precision')} of {figures['citations']} citations"
            f" (answers citing a relevant document {pct('answers_citing_relevant')},"
            f" citing nothing {pct('answers_without_citation')})",
            f"answer support       {pct('answer_support')}  distribution {figures['support_distribution']}",
            f"abstention           {pct('abstention')} of off-topic; wrongly refused {pct('wrongly_refused')}",
            f"first token ms       p50 {ms('first_token_ms', 'p50')}  p95 {ms('first_token_ms', 'p95')}",
            f"whole answer ms      p50 {ms('total_ms', 'p50')}  p95 {ms('total_ms', 'p95')}",
        ]
    )


def all_feedback(address: str, api_key: str, rating: str = "") -> Iterator[generation_pb2.FeedbackItem]:
    """Every stored rating, newest first, a page at a time."""
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    page = generation_pb2.ListFeedbackRequest(rating=rating, limit=LIST_LIMIT.high)
    with grpc.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        while True:
            items = stub.ListFeedback(page, timeout=30, metadata=metadata).items
            yield from items
            if len(items) < LIST_LIMIT.high:
                return
            page.before_feedback_id = items[-1].feedback_id


def feedback_cases(address: str, api_key: str, rating: str = "") -> list[dict[str, object]]:
    """Stored feedback as answer-eval cases (newest first): the question, what was answered, and the verdict."""
    return [
        {
            "question": item.question,
            "rating": item.rating,
            "comment": item.comment,
            "answer": item.answer,
            "cited": [c.doc_id for c in item.citations],
            "unsupported": [c.n for c in item.citations if not c.supported],
            "support": round(item.support, 3),
            "no_answer": item.no_answer,
            "backend": item.backend,
            "answer_id": item.answer_id,
            "trace_id": item.trace_id,
            "created_unix_ms": item.created_unix_ms,
        }
        for item in all_feedback(address, api_key, rating)
    ]


def print_cases(cases: list[dict[str, object]]) -> None:
    """One JSON object a line: a file of them is a set of answer regression cases."""
    for case in cases:
        print(json.dumps(case, ensure_ascii=False), flush=True)


def answers_main(args: argparse.Namespace, config: Config) -> int:
    """``likeopt eval --answers``'s body (arguments from likeopt.ops.cli)."""
    api_key = config.api_key.get_secret_value()
    if args.from_feedback:
        print_cases(feedback_cases(args.addr or config.generation_addr, api_key, args.rating or ""))
        return 0
    questions_file = Path(args.questions) if args.questions else None
    collection = load_collection(Path(args.data), questions_file, args.limit, args.seed)
    off_topic_file = Path(args.offtopic) if args.offtopic else OFF_TOPIC
    off_topic = read_questions(off_topic_file)[: args.offtopic_limit or None]
    backend = args.backend or config.generation_backend
    figures = run_answer_eval(collection, off_topic, backend, args.addr, api_key, shape=store_shape(config))
    print(json.dumps(figures) if args.json else format_answer_report(figures), flush=True)
    if failure := all_failed(figures):
        print(f"likeopt eval --answers: {failure}", file=sys.stderr)
        return 1
    return 0
