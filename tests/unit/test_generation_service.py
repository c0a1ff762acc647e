"""GenerationService over a real in-process gRPC server: events, caching, conversations, deadlines, cancel."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from generation_svc.backends import AnswerFailed, Passage, Turn, Usage
from generation_svc.extractive import ExtractiveBackend, compose, count_pieces, standalone
from generation_svc.feedback import FeedbackStore, UnknownAnswer
from generation_svc.small_talk import ABOUT, GREETING, THANKS, small_talk_reply
from likeopt.v1 import generation_pb2, retrieval_pb2, retrieval_pb2_grpc
from tests.unit.test_generation_harness import collect, generation_server, text_of


class ScriptedBackend:
    """Yields the given pieces (each after `delay` seconds), then, if `stall`, waits forever."""

    name = "scripted"
    fingerprint = "scripted/1"

    def __init__(self, pieces: list[str], delay: float = 0.0, stall: bool = False) -> None:
        self.pieces = pieces
        self.delay = delay
        self.stall = stall
        self.calls: list[tuple[str, list[Turn]]] = []
        self.closed = asyncio.Event()
        self.started = asyncio.Event()

    async def stream(
        self, question: str, passages: list[Passage], history: list[Turn], usage: Usage, limit: int = 0
    ) -> AsyncIterator[str]:
        self.calls.append((question, history))
        self.started.set()
        try:
            for piece in self.pieces:
                await asyncio.sleep(self.delay)
                yield piece
            if self.stall:
                await asyncio.Event().wait()
            usage.completion_tokens = len(self.pieces)
        finally:
            self.closed.set()


class FailingBackend:
    name = "failing"
    fingerprint = "failing/1"

    def __init__(self, failure: AnswerFailed) -> None:
        self.failure = failure

    async def stream(
        self, question: str, passages: list[Passage], history: list[Turn], usage: Usage, limit: int = 0
    ) -> AsyncIterator[str]:
        raise self.failure
        yield ""  # pragma: no cover - makes this an async generator


def kinds(events: list[generation_pb2.AnswerEvent]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


async def test_answer_streams_retrieval_deltas_citations_then_done() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        events = await h.answer("Which port does Envoy listen on?", top_k=2)
    assert kinds(events)[0] == "retrieval" and kinds(events)[-1] == "done"
    assert events[0].retrieval.hits[0].doc_id == "envoy.md"
    assert "8080" in text_of(events) and "[1]" in text_of(events)
    citations = [e.citation for e in events if e.HasField("citation")]
    assert [c.n for c in citations] == [1] and citations[0].doc_id == "envoy.md"
    done = events[-1].done
    assert done.backend == "extractive" and done.finish_reason == "stop" and not done.cached
    assert done.completion_tokens == count_pieces(text_of(events)) > 0
    assert done.prompt_tokens > done.completion_tokens, "it read the question and both passages"
    assert len(done.conversation_id) == 32
    assert done.timings.total_ms >= done.timings.first_token_ms >= done.timings.retrieval_ms > 0


async def test_the_least_index_version_asked_for_reaches_the_search() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        await h.answer("Which port does Envoy listen on?", min_index_version=7)
        await h.answer("What does the gateway do?")
    assert h.retrieval.least_versions == [7, 0]


async def test_invalid_requests_end_with_an_error_event_and_status() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        for request in (
            generation_pb2.AnswerRequest(query="  "),
            generation_pb2.AnswerRequest(query="ok", top_k=99),
            generation_pb2.AnswerRequest(query="ok", conversation_id="../etc"),
            generation_pb2.AnswerRequest(query="ok", turn_id="a b"),
            generation_pb2.AnswerRequest(query="ok", after_turn_id="x" * 65),
        ):
            call = h.stub.Answer(request, timeout=10)
            events = await collect(call)
            assert kinds(events) == ["error"] and events[0].error.code == "INVALID_ARGUMENT"
            assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_repeated_question_is_replayed_from_the_answer_cache() -> None:
    backend = ScriptedBackend(["Envoy uses ", "port 8080 [1]."])
    async with generation_server(backend) as h:
        first = await h.answer("Which port does Envoy listen on?")
        second = await h.answer("  which PORT does envoy listen on?  ")
        assert len(backend.calls) == 1
        assert second[-1].done.cached and not first[-1].done.cached
        assert text_of(second) == text_of(first)
        assert [e.citation for e in second if e.HasField("citation")] == [
            e.citation for e in first if e.HasField("citation")
        ]
        assert second[-1].done.conversation_id != first[-1].done.conversation_id
        h.retrieval.index_version += 1  # an ingest: the cached answer must not be served
        third = await h.answer("Which port does Envoy listen on?")
    assert not third[-1].done.cached and len(backend.calls) == 2


async def test_concurrent_identical_questions_generate_once_and_all_stream_it() -> None:
    backend = ScriptedBackend(["one ", "two ", "three [1]"], delay=0.01)
    async with generation_server(backend) as h:
        answers = await asyncio.gather(*(h.answer("Which port does Envoy listen on?") for _ in range(5)))
    assert len(backend.calls) == 1
    assert {text_of(a) for a in answers} == {"one two three [1]"}
    assert all(kinds(a)[-1] == "done" for a in answers)


async def test_a_follow_up_sees_the_earlier_turn_and_retrieves_with_its_words() -> None:
    backend = ScriptedBackend(["It keeps answers [1]."])
    async with generation_server(backend) as h:
        first = await h.answer("How does the answer cache work?")
        conversation_id = first[-1].done.conversation_id
        second = await h.answer("and what about its cost?", conversation_id=conversation_id)
        stored = await stored_conversation(h, conversation_id)
    assert second[-1].done.conversation_id == conversation_id
    question, history = backend.calls[-1]
    assert question == "and what about its cost?"
    assert history == [Turn("How does the answer cache work?", "It keeps answers [1].")]
    rewritten = h.retrieval.queries[-1]
    assert rewritten.startswith("and what about its cost?") and "cache" in rewritten
    assert second[0].retrieval.hits[0].doc_id == "costs.md"
    assert [t.question for t in stored.turns] == ["How does the answer cache work?", "and what about its cost?"]
    assert stored.turns[0].citations[0].doc_id == first[0].retrieval.hits[0].doc_id


async def test_unknown_conversation_is_not_found() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stored_conversation(h, "nope")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_stopped_answer_is_kept_as_an_interrupted_turn_of_the_conversation_named_from_the_start() -> None:
    backend = ScriptedBackend(["It keeps ", "answers ", "in Redis [1]."], delay=0.2)
    async with generation_server(backend) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="How does the answer cache work?"), timeout=30)
        first = await call.read()
        await call.read()  # the first words
        call.cancel()
        conversation_id = first.retrieval.conversation_id
        request = generation_pb2.GetConversationRequest(conversation_id=conversation_id)
        stored = await until_stored(h.stub, request)
        await h.answer("and what about its cost?", conversation_id=conversation_id)
    assert conversation_id
    [turn] = stored.turns
    assert (turn.question, turn.interrupted) == ("How does the answer cache work?", True)
    assert turn.answer.startswith("It keeps ") and not turn.answer.endswith("[1].")  # as far as it went
    assert backend.calls[-1][1] == [Turn(turn.question, turn.answer)]  # the follow-up saw it


async def test_a_stopped_answer_keeps_no_marker_whose_citation_had_not_come_out() -> None:
    """Stopped between a marker and its citation, a turn was stored as "[1]" citing nothing."""
    backend = ScriptedBackend(["[1] It keeps ", "answers [2] in Redis."], delay=0.2, stall=True)
    async with generation_server(backend) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="How does the answer cache work?"), timeout=30)
        first = await call.read()
        await call.read()
        call.cancel()
        request = generation_pb2.GetConversationRequest(conversation_id=first.retrieval.conversation_id)
        stored = await until_stored(h.stub, request)
    [turn] = stored.turns
    assert turn.interrupted and "[" not in turn.answer and turn.answer.strip().startswith("It keeps")


async def test_a_question_asked_again_straight_after_itself_replaces_its_turn_and_is_replayed() -> None:
    """As a stream resumed with Last-Event-ID asks it: the first answer again, and the question stored once."""
    backend = ScriptedBackend(["It keeps answers [1]."])
    async with generation_server(backend) as h:
        first = await h.answer("How does the answer cache work?")
        conversation_id = first[-1].done.conversation_id
        again = await h.answer("How does the answer cache work?", conversation_id=conversation_id)
        stored = await stored_conversation(h, conversation_id)
    assert again[-1].done.cached and text_of(again) == text_of(first)
    assert len(backend.calls) == 1
    assert [t.question for t in stored.turns] == ["How does the answer cache work?"]


async def test_continuing_after_an_earlier_turn_branches_and_leaves_the_conversation_as_it_was() -> None:
    """As OpenAI's previous_response_id naming an older response: the answer sees the turns up to that one."""
    backend = ScriptedBackend(["It keeps answers [1]."])
    cache_question, cost, shared, size = (
        "How does the answer cache work?",
        "and its cost?",
        "and is it shared?",
        "size?",
    )
    async with generation_server(backend) as h:
        first = await h.answer(cache_question, turn_id="t1")
        conversation_id = first[-1].done.conversation_id
        await h.answer(cost, conversation_id=conversation_id, turn_id="t2", after_turn_id="t1")
        branch = await h.answer(shared, conversation_id=conversation_id, turn_id="t3", after_turn_id="t1")
        seen_by_branch = backend.calls[-1][1]
        await h.answer(size, conversation_id=conversation_id, turn_id="t4", after_turn_id="t2")
        unknown = [
            h.stub.Answer(generation_pb2.AnswerRequest(query=size, conversation_id=c, after_turn_id=t), timeout=10)
            for c, t in ((conversation_id, "never-given"), ("no-such-conversation", "t1"))
        ]
        refusals = [[*kinds(await collect(call)), await call.code()] for call in unknown]
        stored = await stored_conversation(h, conversation_id)
        branch_id = branch[0].retrieval.conversation_id
        branched = await stored_conversation(h, branch_id)
    assert branch_id not in ("", conversation_id) and branch[-1].done.conversation_id == branch_id
    assert seen_by_branch == [Turn(cache_question, "It keeps answers [1].")]  # not the turn about its cost
    assert [(t.question, t.turn_id) for t in branched.turns] == [(cache_question, "t1"), (shared, "t3")]
    assert [(t.question, t.turn_id) for t in stored.turns] == [(cache_question, "t1"), (cost, "t2"), (size, "t4")]
    assert refusals == [["error", grpc.StatusCode.NOT_FOUND]] * 2  # a turn no conversation of the caller's has


