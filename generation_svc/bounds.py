"""Where a caller asks an answer to end: a token budget and stop sequences (OpenAI's max_tokens and stop).

The stop sequences are applied here, to any backend's text, so the answer the caller reads, its citations, its
grounding check and the stored turn all end at the same place, and the model stops generating there.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from generation_svc.backends import Usage
from generation_svc.extractive import count_pieces, first_pieces
from likeopt.runtime.contract import ANSWER_MAX_TOKENS, check_stop


class BoundedRequest(Protocol):
    """AnswerRequest and GenerateRequest: both carry the caller's bounds."""

    max_tokens: int
    stop: list[str]


@dataclass(frozen=True)
class AnswerBounds:
    max_tokens: int = 0
    """At most this many tokens (0: the backend's configured limit)."""
    stop: tuple[str, ...] = ()
    """The answer ends before the first of these."""

    @classmethod
    def of(cls, request: BoundedRequest) -> AnswerBounds:
        """The request's bounds, or InvalidInput naming the field that is out of range."""
        return cls(ANSWER_MAX_TOKENS.check(request.max_tokens), check_stop(request.stop))

    def cut(self, text: str) -> tuple[str, str]:
        """A fixed reply (small talk, "not covered") within these bounds, and its finish reason; its tokens are
        counted as the extractive backend counts them (words and punctuation marks), as no model wrote it."""
        if (at := first_stop(text, self.stop)) >= 0:
            return text[:at], "stop"
        if self.max_tokens and count_pieces(text) > self.max_tokens:
            return first_pieces(text, self.max_tokens), "length"
        return text, "stop"

    def key_parts(self) -> list[object]:
        """What these bounds add to an answer's cache key: a bounded answer is another answer."""
        parts: list[object] = []
        if self.max_tokens:
            parts.append(("max_tokens", self.max_tokens))
        if self.stop:
            parts.append(("stop", list(self.stop)))
        return parts


def first_stop(text: str, stop: tuple[str, ...]) -> int:
    """Where the earliest of the stop sequences begins in text; -1 when none does."""
    return min((at for sequence in stop if (at := text.find(sequence)) >= 0), default=-1)


UNBOUNDED = AnswerBounds()
"""The backend's own limit and no stop sequence."""


class StopWatch:
    """Text fed piece by piece comes out as soon as no stop sequence can begin in it; the first stop sequence
    ends it. Only the last (longest sequence - 1) characters are ever held back."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop = stop
        self.hold = max(len(sequence) for sequence in stop) - 1
        self.pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text now safe to send; after a stop sequence, the text before it and nothing more."""
        self.pending += piece
        if (at := first_stop(self.pending, self.stop)) >= 0:
            self.stopped = True
            ready, self.pending = self.pending[:at], ""
            return ready
        split = max(len(self.pending) - self.hold, 0)
        ready, self.pending = self.pending[:split], self.pending[split:]
        return ready

    def rest(self) -> str:
        """What was held back, when the text ended without a stop sequence."""
        rest, self.pending = self.pending, ""
        return rest


def until_stop(pieces: AsyncGenerator[str, None], stop: tuple[str, ...], usage: Usage) -> AsyncIterator[str]:
    """pieces up to the first stop sequence, which is left out; the backend is closed there (so a model stops
    generating) and the finish reason is ``stop``. Without stop sequences, pieces themselves: no extra step
    per piece on the common path."""
    return _watched(pieces, stop, usage) if stop else pieces


async def _watched(pieces: AsyncGenerator[str, None], stop: tuple[str, ...], usage: Usage) -> AsyncIterator[str]:
    watch = StopWatch(stop)
    async with aclosing(pieces):
        async for piece in pieces:
            if ready := watch.feed(piece):
                yield ready
            if watch.stopped:
                break
    if watch.stopped:
        usage.finish_reason = "stop"  # after closing: a model's thread marks a closed stream "cancelled"
    elif rest := watch.rest():
        yield rest
