"""Chat prompts shared by the model backends: numbered passages, the conversation, the question.

Two budgets. ``build_messages`` (model servers) gives whole passages with their titles; the
rule to cite sits both in the system message and right after the question.
``local_prompt`` is for the in-process model, which reads only about 120 prompt
tokens a second on one core: from the first three passages it takes the whole sentences
that share most terms with the question (Markdown syntax removed, never a sentence cut),
as many as fit a character budget that the local backend sets from the prompt-reading speed
it measures at start, and puts every fixed instruction in the system message, which
llama.cpp keeps evaluated from one answer to the next. The local backend also begins its
answer with "[" (see ANSWER_PREFIX). benchmarks/citations.py measures the citation rate of
both (figures in benchmarks/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from opentelemetry import trace

from generation_svc.backends import Passage, Turn, without_markers
from generation_svc.extractive import sentence_scores
from likeopt.runtime.text import split_sentences, tokenize

tracer = trace.get_tracer(__name__)

PROMPT_VERSION = "8"
"""Part of every answer-cache key: change it whenever the wording or budgets below change."""

ANSWER_PREFIX = "["
"""How the local model's answer begins: the opening of a citation marker. A 135M model
rarely cites when only asked to, but given "[" it almost always goes on with the number
of the passage it is drawing from (benchmarks/citations.py measures both). The OpenAI
protocol cannot begin an answer, so there the instruction has to do the work alone."""

MAX_PASSAGE_CHARS = 1200
MAX_PASSAGES_CHARS = 8000
"""All passages together (about 2,000 tokens), so 20 passages still fit a 4k-token context."""
MAX_HISTORY_TURNS = 3
MAX_HISTORY_ANSWER_CHARS = 600

LOCAL_PASSAGES = 3
LOCAL_PASSAGE_CHARS = 80
"""Characters of passage text per passage kept when no budget is measured (titles left out): about 90 new
tokens to read with the question (the rules are already read), under 1 s on one core. The local backend
replaces it with a budget from its measured reading speed (generation_svc/local.py)."""
MIN_SENTENCE_WORDS = 4
"""Shorter lines are headings or list labels, not statements a model can cite."""
MAX_SENTENCE_CHARS = 400
"""Longer sentences are never read (they are not cut either): one would use a whole budget."""
LOCAL_HISTORY_TURNS = 1
LOCAL_HISTORY_ANSWER_CHARS = 300

SYSTEM = (
    "You answer questions using only the numbered passages you are given. "
    "Cite the passage each statement comes from with its number in square brackets, like [1]. "
    "If the passages do not answer the question, say so."
)
INSTRUCTION = (
    "Answer in two or three sentences. End each sentence with the number of the passage it comes from, like [1]."
)


def clip(text: str, limit: int) -> str:
    """Text cut at a word boundary to at most limit characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def numbered(passages: list[Passage], titles: bool = True) -> str:
    """Each passage as '[i] title: text' (or '[i] text'), i counting from 1 in the order shown: a model copies
    the numbers it reads, so they must be consecutive (backends map them back with Renumbering)."""
    return "\n\n".join(
        f"[{i}] {p.title}: {p.text}" if titles else f"[{i}] {p.text}" for i, p in enumerate(passages, start=1)
    )


@dataclass(frozen=True)
class Prompt:
    """A model's messages and which passages they show."""

    messages: list[dict[str, str]]
    shown: list[int]
    """The passages' own numbers in the order the messages number them 1, 2, ...: what the model's [i] means."""


