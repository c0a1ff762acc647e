"""Answer with caller-kept history (AnswerRequest.history): what OpenAI-style clients send instead of an id."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from generation_svc.backends import Turn
from generation_svc.conversations import MAX_TURNS
from generation_svc.extractive import ExtractiveBackend
from likeopt.caching.cache_client import CacheUnreachable
from likeopt.v1 import generation_pb2
from tests.unit.test_generation_harness import FakeCache, generation_server
from tests.unit.test_generation_service import ScriptedBackend


def turn(question: str, answer: str) -> generation_pb2.Turn:
    return generation_pb2.Turn(question=question, answer=answer)


async def test_sent_history_is_the_conversation_and_the_answer_is_stored_under_a_new_id() -> None:
    backend = ScriptedBackend(["It costs little [1]."])
    history = [turn("How does the answer cache work?", "It keeps answers [1].")]
    async with generation_server(backend) as h:
        events = await h.answer("and what about its cost?", history=history)
        conversation_id = events[-1].done.conversation_id
        stored = await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=conversation_id))
    question, seen = backend.calls[-1]
    assert question == "and what about its cost?"
    assert seen == [Turn("How does the answer cache work?", "It keeps answers [1].")]
    assert "cache" in h.retrieval.queries[-1]  # the follow-up borrowed the earlier question's words
    assert [t.question for t in stored.turns] == ["How does the answer cache work?", "and what about its cost?"]


async def test_sent_history_wins_over_stored_turns_and_keeps_the_given_id() -> None:
    backend = ScriptedBackend(["Answer [1]."])
    async with generation_server(backend) as h:
        first = await h.answer("How does the answer cache work?")
        conversation_id = first[-1].done.conversation_id
        edited = [turn("Which port does Envoy listen on?", "8080 [1].")]
        second = await h.answer("and its admin port?", conversation_id=conversation_id, history=edited)
    assert second[-1].done.conversation_id == conversation_id
    assert backend.calls[-1][1] == [Turn("Which port does Envoy listen on?", "8080 [1].")]


async def test_only_the_last_turns_of_a_long_history_count() -> None:
    backend = ScriptedBackend(["Answer [1]."])
    history = [turn(f"question {i}", f"answer {i}") for i in range(MAX_TURNS + 4)]
    async with generation_server(backend) as h:
        await h.answer("How does the answer cache work?", history=history)
    seen = backend.calls[-1][1]
    assert len(seen) == MAX_TURNS and seen[-1] == Turn(f"question {MAX_TURNS + 3}", f"answer {MAX_TURNS + 3}")


async def test_a_different_history_is_a_different_cached_answer() -> None:
    backend = ScriptedBackend(["Answer [1]."])
    async with generation_server(backend) as h:
        await h.answer("and its cost?", history=[turn("How does the answer cache work?", "It keeps answers.")])
        await h.answer("and its cost?", history=[turn("Which port does Envoy listen on?", "8080.")])
        repeat = await h.answer("and its cost?", history=[turn("Which port does Envoy listen on?", "8080.")])
    assert len(backend.calls) == 2 and repeat[-1].done.cached


class LaggingCache(FakeCache):
    """A cache whose background writes have not landed yet (as on a busy cache_svc); awaited ones have."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: list[tuple[str, str, bytes]] = []

    def set_later(self, namespace: str, key: str, value: bytes, ttl_s: int = 0) -> None:
        self.in_flight.append((namespace, key, value))


async def test_a_follow_up_sent_the_moment_an_answer_is_done_finds_its_turn() -> None:
    """The turn was saved in the background: a follow-up loaded before it landed started the conversation afresh
    under the same id, and saving that wiped the earlier turns."""
    async with generation_server(ExtractiveBackend()) as h:
        h.servicer.conversations.cache = lagging = LaggingCache()
        first = await h.answer("How does the answer cache work?")
        conversation_id = first[-1].done.conversation_id
        await h.answer("and what about its cost?", conversation_id=conversation_id)
        stored = await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=conversation_id))
    assert [t.question for t in stored.turns] == ["How does the answer cache work?", "and what about its cost?"]
    assert not lagging.in_flight


