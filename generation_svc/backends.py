"""What every answer backend provides: text streamed from a question and numbered passages."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import Protocol

import grpc


@dataclass(frozen=True)
class Passage:
    """A passage the answer may cite as [n]."""

    n: int
    doc_id: str
    chunk_id: str
    title: str
    text: str


_MARKER_SHAPED = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
"""A bracketed number or list of numbers ("[2]", "[1, 3]"): what the service, grounding and the web UI read as
citation markers."""


def as_read(passage: Passage) -> Passage:
    """passage as a backend reads it: references in the document's own words shaped like citation markers are
    written "(2)", "(1, 3)", since an answer that copies them would cite passages 2, 1 and 3 for nothing."""
    return replace(
        passage, title=_MARKER_SHAPED.sub(r"(\1)", passage.title), text=_MARKER_SHAPED.sub(r"(\1)", passage.text)
    )


@dataclass(frozen=True)
class Turn:
    """An earlier question and its answer in the same conversation."""

    question: str
    answer: str


@dataclass
class Usage:
    """What a backend reports about one answer; it fills this in while streaming."""

    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    no_answer: bool = False
    """Set by a backend whose answer says that the passages do not answer the question."""


def token_budget(own: int, asked: int) -> int:
    """The tokens an answer may have: what the caller asked for, never more than the backend's configured limit."""
    return min(own, asked) if asked > 0 else own


class AnswerFailed(Exception):
    """Ends a stream with an error event and the matching gRPC status.

    Backends raise it too, so a model server's 429 reaches the caller as
    RESOURCE_EXHAUSTED rather than as a generic failure.
    """

    def __init__(self, code: grpc.StatusCode, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class Backend(Protocol):
    """Streams answer text; markers like [2] cite passage 2."""

    name: str
    fingerprint: str
    """Everything that changes this backend's answers (model, prompt, limits), for cache keys."""

    def stream(
        self, question: str, passages: list[Passage], history: list[Turn], usage: Usage, limit: int = 0
    ) -> AsyncGenerator[str, None]:
        """Yield pieces of the answer as they are produced, at most limit tokens when it is set (finish reason
        ``length`` when that cuts the answer short); stop promptly when closed."""
        ...
