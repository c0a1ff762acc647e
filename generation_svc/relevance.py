"""The relevance floor: when no passage found is about the question, say so instead of answering.

An answer built from unrelated passages is worse than none, so generation_svc first asks
whether the retrieved passages are about the question at all. The fused score cannot tell
(convex fusion min-max normalises it per query, so the best hit always scores 1), but the
dense score of each hit is the query's cosine similarity to the chunk, which is absolute.

Absolute, yet not comparable across corpora: how similar an unrelated question gets depends
on the corpus. Off-topic questions reach cosine 0.40 on SciFact's 5,183 abstracts but at
most 0.22 on the 12 chunks of the demo corpus, where real questions such as "What are L1 and
L2?" score 0.12. So the floor is set per corpus, from its own background: for each index
version and each set of readers (the documents a caller may read are its corpus), generation_svc
searches a fixed set of everyday questions (``PROBES``, none about any one subject) as that
caller, takes the best dense score of each, and sets the floor at their mean plus
``FLOOR_SPREADS`` standard deviations. A question is covered when its best hit reaches the
floor, or when one hit holds at least ``LEXICAL_COVERAGE`` of the question's content words
and reaches mean plus ``LEXICAL_SPREADS`` deviations (short technical questions share exact
words with the right passage while embedding poorly).

Calibrated on SciFact train claims against the odd lines of likeopt/ops/data/offtopic_questions.txt
and checked on the held-apart SciFact test claims, even lines and the demo corpus's questions
(benchmarks/answer_floor.py; benchmarks/README.md "Answers").

When the background cannot be measured (retrieval failing, or a BM25-only search, which has
no dense scores) nothing is refused: the grounding check still marks what is unsupported.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import statistics
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from likeopt.runtime.principal import Principal, scope_of
from likeopt.runtime.text import tokenize
from likeopt.v1 import retrieval_pb2

log = logging.getLogger(__name__)
UNJUDGED = Counter(
    "likeopt_relevance_unjudged_total",
    "Questions answered without the relevance floor's verdict: its background could not be measured in time.",
)

NOT_COVERED = "This is not in your documents: none of the passages found is about the question, so I cannot answer it."
"""The whole answer when the relevance floor refuses (done.no_answer is set; nothing is cited)."""

FLOOR_SPREADS = 3.0
LEXICAL_SPREADS = 0.5
LEXICAL_COVERAGE = 0.75
MIN_SPREAD = 0.03
"""A corpus whose probes all score alike still gets a floor above its mean."""
PROBE_TOP_K = 5
REFRESH_S = 10.0
"""After an index change the previous background serves for up to this long while the new one is measured."""
PROBE_TIMEOUT_S = 3.0
MAX_READERS_KEPT = 1024
"""Sets of readers whose background is kept; one past it is measured again when it next asks."""

PROBES = (
    "What is the weather like today?",
    "Tell me a joke about cats.",
    "Who is the best singer of all time?",
    "How do I get to the train station?",
    "What should I cook for dinner tonight?",
    "Which movie won the most awards last year?",
    "How do I become a better dancer?",
    "What is the meaning of my dream about flying?",
    "Recommend a good book for a long flight.",
    "How do I decorate a birthday cake?",
    "What is the score of last night's game?",
    "Where can I buy cheap concert tickets?",
    "How do I write a love poem?",
    "What are fun things to do in Barcelona?",
    "How tall is the Empire State Building?",
    "Which car brand is the most reliable?",
    "How do I fix a squeaky door hinge?",
    "What is the history of the Roman Colosseum?",
    "How do I play the ukulele?",
    "Who wrote the national anthem of France?",
    "What is a good gift for my grandmother?",
    "How do I make my garden grow faster?",
    "What is the plot of the latest superhero film?",
    "How do I clean my windows without streaks?",
    "Which beach is the most beautiful in Greece?",
    "How many languages are spoken in India?",
    "What is the rule of thumb for tipping in restaurants?",
    "How do I choose a new sofa?",
    "Who was the greatest tennis player?",
    "What is the etymology of the word umbrella?",
)
"""Everyday questions about no particular subject; none is in likeopt/ops/data/offtopic_questions.txt."""

Search = Callable[[retrieval_pb2.SearchRequest, Principal | None], Awaitable[retrieval_pb2.SearchResponse]]
"""A search as the principal given (None: unrestricted)."""


@dataclass(frozen=True)
class Background:
    """How similar unrelated questions get to one corpus: mean and spread of their best dense scores."""

    version: int
    mean: float
    spread: float

    @classmethod
    def of(cls, version: int, best_scores: Sequence[float]) -> Background:
        spread = statistics.pstdev(best_scores) if len(best_scores) > 1 else 0.0
        return cls(version, statistics.fmean(best_scores), max(spread, MIN_SPREAD))

    @property
    def floor(self) -> float:
        return self.mean + FLOOR_SPREADS * self.spread

    def covers(self, question: str, hits: Sequence[retrieval_pb2.SearchHit]) -> bool:
        """Whether the hits are about the question (see the module doc)."""
        if not hits:
            return False
        if max(hit.dense_score for hit in hits) >= self.floor:
            return True
        terms = set(tokenize(question))
        if not terms:
            return False
        lexical_floor = self.mean + LEXICAL_SPREADS * self.spread
        return any(
            hit.dense_score >= lexical_floor
            and len(terms & set(tokenize(f"{hit.title} {hit.text}"))) / len(terms) >= LEXICAL_COVERAGE
            for hit in hits
        )


def judgeable(hits: Sequence[retrieval_pb2.SearchHit]) -> bool:
    """Hits carry dense scores (hybrid or dense search); a BM25-only search cannot be judged."""
    return any(hit.dense_rank for hit in hits)


class ReadersBackground:
    """The background of the documents one set of readers may read (probed as one of them), measured once per
    index version and shared by their concurrent answers."""

    def __init__(self, search: Search, probes: tuple[str, ...], principal: Principal | None) -> None:
        self.search = search
        self.probes = probes
        self.principal = principal
        """Whom the probes search as: a caller with these readers' fingerprint (None: unrestricted)."""
        self.current: Background | None = None
        self._measuring: asyncio.Task[Background] | None = None
        self._started = 0.0

    async def background(self, version: int, timeout_s: float = PROBE_TIMEOUT_S) -> Background | None:
        """The background of this index version; while it is measured, a recent one of another version."""
        current = self.current
        if current is not None and (current.version == version or time.monotonic() - self._started < REFRESH_S):
            return current
        task = self._measuring
        if task is None or task.done():
            # In a context of its own: the measurement serves every answer of these readers, not the asking request
            # alone (its trace showed 30 probe searches under the first question after each write).
            task = self._measuring = asyncio.create_task(self._probe(version), context=contextvars.Context())
            task.add_done_callback(_log_failure)
            self._started = time.monotonic()
        if current is not None:
            return current
        try:
            return await asyncio.wait_for(asyncio.shield(task), min(timeout_s, PROBE_TIMEOUT_S))
        except Exception:  # retrieval failing (logged once by the task) or slow: judge nothing, refuse nothing
            UNJUDGED.inc()
            return None

    async def _probe(self, version: int) -> Background:
        best: list[float] = []
        seen_version = version
        for probe in self.probes:
            probing = retrieval_pb2.SearchRequest(query=probe, top_k=PROBE_TOP_K, min_index_version=version)
            reply = await self.search(probing, self.principal)  # the version judged, whichever replica answers
            best.append(max((hit.dense_score for hit in reply.hits), default=0.0))
            seen_version = reply.index_version
        background = Background.of(seen_version, best)
        self.current = background
        readers = scope_of(self.principal)[:12] or "all"
        log.info(
            "relevance background measured",
            extra={
                "fields": {
                    "index_version": seen_version,
                    "readers": readers,
                    "mean": round(background.mean, 3),
                    "floor": round(background.floor, 3),
                }
            },
        )
        return background