async def test_questions_on_one_conversation_at_once_each_keep_their_turn() -> None:
    """Each saved its own copy of the conversation as loaded, and the last write won: turns were lost."""
    async with generation_server(ScriptedBackend(["Envoy listens on port 8080 [1]."], delay=0.01)) as h:
        first = await h.answer("Which port does Envoy listen on?")
        conversation_id = first[-1].done.conversation_id
        questions = [f"and question number {n}?" for n in range(4)]
        await asyncio.gather(*(h.answer(q, conversation_id=conversation_id) for q in questions))
        stored = await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=conversation_id))
        assert len(h.servicer.turn_locks) == 0  # kept only while held
    assert sorted(t.question for t in stored.turns[1:]) == questions and len(stored.turns) == 5


async def test_a_conversation_deleted_while_a_question_is_answered_stays_deleted() -> None:
    """The answer's save came after the deletion and brought every turn back."""
    backend = ScriptedBackend(["Envoy listens on port 8080 [1]."], delay=0.3)
    async with generation_server(backend) as h:
        first = await h.answer("Which port does Envoy listen on?")
        conversation_id = first[-1].done.conversation_id
        backend.started.clear()
        asked = asyncio.create_task(h.answer("and its admin port?", conversation_id=conversation_id))
        await backend.started.wait()
        request = generation_pb2.DeleteConversationRequest(conversation_id=conversation_id)
        await h.stub.DeleteConversation(request)
        await asked
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=conversation_id))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_question_asked_the_moment_the_last_was_stopped_sees_that_turn() -> None:
    """The stopped turn was saved in the background, after the lock let the next question load the conversation:
    the next question missed it, and one of the two turns was lost."""
    backend = ScriptedBackend(["It keeps ", "answers in Redis."], delay=0.05)
    async with generation_server(backend) as h:
        h.servicer.conversations.cache = lagging = LaggingCache()
        first = await h.answer("How does the answer cache work?")
        conversation_id = first[-1].done.conversation_id
        backend.stall = True
        call = h.stub.Answer(
            generation_pb2.AnswerRequest(query="and what does it cost?", conversation_id=conversation_id), timeout=30
        )
        await call.read()
        await call.read()  # the first words, then Stop
        call.cancel()
        backend.stall = False
        await h.answer("and where is it kept?", conversation_id=conversation_id)
        stored = await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=conversation_id))
    assert [t.question for t in stored.turns][-2:] == ["and what does it cost?", "and where is it kept?"]
    assert [t.question for t in backend.calls[-1][1]][-1] == "and what does it cost?" and not lagging.in_flight


class UnreachableLookups(FakeCache):
    """A cache whose lookups fail (cache_svc slow or away) while its writes land."""

    async def lookup(self, namespace: str, key: str) -> bytes | None:
        raise CacheUnreachable("DEADLINE_EXCEEDED")


async def test_a_conversation_that_cannot_be_loaded_is_answered_but_not_saved_over() -> None:
    """A lookup that timed out read as a miss: the question started the conversation afresh, and saving that
    replaced every stored turn with its one."""
    async with generation_server(ScriptedBackend(["Envoy listens on port 8080 [1]."])) as h:
        first = await h.answer("Which port does Envoy listen on?")
        conversation_id = first[-1].done.conversation_id
        kept = dict(h.servicer.conversations.cache.values)
        h.servicer.conversations.cache = unreachable = UnreachableLookups()
        unreachable.values = kept
        answered = await h.answer("and its admin port?", conversation_id=conversation_id)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.stub.GetConversation(generation_pb2.GetConversationRequest(conversation_id=conversation_id))
    assert answered[-1].HasField("done") and unreachable.values == kept  # the stored turn is untouched
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # not "no conversation" (404)
