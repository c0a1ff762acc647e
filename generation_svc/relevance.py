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

The first question of a set of readers waits for its background: for every probe, or past
``PROBE_TIMEOUT_S`` for the ``MIN_PROBES`` a sound mean and spread need, up to ``PROBE_PATIENCE_S``
(a slow backend such as Milvus is judged after a longer first wait; a fixed fallback floor would
refuse real questions on a small corpus or pass off-topic ones on a large one). It is paid once
per set of readers: after a write the previous background serves while the next is measured.
When the background cannot be measured (retrieval failing, or a BM25-only search, which has no
dense scores) nothing is refused: the grounding check still marks what is unsupported.
"""

from __future__ import annotations

import asyncio
import contextlib
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
PROBES_PER_SEARCH = 10
"""Probes asked in one SearchBatch call, the calls made at once: retrieval_svc does what a batch's searches share
once, so the background costs about one search's time, and two calls make MIN_PROBES when the third is late."""
MIN_PROBES = 20
"""Fewest probes a background is measured from: 20 of the 30, drawn at random, set the demo corpus's floor
within 0.021 of all 30's in nine draws out of ten."""
PROBE_TIMEOUT_S = 3.0
"""How long the first question of a set of readers waits for every probe; past it, MIN_PROBES or more serve."""
PROBE_PATIENCE_S = 10.0
"""The longest it waits for MIN_PROBES: a backend slower than that is failing rather than slow."""
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

Searches = Callable[[retrieval_pb2.SearchBatchRequest, Principal | None], Awaitable[retrieval_pb2.SearchBatchResponse]]
"""A batch of searches as the principal given (None: unrestricted)."""


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


class Measurement:
    """The probes of one index version for one set of readers, in batches of ``PROBES_PER_SEARCH`` (one by one, 30
    searches of Milvus outlast PROBE_TIMEOUT_S), keeping each one's best dense score as it comes."""

    def __init__(self, search: Searches, probes: tuple[str, ...], principal: Principal | None, version: int) -> None:
        self.search = search
        self.probes = probes
        self.principal = principal
        self.version = version
        self.needed = min(MIN_PROBES, len(probes))
        self.best: list[float] = []
        self.answered: list[int] = []
        """The index version each probe was answered at."""
        self.failures: list[Exception] = []
        """Why a batch failed, one entry per failed batch."""
        self.settled = asyncio.Event()
        """Set once enough probes are in for a background, or every probe is done."""

    async def run(self) -> Background | None:
        """The background of every probe that succeeded; None when fewer than ``needed`` did."""
        batches = [self.probes[n : n + PROBES_PER_SEARCH] for n in range(0, len(self.probes), PROBES_PER_SEARCH)]
        try:
            await asyncio.gather(*(self._probe(batch) for batch in batches))
        finally:
            self.settled.set()
        if self.failures:
            failed = len(self.probes) - len(self.best)
            log.warning(
                "relevance probes failed",
                extra={"fields": {"failed": failed, "of": len(self.probes), "error": repr(self.failures[0])}},
            )
        return self.background()

    async def _probe(self, batch: tuple[str, ...]) -> None:
        parameters = retrieval_pb2.SearchRequest(top_k=PROBE_TOP_K, min_index_version=self.version)
        request = retrieval_pb2.SearchBatchRequest(queries=batch, parameters=parameters)
        try:
            reply = await self.search(request, self.principal)  # the version judged, whichever replica answers
        except Exception as exc:  # a batch failing costs the background its probes, not its verdict
            self.failures.append(exc)
            return
        for response in reply.responses:
            self.best.append(max((hit.dense_score for hit in response.hits), default=0.0))
            self.answered.append(response.index_version)
        if len(self.best) >= self.needed:
            self.settled.set()

    def background(self) -> Background | None:
        """The background of the probes in so far, once there are enough for a sound mean and spread."""
        if len(self.best) < self.needed:
            return None
        return Background.of(min(self.answered), self.best)


class ReadersBackground:
    """The background of the documents one set of readers may read (probed as one of them), measured once per
    index version and shared by their concurrent answers."""

    def __init__(self, search: Searches, probes: tuple[str, ...], principal: Principal | None) -> None:
        self.search = search
        self.probes = probes
        self.principal = principal
        """Whom the probes search as: a caller with these readers' fingerprint (None: unrestricted)."""
        self.current: Background | None = None
        self._measuring: tuple[Measurement, asyncio.Task[Background | None]] | None = None
        self._started = 0.0

    async def background(self, version: int, timeout_s: float = PROBE_PATIENCE_S) -> Background | None:
        """The background of this index version; while it is measured, a recent one of another version. The first
        one waits for the measurement (``first_background``), at most timeout_s."""
        current = self.current
        if current is not None and (current.version == version or time.monotonic() - self._started < REFRESH_S):
            return current
        if self._measuring is None or self._measuring[1].done():
            measurement = Measurement(self.search, self.probes, self.principal, version)
            # In a context of its own: the measurement serves every answer of these readers, not the asking request
            # alone (its trace showed 30 probe searches under the first question after each write).
            task = asyncio.create_task(self._measure(measurement), context=contextvars.Context())
            task.add_done_callback(_log_failure)
            self._measuring = measurement, task
            self._started = time.monotonic()
        if current is not None:
            return current
        found = await first_background(*self._measuring, timeout_s)
        if found is None:
            UNJUDGED.inc()
        elif self.current is None:
            self.current = found  # its later questions need not wait for the last probes either
        return found

    async def _measure(self, measurement: Measurement) -> Background | None:
        background = await measurement.run()
        if background is None:
            return None
        self.current = background
        log.info(
            "relevance background measured",
            extra={
                "fields": {
                    "index_version": background.version,
                    "readers": scope_of(self.principal)[:12] or "all",
                    "probes": len(measurement.best),
                    "mean": round(background.mean, 3),
                    "floor": round(background.floor, 3),
                }
            },
        )
        return background


async def first_background(
    measurement: Measurement, task: asyncio.Task[Background | None], timeout_s: float
) -> Background | None:
    """A set of readers' first background: of every probe when they are all in within PROBE_TIMEOUT_S, else of
    those in once ``MIN_PROBES`` are, waiting for them up to PROBE_PATIENCE_S (a slow backend is judged, after
    a longer first wait, rather than answered unjudged). None when the probes failed or that was not enough."""
    loop = asyncio.get_running_loop()
    until = loop.time() + min(timeout_s, PROBE_PATIENCE_S)
    await asyncio.wait({task}, timeout=min(timeout_s, PROBE_TIMEOUT_S))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(until):
            await measurement.settled.wait()
    return measurement.background()


class RelevanceFloor:
    """Judges hits against the background of what the asker may read: a tenant with a dozen notes in a deployment
    that also holds thousands of abstracts has a background of its own, not the deployment's (whose nearer
    unrelated passages set a floor the tenant's real questions could not reach)."""

    def __init__(self, search: Searches, probes: Sequence[str] = PROBES, max_readers: int = MAX_READERS_KEPT) -> None:
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


def _log_failure(task: asyncio.Task[Background | None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("relevance background not measured", extra={"fields": {"error": repr(exc)}})