async def test_an_ephemeral_answer_sees_the_conversation_but_adds_nothing_to_it(tmp_path: Path) -> None:
    """As the Responses API's store: false: no turn is kept, whole or stopped, and no answer for feedback."""
    backend = ScriptedBackend(["It keeps ", "answers [1]."], delay=0.05)
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    try:
        async with generation_server(backend, feedback=store) as h:
            alone = await h.answer("How does the answer cache work?", ephemeral=True)
            with pytest.raises(grpc.aio.AioRpcError) as never_stored:
                await stored_conversation(h, alone[-1].done.conversation_id)
            first = await h.answer("How does the answer cache work?")
            conversation_id = first[-1].done.conversation_id
            follow_up = await h.answer("and its cost?", conversation_id=conversation_id, ephemeral=True)
            stopped = h.stub.Answer(
                generation_pb2.AnswerRequest(query="and its size?", conversation_id=conversation_id, ephemeral=True)
            )
            await stopped.read()
            await stopped.read()
            stopped.cancel()
            await asyncio.sleep(0.3)
            stored = await stored_conversation(h, conversation_id)
        with pytest.raises(UnknownAnswer):
            await store.rate(follow_up[-1].done.answer_id, "", "up", "")
    finally:
        store.close()
    assert never_stored.value.code() == grpc.StatusCode.NOT_FOUND
    assert backend.calls[1][1] == [Turn("How does the answer cache work?", "It keeps answers [1].")]
    assert [t.question for t in stored.turns] == ["How does the answer cache work?"]


