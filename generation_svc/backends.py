"""What every answer backend provides: text streamed from a question and numbered passages."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
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
"""A bracketed number or list of numbers ("[2]", "[1, 3]"), as a model writes citation markers; Renumbering writes
each passage's as its own ("[1][3]"), the form the service, grounding and the web UI read."""


_MARKER_OPENING = re.compile(r"\[\d{0,3}(?:\s*,\s*\d{0,3})*\s*")
"""The start of what may still become a marker: held back until it is complete or cannot be one."""
MAX_HELD_CHARS = 24
_PUNCTUATION = frozenset(".,;:!?)")


def without_markers(text: str) -> str:
    """text with its citation markers (and the spaces before them) removed: an earlier answer's [2] meant that
    answer's passage 2, and a model reading it next to new passages would copy it as a citation of theirs."""
    return re.sub(r"[ \t]*" + _MARKER_SHAPED.pattern, "", text).strip()


def as_read(passage: Passage) -> Passage:
    """passage as a backend reads it: references in the document's own words shaped like citation markers are
    written "(2)", "(1, 3)", since an answer that copies them would cite passages 2, 1 and 3 for nothing."""
    return replace(
        passage, title=_MARKER_SHAPED.sub(r"(\1)", passage.title), text=_MARKER_SHAPED.sub(r"(\1)", passage.text)
    )


class Renumbering:
    """Rewrites the markers of an answer streamed by a model that was shown some passages numbered 1..m in the
    prompt into those passages' own numbers, and drops a marker naming no passage it was shown.

    A model copies the numbers it reads, so it may only read consecutive ones; the service cites by the passages'
    own numbers. Markers arrive split across pieces ("[1", "2]"), so the start of one is held back until it is
    complete; the whitespace before a dropped marker goes with it when punctuation follows.
    """

    def __init__(self, shown: list[int]) -> None:
        self.own = dict(enumerate(shown, start=1))
        self.held = ""
        self.space = ""
        self.dropped = False

    def feed(self, piece: str) -> str:
        """The text of piece that is settled, markers rewritten."""
        text, self.held = self.held + piece, ""
        out: list[str] = []
        at = 0
        while (start := text.find("[", at)) != -1:
            self._emit(out, text[at:start])
            if marker := _MARKER_SHAPED.match(text, start):
                self._marker(out, marker.group(1))
                at = marker.end()
            elif _MARKER_OPENING.fullmatch(text, start) and len(text) - start <= MAX_HELD_CHARS:
                self.held = text[start:]
                return "".join(out)
            else:
                self._emit(out, "[")
                at = start + 1
        self._emit(out, text[at:])
        return "".join(out)

    def flush(self) -> str:
        """What is still settled at the end of the answer. An opening that never became a marker ("[1", where a
        token budget cut one short) goes, with the space before it: its number is the prompt's, and names nothing."""
        rest = self.feed("")
        self.held = self.space = ""
        return rest

    def _marker(self, out: list[str], numbers: str) -> None:
        own = [self.own[k] for k in map(int, numbers.split(",")) if k in self.own]
        if own:  # a list becomes one marker per passage, the one form citations and grounding read
            self._emit(out, "".join(f"[{n}]" for n in dict.fromkeys(own)))
        else:
            self.dropped = True

    def _emit(self, out: list[str], text: str) -> None:
        """Appends text, keeping trailing whitespace back: a dropped marker after it may take it along."""
        if self.dropped:
            text = text.lstrip()
            if not text:
                return
            if text[0] in _PUNCTUATION:
                self.space = ""
            self.dropped = False
        body = text.rstrip()
        if body:
            out.append(self.space + body)
            self.space = ""
        self.space += text[len(body) :]


async def renumbered(pieces: AsyncGenerator[str, None], shown: list[int]) -> AsyncGenerator[str, None]:
    """pieces with their markers rewritten by Renumbering; closing this closes pieces."""
    renumbering = Renumbering(shown)
    async with aclosing(pieces):
        async for piece in pieces:
            if text := renumbering.feed(piece):
                yield text
    if rest := renumbering.flush():
        yield rest


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
