"""The relevance floor: a per-corpus background of unrelated questions, and which hits clear it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from generation_svc import relevance
from generation_svc.relevance import MIN_PROBES, MIN_SPREAD, PROBES, PROBES_PER_SEARCH, Background, RelevanceFloor
from likeopt.runtime.principal import Principal, Reader
from likeopt.v1 import retrieval_pb2


def hit(dense: float, text: str = "unrelated words", dense_rank: int = 1) -> retrieval_pb2.SearchHit:
    return retrieval_pb2.SearchHit(doc_id="d", title="t", text=text, dense_score=dense, dense_rank=dense_rank)


BACKGROUND = Background(version=1, mean=0.2, spread=0.05)  # floor 0.35, lexical floor 0.225


def test_the_floor_is_the_mean_plus_three_spreads_and_never_without_spread() -> None:
    assert BACKGROUND.floor == pytest.approx(0.35)
    flat = Background.of(1, [0.1, 0.1, 0.1])
    assert flat.spread == MIN_SPREAD and flat.floor == pytest.approx(0.1 + 3 * MIN_SPREAD)


def test_a_hit_above_the_floor_covers_the_question() -> None:
    assert BACKGROUND.covers("Which port does Envoy listen on?", [hit(0.1), hit(0.4)])


def test_hits_at_background_level_do_not() -> None:
    assert not BACKGROUND.covers("Who painted the Mona Lisa?", [hit(0.3), hit(0.25)])
    assert not BACKGROUND.covers("anything", [])


def test_a_passage_holding_the_question_s_words_covers_it_above_the_lower_floor() -> None:
    words = "L1 is the in-process layer and L2 is Redis."
    assert BACKGROUND.covers("What are L1 and L2?", [hit(0.23, words)])
    assert not BACKGROUND.covers("What are L1 and L2?", [hit(0.21, words)])


class Probes:
    """A fake retrieval: every probe's best dense score is `score` (`scored` says it per query); counts the
    queries searched (`calls`) and the batches; can fail."""

    def __init__(self, score: float, version: int = 1, fail: bool = False) -> None:
        self.score, self.version, self.fail, self.calls, self.batches = score, version, fail, 0, 0
        self.least_versions: list[int] = []
        self.principals: list[Principal | None] = []

    def scored(self, query: str, principal: Principal | None) -> float:
        return self.score

    async def __call__(
        self, request: retrieval_pb2.SearchBatchRequest, principal: Principal | None = None
    ) -> retrieval_pb2.SearchBatchResponse:
        self.batches += 1
        self.calls += len(request.queries)
        self.principals.extend(principal for _ in request.queries)
        self.least_versions.append(request.parameters.min_index_version)
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("retrieval down")
        return retrieval_pb2.SearchBatchResponse(
            responses=[reply(hit(self.scored(q, principal)), version=self.version) for q in request.queries]
        )


def reply(*hits: retrieval_pb2.SearchHit, version: int = 1) -> retrieval_pb2.SearchResponse:
    return retrieval_pb2.SearchResponse(hits=hits, index_version=version)


async def test_concurrent_answers_share_one_measurement_per_index_version() -> None:
    probes = Probes(0.2)
    floor = RelevanceFloor(probes, probes=["a", "b", "c"])
    verdicts = await asyncio.gather(*(floor.covers("q", reply(hit(0.5)), 3.0) for _ in range(5)))
    assert verdicts == [True] * 5 and probes.calls == 3
    assert not await floor.covers("q", reply(hit(0.21)), 3.0)
    assert probes.calls == 3


async def test_a_new_version_is_measured_while_the_last_background_serves() -> None:
    probes = Probes(0.2)
    floor = RelevanceFloor(probes, probes=["a"])
    await floor.covers("q", reply(hit(0.5)), 3.0)
    everyone = floor.of(None)
    everyone._started -= 60  # as if measured long ago
    probes.version = 2
    assert await everyone.background(2) is not None  # the old one, at once
    await asyncio.sleep(0.01)
    assert everyone.current is not None and everyone.current.version == 2 and probes.calls == 2
    assert probes.least_versions == [1, 2]  # each version's probes reflect it, whichever replica answers


async def test_unjudgeable_or_unmeasurable_answers_are_never_refused() -> None:
    floor = RelevanceFloor(Probes(0.2, fail=True), probes=["a"])
    unjudged = REGISTRY.get_sample_value("likeopt_relevance_unjudged_total") or 0.0
    assert await floor.covers("q", reply(hit(0.0)), 3.0)  # retrieval failing: judge nothing, and count it
    assert REGISTRY.get_sample_value("likeopt_relevance_unjudged_total") == unjudged + 1
    bm25_only = reply(hit(0.0, dense_rank=0))
    assert await RelevanceFloor(Probes(0.2), probes=["a"]).covers("q", bm25_only, 3.0)
    assert not await floor.covers("q", reply(), 3.0)  # no passage at all


async def test_the_measurement_runs_outside_the_asking_requests_trace() -> None:
    traced: list[bool] = []

    async def search(request: retrieval_pb2.SearchBatchRequest, principal: object) -> retrieval_pb2.SearchBatchResponse:
        traced.append(trace.get_current_span().get_span_context().is_valid)
        return retrieval_pb2.SearchBatchResponse(responses=[reply(hit(0.2)) for _ in request.queries])

    provider = TracerProvider()
    with provider.get_tracer(__name__).start_as_current_span("an answer"):
        await RelevanceFloor(search, probes=["a", "b"]).covers("q", reply(hit(0.5)), 3.0)
    assert traced == [False]


def principal(tenant: str, subject: str = "someone") -> Principal:
    return Principal(subject, tenant, frozenset(), frozenset(), f"header-{tenant}", Reader.of(tenant, subject, ()))


class CorpusPerTenant(Probes):
    """Probes whose best score depends on the tenant asking: acme holds a dozen notes, bio thousands of abstracts."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.scores = {"acme": 0.1, "bio": 0.4, "globex": 0.1}

    def scored(self, query: str, principal: Principal | None) -> float:
        return self.scores[principal.tenant] if principal is not None else max(self.scores.values())