class RelevanceFloor:
    """Judges hits against the background of what the asker may read: a tenant with a dozen notes in a deployment
    that also holds thousands of abstracts has a background of its own, not the deployment's (whose nearer
    unrelated passages set a floor the tenant's real questions could not reach)."""

    def __init__(self, search: Search, probes: Sequence[str] = PROBES, max_readers: int = MAX_READERS_KEPT) -> None:
        self.search = search
        self.probes = tuple(probes)
        self.max_readers = max_readers
        self._by_readers: OrderedDict[str, ReadersBackground] = OrderedDict()

    def of(self, principal: Principal | None) -> ReadersBackground:
        """The background kept for the caller's readers (least recently asked ones forgotten past max_readers)."""
        scope = scope_of(principal)
        kept = self._by_readers.get(scope)
        if kept is None:
            kept = self._by_readers[scope] = ReadersBackground(self.search, self.probes, principal)
            while len(self._by_readers) > self.max_readers:
                self._by_readers.popitem(last=False)
        self._by_readers.move_to_end(scope)
        kept.principal = principal  # the latest token of the same readers
        return kept

    async def covers(
        self,
        question: str,
        reply: retrieval_pb2.SearchResponse,
        timeout_s: float,
        principal: Principal | None = None,
    ) -> bool:
        """False only when the hits are measurably unrelated to the question."""
        if not reply.hits:
            return False
        if not judgeable(reply.hits):
            return True
        background = await self.of(principal).background(reply.index_version, timeout_s)
        return background is None or background.covers(question, reply.hits)


def _log_failure(task: asyncio.Task[Background]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("relevance background not measured", extra={"fields": {"error": repr(exc)}})
