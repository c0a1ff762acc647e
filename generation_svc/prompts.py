"""Chat prompts shared by the model backends: numbered passages, the conversation, the question.

The rule to cite sits both in the system message and right after the question, with
the exact marker format; the local backend also begins its answer with "[" (see
ANSWER_PREFIX), which on SciFact doubled the share of answers citing a relevant
document (benchmarks/citations.py; figures in benchmarks/README.md).
"""

from __future__ import annotations

from opentelemetry import trace

from generation_svc.backends import Passage, Turn

tracer = trace.get_tracer(__name__)

PROMPT_VERSION = "3"
"""Part of every answer-cache key: change it whenever the wording below changes."""

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

SYSTEM = (
    "You answer questions using only the numbered passages you are given. "
    "Cite the passage each statement comes from with its number in square brackets, like [1]. "
    "If the passages do not answer the question, say so."
)


def clip(text: str, limit: int) -> str:
    """Text cut at a word boundary to at most limit characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def format_passages(passages: list[Passage]) -> str:
    """Each passage as '[n] title: text', the way the answer should cite it, within the total budget."""
    limit = min(MAX_PASSAGE_CHARS, MAX_PASSAGES_CHARS // max(len(passages), 1))
    return "\n\n".join(f"[{p.n}] {p.title}: {clip(p.text, limit)}" for p in passages)


@tracer.start_as_current_span("prompt building")
def build_messages(question: str, passages: list[Passage], history: list[Turn]) -> list[dict[str, str]]:
    """OpenAI-style chat messages: system rules, earlier turns, then passages with the question."""
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in history[-MAX_HISTORY_TURNS:]:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": clip(turn.answer, MAX_HISTORY_ANSWER_CHARS)})
    messages.append(
        {
            "role": "user",
            "content": (
                f"Passages:\n\n{format_passages(passages)}\n\n"
                f"Question: {question}\n\n"
                "Answer in two or three sentences. End each sentence with the number of the passage "
                "it comes from, like [1]."
            ),
        }
    )
    return messages
