"""Answers people can trust, through a real in-process gRPC server: support, "not in your documents", feedback."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from generation_svc import feedback, feedback_file
from generation_svc.backends import AnswerFailed, Passage, Turn, Usage
from generation_svc.extractive import ExtractiveBackend, count_pieces
from generation_svc.feedback import FeedbackStore, FeedbackUnavailable, UnknownAnswer
from generation_svc.feedback_file import SCHEMA_VERSION
from generation_svc.relevance import NOT_COVERED, RelevanceFloor
from likeopt.ops import answer_eval
from likeopt.runtime.contract import Range
from likeopt.v1 import generation_pb2, retrieval_pb2
from tests.unit.test_generation_harness import collect, generation_server, text_of
from tests.unit.test_generation_service import ScriptedBackend, kinds


class Refusing(RelevanceFloor):
    """A floor that finds every set of passages unrelated."""

    def __init__(self) -> None:
        super().__init__(self._never)

    async def _never(
        self, request: retrieval_pb2.SearchBatchRequest, principal: object
    ) -> retrieval_pb2.SearchBatchResponse:
        raise AssertionError("not measured")

    async def covers(
        self, question: str, reply: retrieval_pb2.SearchResponse, timeout_s: float, principal: object = None
    ) -> bool:
        return False


class RefusingQuestionsAbout(Refusing):
    """A floor that finds passages unrelated to questions holding one word, and related to every other."""

    def __init__(self, word: str) -> None:
        super().__init__()
        self.word = word

    async def covers(
        self, question: str, reply: retrieval_pb2.SearchResponse, timeout_s: float, principal: object = None
    ) -> bool:
        return self.word not in question


def citations(events: list[generation_pb2.AnswerEvent]) -> list[generation_pb2.CitationEvent]:
    return [e.citation for e in events if e.HasField("citation")]


async def test_done_carries_support_and_each_citation_whether_it_is_supported() -> None:
    backend = ScriptedBackend(["Envoy listens on port 8080 [1]. ", "Kafka keeps every message for a week [2]."])
    async with generation_server(backend) as h:
        first = await h.answer("Which port does Envoy listen on for the answer cache?", top_k=2)
        replay = await h.answer("Which port does Envoy listen on for the answer cache?", top_k=2)
    marks = {c.n: c.supported for c in citations(first)}
    assert marks == {1: True, 2: False}
    assert first[-1].done.support == pytest.approx(0.5) and not first[-1].done.no_answer
    assert replay[-1].done.cached and citations(replay) == citations(first)
    assert replay[-1].done.support == first[-1].done.support
    assert first[-1].done.answer_id and first[-1].done.answer_id != replay[-1].done.answer_id


async def test_an_extractive_answer_is_fully_supported() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        events = await h.answer("Which port does Envoy listen on?", top_k=2)
    assert events[-1].done.support == 1.0 and all(c.supported for c in citations(events))


async def test_a_question_the_documents_do_not_cover_gets_no_answer_and_no_citations() -> None:
    backend = ScriptedBackend(["never said"])
    async with generation_server(backend, floor=Refusing()) as h:
        events = await h.answer("Who painted the Mona Lisa?")
    assert kinds(events) == ["retrieval", "delta", "done"]
    assert not events[0].retrieval.hits and text_of(events) == NOT_COVERED
    assert events[-1].done.no_answer and events[-1].done.support == 0.0 and not backend.calls
    assert events[-1].done.completion_tokens == count_pieces(NOT_COVERED) and events[-1].done.prompt_tokens == 0


class FailingMidStream:
    """Streams a cited sentence, then fails as a model server that drops the connection does."""

    name = "failing-mid-stream"
    fingerprint = "failing-mid-stream/1"

    async def stream(
        self, question: str, passages: list[Passage], history: list[Turn], usage: Usage, limit: int = 0
    ) -> AsyncIterator[str]:
        yield "Envoy listens on port 8080 [1]."
        raise AnswerFailed(grpc.StatusCode.UNAVAILABLE, "model server failed mid-answer")


async def test_a_backend_failing_mid_stream_ends_with_an_error_and_no_citation() -> None:
    async with generation_server(FailingMidStream()) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="Which port does Envoy listen on?"), timeout=10)
        events = await collect(call)
    assert kinds(events) == ["retrieval", "delta", "error"] and not citations(events)
    assert events[-1].error.code == "UNAVAILABLE"


async def test_a_short_question_of_its_own_subject_is_not_carried_by_the_words_it_borrowed() -> None:
    """A floor that passes the rewritten query let "Who wrote Hamlet?" after a question about Envoy be answered
    from Envoy's passages (a model wrote 'The capital of France is Paris [1]')."""
    backend = ScriptedBackend(["Envoy listens on port 8080 [1]."])
    async with generation_server(backend, floor=RefusingQuestionsAbout("Mona")) as h:
        first = await h.answer("Which port does Envoy listen on?")
        conversation_id = first[-1].done.conversation_id
        off_topic = await h.answer("Who wrote Hamlet?", conversation_id=conversation_id)
        follow_up = await h.answer("And its admin port?", conversation_id=conversation_id)
    assert off_topic[-1].done.no_answer and text_of(off_topic) == NOT_COVERED and len(backend.calls) == 2
    assert not follow_up[-1].done.no_answer and "Envoy" in h.retrieval.queries[-1]