async def test_an_unreachable_retrieval_svc_is_named_without_grpcs_words_about_the_connection() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{probe.getsockname()[1]}"
    async with generation_server(ExtractiveBackend()) as h, grpc.aio.insecure_channel(nowhere) as channel:
        h.servicer.retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await h.answer("Which port does Envoy listen on?")
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failed.value.details() == "retrieval_svc cannot be reached now; try again shortly"


async def stored_conversation(h: Any, conversation_id: str) -> generation_pb2.Conversation:
    return await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=conversation_id))


async def until_stored(stub: Any, request: generation_pb2.GetConversationRequest) -> generation_pb2.Conversation:
    """The conversation once the server, told of the cancel, has stored it (bounded)."""
    for _ in range(200):
        try:
            return await stub.GetConversation(request)
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.01)
    raise AssertionError("the stopped turn was never stored")


async def test_a_deleted_conversation_is_forgotten_and_its_id_starts_afresh() -> None:
    backend = ScriptedBackend(["It keeps answers [1]."])
    async with generation_server(backend) as h:
        first = await h.answer("How does the answer cache work?")
        conversation_id = first[-1].done.conversation_id
        request = generation_pb2.DeleteConversationRequest(conversation_id=conversation_id)
        reply = await h.stub.DeleteConversation(request)
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await h.stub.DeleteConversation(request)
        with pytest.raises(grpc.aio.AioRpcError) as read:
            await stored_conversation(h, conversation_id)
        await h.answer("and what about its cost?", conversation_id=conversation_id)
    assert reply.conversation_id == conversation_id
    assert again.value.code() == read.value.code() == grpc.StatusCode.NOT_FOUND
    assert backend.calls[-1][1] == []  # the follow-up saw no earlier turn


