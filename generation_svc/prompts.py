"""Chat prompts shared by the model backends: numbered passages, the conversation, the question.

Two budgets. ``build_messages`` (model servers) gives whole passages with their titles; the
rule to cite sits both in the system message and right after the question.
``build_local_messages`` is for the in-process model, which reads only about 120 prompt
tokens a second on one core: it keeps the first three passages, each cut to the sentences
that share most terms with the question, and puts every fixed instruction in the system
message, which llama.cpp keeps evaluated from one answer to the next. The local backend
also begins its answer with "[" (see ANSWER_PREFIX). benchmarks/citations.py measures the
citation rate of both (figures in benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import replace

from opentelemetry import trace

from generation_svc.backends import Passage, Turn
from generation_svc.extractive import sentence_scores
from likeopt.text import tokenize

tracer = trace.get_tracer(__name__)

PROMPT_VERSION = "4"
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
"""The local model's budget, titles left out: about 90 new tokens to read with the question (the rules
are already read), under 1 s on one core. On SciFact three such excerpts were cited as often as three or
five longer ones; two were cited less (benchmarks/README.md)."""
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
    """Each passage as '[n] title: text' (or '[n] text'), the way the answer should cite it."""
    return "\n\n".join(f"[{p.n}] {p.title}: {p.text}" if titles else f"[{p.n}] {p.text}" for p in passages)


def format_passages(passages: list[Passage]) -> str:
    """The passages numbered, each clipped so that all fit the total budget."""
    limit = min(MAX_PASSAGE_CHARS, MAX_PASSAGES_CHARS // max(len(passages), 1))
    return numbered([replace(p, text=clip(p.text, limit)) for p in passages])


def focus(passage: Passage, terms: set[str], limit: int) -> Passage:
    """The passage cut to at most limit characters: its sentences sharing most terms with the question.

    Kept sentences stay in their order, so the excerpt reads as the source does; a single
    sentence longer than the limit is clipped.
    """
    text = " ".join(passage.text.split())
    if len(text) <= limit:
        return replace(passage, text=text)
    scored = sentence_scores(terms, text)
    ranked = sorted(range(len(scored)), key=lambda position: (-scored[position][0], position))
    kept: list[int] = []
    used = 0
    for position in ranked:
        length = len(scored[position][1])
        if used + length <= limit:
            kept.append(position)
            used += length + 1
    excerpt = " ".join(scored[position][1] for position in sorted(kept))
    return replace(passage, text=excerpt or clip(scored[ranked[0]][1], limit))


def focus_passages(question: str, passages: list[Passage], count: int, limit: int) -> list[Passage]:
    """The first count passages, each focused on the question within limit characters."""
    terms = set(tokenize(question))
    return [focus(passage, terms, limit) for passage in passages[:count]]


def history_messages(history: list[Turn], answer_chars: int) -> list[dict[str, str]]:
    """Earlier turns as user and assistant messages, long answers clipped."""
    messages = []
    for turn in history:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": clip(turn.answer, answer_chars)})
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
def build_local_messages(
    question: str,
    passages: list[Passage],
    history: list[Turn],
    count: int = LOCAL_PASSAGES,
    chars: int = LOCAL_PASSAGE_CHARS,
) -> list[dict[str, str]]:
    """The in-process model's messages: fixed rules first (llama.cpp reuses them), then short excerpts."""
    excerpts = focus_passages(question, passages, count, chars)
    return [
        {"role": "system", "content": f"{SYSTEM} {INSTRUCTION}"},
        *history_messages(history[-LOCAL_HISTORY_TURNS:], LOCAL_HISTORY_ANSWER_CHARS),
        {"role": "user", "content": f"{numbered(excerpts, titles=False)}\n\nQuestion: {question}"},
    ]