async def test_a_question_the_documents_did_not_cover_leaves_no_words_for_the_next() -> None:
    """After a refused question, "How big is the answer cache?" was searched with its words and refused too."""
    backend = ScriptedBackend(["The answer cache keeps complete answers [1]."])
    async with generation_server(backend, floor=RefusingQuestionsAbout("Mona")) as h:
        refused = await h.answer("Who painted the Mona Lisa?")
        conversation_id = refused[-1].done.conversation_id
        answered = await h.answer("How big is the cache?", conversation_id=conversation_id)
    assert refused[-1].done.no_answer and not answered[-1].done.no_answer
    assert h.retrieval.queries[-1] == "How big is the cache?" and backend.calls[-1][1] == []


async def test_feedback_is_stored_for_a_known_answer_and_refused_otherwise(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    try:
        async with generation_server(ExtractiveBackend(), feedback=store, api_key="k") as h:
            done = (await h.answer("Which port does Envoy listen on?", top_k=2))[-1].done
            reply = await h.stub.Feedback(
                generation_pb2.FeedbackRequest(answer_id=done.answer_id, rating="down", comment="wrong port")
            )
            assert reply.answer_id == done.answer_id and reply.feedback_id > 0
            assert (
                await h.stub.Feedback(generation_pb2.FeedbackRequest(answer_id=done.answer_id, rating="up"))
            ).answer_id
            for bad, code in (
                (generation_pb2.FeedbackRequest(answer_id="unknown", rating="up"), grpc.StatusCode.NOT_FOUND),
                (
                    generation_pb2.FeedbackRequest(answer_id=done.answer_id, rating="meh"),
                    grpc.StatusCode.INVALID_ARGUMENT,
                ),
                (
                    generation_pb2.FeedbackRequest(answer_id=done.answer_id, rating="up", comment="x" * 2001),
                    grpc.StatusCode.INVALID_ARGUMENT,
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await h.stub.Feedback(bad)
                assert refused.value.code() == code
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await h.stub.ListFeedback(generation_pb2.ListFeedbackRequest())
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED  # as every missing or wrong key
            listed = await h.stub.ListFeedback(
                generation_pb2.ListFeedbackRequest(rating="down"), metadata=(("authorization", "Bearer k"),)
            )
    finally:
        store.close()
    assert (listed.up, listed.down) == (1, 1)
    [item] = listed.items
    assert item.comment == "wrong port" and item.question == "Which port does Envoy listen on?"
    assert "8080" in item.answer and item.citations[0].supported and item.backend == "extractive"
    with sqlite3.connect(tmp_path / "answers.sqlite3") as db:  # durable: on disk, readable by another connection
        assert db.execute("SELECT COUNT(*) FROM feedback").fetchone() == (2,)


async def test_an_answer_is_found_by_its_trace_id_too_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    store = FeedbackStore(path)
    done = generation_pb2.DoneEvent(answer_id="a" * 32, trace_id="b" * 32, backend="local", support=0.5)
    store.record_later("q", "an answer [1]", [generation_pb2.CitationEvent(n=1, doc_id="d")], done)
    assert await store.rate("", "b" * 32, "down", "") == (1, "a" * 32)
    store.close()
    reopened = FeedbackStore(path)
    try:
        items, counts = await reopened.list()
    finally:
        reopened.close()
    assert counts.down == 1 and items[0].answer == "an answer [1]" and items[0].support == pytest.approx(0.5)


async def test_only_the_person_given_an_answer_rates_it_and_older_files_gain_owners(tmp_path: Path) -> None:
    """An answer kept before owners were recorded (in JWT mode too) is rated by its id, which only the person who
    was given it holds, never by its trace id; before, its own asker got "no answer is known"."""
    path = tmp_path / "answers.sqlite3"
    with sqlite3.connect(path) as db:  # as a release without owners wrote it
        db.execute(
            "CREATE TABLE answers (answer_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, turn BLOB NOT NULL,"
            " backend TEXT NOT NULL, support REAL NOT NULL, no_answer INTEGER NOT NULL, created_ms INTEGER NOT NULL)"
        )
        db.execute("INSERT INTO answers VALUES (?, ?, ?, 'extractive', 1, 0, ?)", ("o" * 32, "t" * 32, b"", 1 << 62))
    store = FeedbackStore(path)
    try:
        done = generation_pb2.DoneEvent(answer_id="a" * 32, trace_id="b" * 32, backend="local")
        store.record_later("q", "alice's answer", [], done, owner="alice")
        for answer_id, trace_id in (("a" * 32, ""), ("", "b" * 32)):
            for stranger in ("bob", ""):
                with pytest.raises(UnknownAnswer):
                    await store.rate(answer_id, trace_id, "down", "", owner=stranger)
        assert (await store.rate("", "b" * 32, "up", "", owner="alice"))[1] == "a" * 32
        with pytest.raises(UnknownAnswer):
            await store.rate("", "t" * 32, "up", "", owner="alice")
        assert (await store.rate("o" * 32, "", "up", "", owner="alice"))[1] == "o" * 32
        assert (await store.rate("o" * 32, "", "up", ""))[1] == "o" * 32
    finally:
        store.close()


async def test_a_running_store_drops_answers_past_retention_and_rates_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers were dropped only when generation_svc started (a running one kept every answer, about 1 GB a day at
    4 answers/s), and one past retention could still be rated; one already rated stays, listed with its rating."""
    path = tmp_path / "answers.sqlite3"
    store = FeedbackStore(path)
    ids = [f"{n:032d}" for n in range(4)]
    try:
        for answer_id in ids[:3]:
            store.record_later("q", "an answer", [], generation_pb2.DoneEvent(answer_id=answer_id, trace_id=answer_id))
        await store.rate(ids[1], "", "up", "")
        past = int(time.time() * 1000) - (feedback_file.ANSWER_RETENTION_DAYS + 1) * 86_400_000
        with sqlite3.connect(path) as db:
            db.execute("UPDATE answers SET created_ms = ? WHERE answer_id IN (?, ?)", (past, ids[0], ids[1]))
        for answer_id in ids[:2]:  # never rated, and rated before: past retention both are unknown to a new rating
            with pytest.raises(UnknownAnswer):
                await store.rate(answer_id, "", "down", "")
        monkeypatch.setattr(feedback, "PRUNE_INTERVAL_S", 0.0)  # the hour since the store opened has passed
        store.record_later("q", "an answer", [], generation_pb2.DoneEvent(answer_id=ids[3], trace_id=ids[3]))
        items, counts = await store.list()
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        kept = {row[0] for row in db.execute("SELECT answer_id FROM answers")}
    assert kept == set(ids[1:])
    assert [item.answer_id for item in items] == [ids[1]] and counts.up == 1


async def test_a_file_laid_out_by_a_later_release_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    FeedbackStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.execute("ALTER TABLE answers ADD COLUMN later TEXT")
    store = FeedbackStore(path)
    try:
        store.record_later("q", "an answer", [], generation_pb2.DoneEvent(answer_id="a" * 32, trace_id="b" * 32))
        with pytest.raises(FeedbackUnavailable, match="laid out by a later Like-Opt"):
            await store.rate("a" * 32, "", "up", "")
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone() == (0,)


async def test_pump_ratings_quoted_from_passages_without_full_stops_are_supported() -> None:
    """Each passage is one sentence with no full stop; the answer quotes them and cites each for its own."""
    contexts = [
        retrieval_pb2.SearchHit(doc_id=name, chunk_id=f"{name}#0", title=name, text=text)
        for name, text in [
            ("alpha", "The Alpha pump is rated at 40 bar maximum pressure"),
            ("beta", "The Beta pump is rated at 55 bar maximum pressure"),
            ("gamma", "model: Gamma pump\nmaximum pressure: 70 bar"),  # a table row
        ]
    ]
    request = generation_pb2.GenerateRequest(
        query="What maximum pressure are the Alpha, Beta and Gamma pumps rated at?", contexts=contexts
    )
    async with generation_server(ExtractiveBackend()) as h:
        events = [e async for e in h.stub.Generate(request)]
    assert [(c.n, c.supported) for c in citations(events)] == [(1, True), (2, True), (3, True)]
    assert events[-1].done.support == 1.0


async def test_feedback_pages_by_the_last_id_and_the_export_reads_every_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past one page (1,000 ratings) `likeopt eval --from-feedback` used to stop; pages follow before_feedback_id."""
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    for n in range(5):
        done = generation_pb2.DoneEvent(answer_id=f"{n:032d}", trace_id=f"{n + 50:032d}", backend="extractive")
        store.record_later(f"question {n}", "an answer", [], done)
        await store.rate(f"{n:032d}", "", "down" if n % 2 else "up", "")
    monkeypatch.setattr(answer_eval, "LIST_LIMIT", Range("limit", 1, 2, 2))
    try:
        async with generation_server(ExtractiveBackend(), feedback=store, api_key="k") as h:
            key = (("authorization", "Bearer k"),)
            second = await h.stub.ListFeedback(
                generation_pb2.ListFeedbackRequest(limit=2, before_feedback_id=4), metadata=key
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await h.stub.ListFeedback(generation_pb2.ListFeedbackRequest(before_feedback_id=-1), metadata=key)
            address = h.address
            exported = await asyncio.to_thread(answer_eval.feedback_cases, address, "k")
            ups = await asyncio.to_thread(answer_eval.feedback_cases, address, "k", "up")
    finally:
        store.close()
    assert [item.question for item in second.items] == ["question 2", "question 1"]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [case["question"] for case in exported] == [f"question {n}" for n in (4, 3, 2, 1, 0)]
    assert [case["question"] for case in ups] == ["question 4", "question 2", "question 0"]