async def test_deleting_a_malformed_conversation_id_is_invalid_argument() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await h.stub.DeleteConversation(generation_pb2.DeleteConversationRequest(conversation_id="../etc"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_stalled_backend_ends_with_deadline_exceeded() -> None:
    backend = ScriptedBackend(["partial "], stall=True)
    async with generation_server(backend, answer_timeout_s=0.5) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="Which port does Envoy listen on?"), timeout=30)
        events = await collect(call)
        assert kinds(events) == ["retrieval", "delta", "error"]
        assert events[-1].error.code == "DEADLINE_EXCEEDED"
        assert await call.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(backend.closed.wait(), 5)
        assert len(h.servicer.flights) == 0


async def test_the_callers_own_deadline_also_bounds_the_answer() -> None:
    backend = ScriptedBackend([], stall=True)
    async with generation_server(backend) as h:
        call = h.stub.Generate(
            generation_pb2.GenerateRequest(query="q", contexts=[retrieval_pb2.SearchHit(doc_id="d", text="t")]),
            timeout=1.0,
        )
        events = await collect(call)
        assert await call.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert kinds(events) in (["error"], [])
        await asyncio.wait_for(backend.closed.wait(), 5)


async def test_cancelling_the_call_closes_the_backend_stream() -> None:
    backend = ScriptedBackend(["a "] * 1000, delay=0.01)
    async with generation_server(backend) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="Which port does Envoy listen on?"), timeout=30)
        async for event in call:
            if event.HasField("delta"):
                break
        call.cancel()
        await asyncio.wait_for(backend.closed.wait(), 5)
        assert len(h.servicer.flights) == 0
        assert not h.cache.keys("answer"), "a cancelled answer must not be cached"


async def test_a_busy_backend_is_resource_exhausted_with_a_retry_hint() -> None:
    failure = AnswerFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", retry_after_s=2.5)
    async with generation_server(FailingBackend(failure)) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="Which port does Envoy listen on?"), timeout=10)
        events = await collect(call)
        assert events[-1].error.code == "RESOURCE_EXHAUSTED" and events[-1].error.retry_after_s == 2.5
        assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert ("retry-after", "3") in tuple(await call.trailing_metadata())


async def test_generate_cites_the_given_contexts() -> None:
    contexts = [retrieval_pb2.SearchHit(doc_id="a", title="A", text="Envoy listens on port 8080.")]
    async with generation_server(ExtractiveBackend()) as h:
        events = [
            e async for e in h.stub.Generate(generation_pb2.GenerateRequest(query="envoy port", contexts=contexts))
        ]
    assert kinds(events) == ["delta", "delta", "citation", "done"] or kinds(events)[-2:] == ["citation", "done"]
    assert events[-2].citation.doc_id == "a"