async def test_each_set_of_readers_is_judged_against_the_background_of_what_it_may_read() -> None:
    """Measured over the whole deployment, the abstracts' background refused a small tenant's real questions."""
    probes = CorpusPerTenant()
    floor = RelevanceFloor(probes, probes=["a", "b"])
    acme, bio = principal("acme"), principal("bio")
    assert await floor.covers("q", reply(hit(0.3)), 3.0, acme)  # above acme's background (0.1 + 3 spreads)
    assert not await floor.covers("q", reply(hit(0.3)), 3.0, bio)  # below the abstracts' (0.4)
    assert [p.tenant if p else None for p in probes.principals] == ["acme", "acme", "bio", "bio"]
    assert await floor.covers("q", reply(hit(0.3)), 3.0, principal("acme", "another"))  # another reader: measured
    assert probes.calls == 6 and await floor.covers("q", reply(hit(0.3)), 3.0, acme) and probes.calls == 6


async def test_the_backgrounds_kept_are_bounded_least_recently_asked_first() -> None:
    probes = CorpusPerTenant()
    floor = RelevanceFloor(probes, probes=["a"], max_readers=2)
    for tenant in ("acme", "bio", "acme", "globex"):
        await floor.covers("q", reply(hit(0.5)), 3.0, principal(tenant))
    assert probes.calls == 3  # acme asked twice, measured once
    await floor.covers("q", reply(hit(0.5)), 3.0, principal("bio"))  # forgotten: measured again
    assert probes.calls == 4


class Gated(Probes):
    """Probes scoring 0.25 (exact in float32); a batch holding a query of `held` answers (scoring held_score) only
    once `release` is set, one holding a query of `failing` fails; keeps the most batches in flight at once."""

    def __init__(self, held: Sequence[str] = (), held_score: float = 0.5, failing: Sequence[str] = ()) -> None:
        super().__init__(0.25)
        self.held, self.held_score, self.failing = set(held), held_score, set(failing)
        self.release = asyncio.Event()
        self.in_flight = self.most_in_flight = 0
        self.queries: list[str] = []

    def scored(self, query: str, principal: Principal | None) -> float:
        return self.held_score if query in self.held else self.score

    async def __call__(
        self, request: retrieval_pb2.SearchBatchRequest, principal: Principal | None = None
    ) -> retrieval_pb2.SearchBatchResponse:
        self.queries.extend(request.queries)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            answered = await super().__call__(request, principal)
            if self.failing.intersection(request.queries):
                raise ConnectionError("one replica restarting")
            if self.held.intersection(request.queries):
                await self.release.wait()
            return answered
        finally:
            self.in_flight -= 1


async def measured(floor: RelevanceFloor) -> Background | None:
    """The background once the running measurement has finished (its held probes released)."""
    task = floor.of(None)._measuring[1]  # type: ignore[index]
    return await task


async def test_the_probes_go_as_a_few_batched_searches_at_once_each_probe_once() -> None:
    """One by one, 30 probes of Milvus outlasted the first question's wait."""
    probes = Gated()
    await RelevanceFloor(probes).covers("q", reply(hit(0.5)), 3.0)
    assert probes.batches == probes.most_in_flight == len(PROBES) // PROBES_PER_SEARCH > 1
    assert sorted(probes.queries) == sorted(PROBES)


async def test_a_first_question_is_judged_on_the_probes_in_once_there_are_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the wait for every probe, MIN_PROBES serve (the rest replace them when in) rather than no verdict."""
    monkeypatch.setattr(relevance, "PROBE_TIMEOUT_S", 0.0)  # the late probes are late at once
    probes = Gated(held=PROBES[MIN_PROBES:])
    floor = RelevanceFloor(probes)
    assert not await floor.covers("q", reply(hit(0.3)), 30.0)  # 0.25 + 3 * MIN_SPREAD = 0.34 > 0.3
    assert floor.of(None).current == Background.of(1, [0.25] * MIN_PROBES)
    probes.release.set()
    everything = Background.of(1, [0.25] * MIN_PROBES + [0.5] * (len(PROBES) - MIN_PROBES))
    assert await measured(floor) == everything and floor.of(None).current == everything


async def test_too_few_probes_in_time_leave_the_question_unjudged() -> None:
    probes = Gated(held=PROBES[MIN_PROBES - 1 :])
    floor = RelevanceFloor(probes)
    unjudged = REGISTRY.get_sample_value("likeopt_relevance_unjudged_total") or 0.0
    assert await floor.covers("q", reply(hit(0.3)), 0.05)
    assert REGISTRY.get_sample_value("likeopt_relevance_unjudged_total") == unjudged + 1
    probes.release.set()
    assert await measured(floor) is not None


async def test_a_failed_probe_costs_the_background_a_sample_not_its_verdict() -> None:
    floor = RelevanceFloor(Gated(failing=PROBES[:1]))
    assert not await floor.covers("q", reply(hit(0.3)), 3.0)
    assert floor.of(None).current == Background.of(1, [0.25] * (len(PROBES) - PROBES_PER_SEARCH))