def format_passages(passages: list[Passage]) -> str:
    """The passages numbered, each clipped so that all fit the total budget."""
    limit = min(MAX_PASSAGE_CHARS, MAX_PASSAGES_CHARS // max(len(passages), 1))
    return numbered([replace(p, text=clip(p.text, limit)) for p in passages])


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)")
"""A link or image; its target may hold one level of balanced parentheses, as CommonMark takes them."""
_MD_CODE = re.compile(r"(`+)(?=\S)(.+?)(?<=\S)\1")
_MD_EMPHASIS = re.compile(r"(?<![\w*])(\*\*|__|\*|_)(?=[\w`(\[\"'*_])(.+?)(?<=[\w`)\]\"'.!?:*_])\1(?![\w*])")
"""Emphasis as CommonMark's flanking rules allow it in prose: the delimiters hug words (or quotes, brackets, code)
from outside and never sit between word characters, so QUOKKA_MAX_BATCH_SIZE, cache_svc, 2*3*4 and *.md stay
whole (CommonMark keeps an intraword _ too; an intraword *, which it would read as emphasis, is far likelier
arithmetic or a glob in these documents)."""
_MD_LINE_START = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d{1,3}[.)]\s+)", re.MULTILINE)
_MD_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$|^\s*\|?\s*:?-{3,}.*$|^\s*```.*$", re.MULTILINE)
_MD_PIPES = re.compile(r"\s*\|\s*")


def plain_text(text: str) -> str:
    """Text with Markdown syntax removed (headings, list markers, emphasis, code ticks, links, table rules).

    A small model copies what it reads, so "**Envoy**" or "# The processes" in its context ends up in
    its answer; the words stay, the syntax goes. Lines are kept, so sentences still end at them.
    """
    text = _MD_RULE.sub("", text)
    text = _MD_LINE_START.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_CODE.sub(r"\2", text)
    for _ in range(2):  # nested emphasis: **_both_**
        text = _MD_EMPHASIS.sub(r"\2", text)
    return "\n".join(_MD_PIPES.sub(" ", line).strip(" |") if "|" in line else line for line in text.splitlines())


@dataclass(frozen=True)
class Candidate:
    """A whole sentence of a passage, with how well it matches the question."""

    score: float
    n: int
    position: int
    text: str


def candidate_sentences(question: str, passages: list[Passage]) -> list[Candidate]:
    """Every readable whole sentence of the passages that shares a term with the question, best first.

    Earlier passages win ties (retrieval ranked them higher), then earlier sentences.
    """
    terms = set(tokenize(question))
    found = []
    for rank, passage in enumerate(passages):
        for position, (share, sentence) in enumerate(sentence_scores(terms, plain_text(passage.text))):
            sentence = " ".join(sentence.split())
            if share and len(sentence.split()) >= MIN_SENTENCE_WORDS and len(sentence) <= MAX_SENTENCE_CHARS:
                found.append(Candidate(share - 0.02 * rank, passage.n, position, sentence))
    return sorted(found, key=lambda c: (-c.score, c.n, c.position))


def opening_sentences(passages: list[Passage]) -> list[Candidate]:
    """The readable sentences of the passages in order: what to read when none shares a term with the question."""
    return [
        Candidate(0.0, p.n, position, sentence)
        for p in passages
        for position, sentence in enumerate(" ".join(s.split()) for s in split_sentences(plain_text(p.text)))
        if len(sentence.split()) >= MIN_SENTENCE_WORDS and len(sentence) <= MAX_SENTENCE_CHARS
    ]


def focus_passages(question: str, passages: list[Passage], count: int, limit: int) -> list[Passage]:
    """The first count passages cut to whole sentences matching the question, within count x limit characters.

    Each passage's best sentence comes first, in retrieval order, so that every passage that fits is
    there to be cited (the right one is often not the first); then the best of the rest. A sentence
    that does not fit is left out, never cut, but the very first is kept even when alone it is longer.
    Passages left with no sentence are dropped; kept sentences stay in their passage's order.
    """
    candidates = candidate_sentences(question, passages[:count]) or opening_sentences(passages[:1])
    leaders = {c.n: c for c in reversed(candidates)}  # each passage's best (candidates are best first)
    ordered = sorted(leaders.values(), key=lambda c: c.n) + [c for c in candidates if leaders[c.n] is not c]
    chosen: dict[int, list[Candidate]] = {}
    used, budget = 0, count * limit
    for candidate in ordered:
        if used + len(candidate.text) > budget and used:
            continue
        chosen.setdefault(candidate.n, []).append(candidate)
        used += len(candidate.text) + 1
    return [
        replace(p, text=" ".join(c.text for c in sorted(chosen[p.n], key=lambda c: c.position)))
        for p in passages[:count]
        if p.n in chosen
    ]


def history_messages(history: list[Turn], answer_chars: int) -> list[dict[str, str]]:
    """Earlier turns as user and assistant messages, long answers clipped and without their citation markers,
    whose numbers meant other passages than this prompt's."""
    messages = []
    for turn in history:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": clip(without_markers(turn.answer), answer_chars)})
    return messages


@tracer.start_as_current_span("prompt building")
def build_messages(question: str, passages: list[Passage], history: list[Turn]) -> list[dict[str, str]]:
    """OpenAI-style chat messages: system rules, earlier turns, then passages with the question."""
    return [
        {"role": "system", "content": SYSTEM},
        *history_messages(history[-MAX_HISTORY_TURNS:], MAX_HISTORY_ANSWER_CHARS),
        {
            "role": "user",
            "content": f"Passages:\n\n{format_passages(passages)}\n\nQuestion: {question}\n\n{INSTRUCTION}",
        },
    ]


@tracer.start_as_current_span("prompt building")
def local_prompt(
    question: str,
    passages: list[Passage],
    history: list[Turn],
    count: int = LOCAL_PASSAGES,
    chars: int = LOCAL_PASSAGE_CHARS,
) -> Prompt:
    """The in-process model's messages: fixed rules first (llama.cpp reuses them), then short excerpts, which
    are only some of the passages."""
    excerpts = focus_passages(question, passages, count, chars)
    messages = [
        {"role": "system", "content": f"{SYSTEM} {INSTRUCTION}"},
        *history_messages(history[-LOCAL_HISTORY_TURNS:], LOCAL_HISTORY_ANSWER_CHARS),
        {"role": "user", "content": f"{numbered(excerpts, titles=False)}\n\nQuestion: {question}"},
    ]
    return Prompt(messages, [p.n for p in excerpts])