def test_the_extractive_backend_counts_words_and_punctuation_as_its_tokens() -> None:
    assert count_pieces("Envoy listens on 8080 [1].") == 8
    assert count_pieces("  ") == 0


async def test_max_tokens_shortens_the_answer_and_is_part_of_its_cache_key() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        short = await h.answer("Which port does Envoy listen on?", top_k=2, max_tokens=3)
        whole = await h.answer("Which port does Envoy listen on?", top_k=2)
        again = await h.answer("Which port does Envoy listen on?", top_k=2, max_tokens=3)
    assert count_pieces(text_of(short)) == 3 and short[-1].done.completion_tokens == 3
    assert short[-1].done.finish_reason == "length" and not short[-1].done.cached
    assert whole[-1].done.finish_reason == "stop" and not whole[-1].done.cached, "the cut answer was replayed"
    assert text_of(whole).startswith(text_of(short)) and len(text_of(whole)) > len(text_of(short))
    assert again[-1].done.cached and text_of(again) == text_of(short)


async def test_a_stop_sequence_ends_the_answer_and_its_citations_and_is_part_of_its_cache_key() -> None:
    question = "How does the cache work?"
    async with generation_server(ExtractiveBackend()) as h:
        stopped = await h.answer(question, top_k=3, stop=["Running"])
        whole = await h.answer(question, top_k=3)
        again = await h.answer(question, top_k=3, stop=["Running"])
        call = h.stub.Answer(generation_pb2.AnswerRequest(query=question, stop=list("abcde")), timeout=10)
        refused = await collect(call)
    cited = [[e.citation.n for e in events if e.HasField("citation")] for events in (stopped, whole)]
    assert cited == [[1], [1, 2]]
    assert text_of(stopped) == text_of(whole)[: text_of(whole).index("Running")]
    assert stopped[-1].done.finish_reason == "stop" and stopped[-1].done.support == 1.0
    assert not whole[-1].done.cached, "the stopped answer was replayed for the whole one"
    assert again[-1].done.cached and text_of(again) == text_of(stopped)
    assert kinds(refused) == ["error"] and "stop" in refused[0].error.message


async def test_a_negative_max_tokens_is_invalid() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        call = h.stub.Answer(generation_pb2.AnswerRequest(query="ok", max_tokens=-1), timeout=10)
        events = await collect(call)
        assert kinds(events) == ["error"] and "max_tokens" in events[0].error.message
        assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_limit_keeps_whole_cited_sentences_and_a_cut_one_keeps_its_marker() -> None:
    chosen = [("Envoy listens on port 8080 for every client.", 1), ("Its admin port is 9901.", 2)]
    assert compose(chosen) == ("Envoy listens on port 8080 for every client. [1] Its admin port is 9901. [2]", False)
    assert compose(chosen, 12) == ("Envoy listens on port 8080 for every client. [1]", True)
    assert compose(chosen, 6) == ("Envoy listens on [1]", True)
    assert compose(chosen, 2) == ("Envoy listens", True)  # no room for a marker
    for limit in range(1, 25):
        assert count_pieces(compose(chosen, limit)[0]) <= limit
    assert compose([], 3) == ("I found nothing", True) and compose([], 0)[1] is False


def test_an_extracted_sentence_drops_an_opening_that_leans_on_the_sentence_before() -> None:
    assert standalone("Moreover, gene expression rose.") == "Gene expression rose."
    assert standalone("However, mRNA levels fell.") == "mRNA levels fell."  # its case is meaningful
    assert standalone("Taken together, these data agree.") == "These data agree."
    assert standalone("Thus the end.") == "Thus the end." and standalone("However,") == "However,"


