"""What every answer backend provides: text streamed from a question and numbered passages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Passage:
    """A passage the answer may cite as [n]."""

    n: int
    doc_id: str
    chunk_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Turn:
    """An earlier question and its answer in the same conversation."""

    question: str
    answer: str


class Backend(Protocol):
    """Streams answer text; markers like [2] cite passage 2."""

    name: str

    def stream(self, question: str, passages: list[Passage], history: list[Turn]) -> AsyncIterator[str]:
        """Yield pieces of the answer as they are produced."""
        ...