@pytest.mark.parametrize(
    ("sentence", "extracted"),
    [
        ("INTRODUCTION Low vitamin D is common.", "Low vitamin D is common."),
        ("DESIGN, SETTING, AND PARTICIPANTS A cohort of 200.", "A cohort of 200."),
        ("BACKGROUND & AIMS Moreover, fat rose.", "Fat rose."),
        ("RESULTS: We found it.", "We found it."),
        ("DNA Methylation rose.", "DNA Methylation rose."),  # an acronym opening the sentence stays
        ("NASA Scientists agree.", "NASA Scientists agree."),
        ("FUNDING UK Medical Research Council.", "FUNDING UK Medical Research Council."),
        ("RESULTS mRNA levels fell.", "RESULTS mRNA levels fell."),  # no sentence visibly starts after it
        ("HIV 16 cases.", "HIV 16 cases."),
    ],
)
def test_an_extracted_sentence_drops_a_section_heading_run_into_it(sentence: str, extracted: str) -> None:
    assert standalone(sentence) == extracted


@pytest.mark.parametrize(
    ("message", "reply"),
    [("hi", GREETING), ("Hello there! 👋", GREETING), ("THANKS!!", THANKS), ("What can you do?", ABOUT)],
)
def test_a_whole_message_of_small_talk_gets_its_reply(message: str, reply: str) -> None:
    assert small_talk_reply(message) == reply


@pytest.mark.parametrize("message", ["hi, which port does Envoy use?", "Hi-C", "help me find the cache settings"])
def test_a_question_that_opens_with_small_talk_is_searched(message: str) -> None:
    assert small_talk_reply(message) is None


async def test_a_greeting_is_answered_without_searching_or_citing() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        events = await h.answer("Hi!")
        searched = list(h.retrieval.queries)
    assert kinds(events) == ["retrieval", "delta", "done"] and not events[0].retrieval.hits
    assert text_of(events) == GREETING and events[-1].done.no_answer and events[-1].done.small_talk and not searched


async def test_a_reply_not_from_the_documents_keeps_to_the_callers_bounds_too() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        short = await h.answer("Hi!", max_tokens=1)
        stopped = await h.answer("Hi!", stop=[GREETING.split()[2]])
    assert text_of(short) == "Hello" and short[-1].done.finish_reason == "length"  # "!" is the second piece
    assert text_of(stopped) == GREETING[: GREETING.index(GREETING.split()[2])]
    assert stopped[-1].done.finish_reason == "stop" and stopped[-1].done.small_talk


async def test_a_greeting_turn_is_kept_in_the_transcript_but_not_in_the_next_answers_history() -> None:
    async with generation_server(ExtractiveBackend()) as h:
        hello = await h.answer("hello")
        conversation_id = hello[-1].done.conversation_id
        after_greeting = await h.answer("Which port does Envoy listen on?", conversation_id=conversation_id)
        fresh = await h.answer("Which port does Envoy listen on?")
        stored = await stored_conversation(h, conversation_id)
    assert [t.question for t in stored.turns] == ["hello", "Which port does Envoy listen on?"]
    assert fresh[-1].done.cached and text_of(fresh) == text_of(after_greeting), "the greeting split the cache"


async def test_a_bracketed_number_in_a_passage_is_not_copied_into_the_answer_as_a_citation() -> None:
    """The extractive answer quotes the sentence; its "[2]" is the document's own reference, not passage 2."""
    quinoa = "Earlier trials [2] found that quinoa lowers serum cholesterol in adults. See also [4, 5]."
    contexts = [
        retrieval_pb2.SearchHit(doc_id="quinoa", chunk_id="quinoa#0", title="Quinoa", text=quinoa),
        retrieval_pb2.SearchHit(doc_id="rice", chunk_id="rice#0", title="Rice", text="Rice is grown in paddies."),
    ]
    request = generation_pb2.GenerateRequest(query="Does quinoa lower cholesterol?", contexts=contexts)
    async with generation_server(ExtractiveBackend()) as h:
        events = [e async for e in h.stub.Generate(request)]
    assert text_of(events) == "Earlier trials (2) found that quinoa lowers serum cholesterol in adults. [1]"
    citations = [e.citation for e in events if e.HasField("citation")]
    assert [(c.n, c.supported) for c in citations] == [(1, True)]
    assert citations[0].text == quinoa  # shown as stored
    assert events[-1].done.support == 1.0
