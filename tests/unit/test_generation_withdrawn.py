"""A stored conversation read back shows no passage of a document its reader may no longer read (its access list
changed, or it was deleted): GetConversation withholds the citation's title and text and the answer that cited
it, and a follow-up's prompt and search see nothing of that turn. One ListDocuments per read says what is still
readable; when retrieval_svc cannot say, nothing is shown."""

from __future__ import annotations

import socket

import grpc
import pytest

from generation_svc.backends import Turn
from generation_svc.conversations import cited_documents, history_of, withheld
from generation_svc.semantic_cache import SemanticIndex
from likeopt.v1 import generation_pb2, retrieval_pb2_grpc
from tests.unit.test_generation_harness import CORPUS, Harness, generation_server
from tests.unit.test_generation_service import ScriptedBackend, stored_conversation

ENVOY = "Which port does Envoy listen on?"
CACHE = "How does the answer cache keep answers in Redis?"


def cited(n: int, doc_id: str) -> generation_pb2.CitationEvent:
    return generation_pb2.CitationEvent(
        n=n, doc_id=doc_id, chunk_id=f"{doc_id}#0", title=doc_id.title(), text=CORPUS[doc_id], supported=True
    )


def stored() -> generation_pb2.Conversation:
    """Two turns: the first cites envoy.md and cache.md, the second cache.md alone."""
    return generation_pb2.Conversation(
        conversation_id="c1",
        turns=[
            generation_pb2.Turn(
                question=ENVOY, answer="8080 [1], cached [2].", citations=[cited(1, "envoy.md"), cited(2, "cache.md")]
            ),
            generation_pb2.Turn(question=CACHE, answer="In Redis [1].", citations=[cited(1, "cache.md")]),
        ],
    )


def test_a_citation_of_an_unreadable_document_loses_its_passage_and_its_turn_the_answer() -> None:
    conversation = stored()
    shown = withheld(conversation, {"cache.md"})
    first, second = shown.turns
    gone = first.citations[0]
    assert gone.withdrawn and gone.title == gone.text == "" and (gone.n, gone.doc_id) == (1, "envoy.md")
    assert gone.chunk_id == "envoy.md#0" and gone.supported
    assert first.withdrawn and first.answer == "" and first.question == ENVOY
    assert not first.citations[1].withdrawn and first.citations[1].text == CORPUS["cache.md"]
    assert not second.withdrawn and second == conversation.turns[1]
    assert conversation == stored()  # the stored copy is left whole


def test_every_cited_document_is_asked_about_once_and_readable_ones_are_left_as_they_are() -> None:
    assert cited_documents(stored()) == ["envoy.md", "cache.md"]
    assert cited_documents(generation_pb2.Conversation(turns=[generation_pb2.Turn(question=ENVOY)])) == []
    assert withheld(stored(), {"envoy.md", "cache.md"}) == stored()


def test_a_withdrawn_turn_is_not_in_the_history_a_follow_up_sees() -> None:
    assert history_of(withheld(stored(), {"cache.md"})) == [Turn(CACHE, "In Redis [1].")]
    assert history_of(withheld(stored(), set())) == []


async def asked(h: Harness, backend: ScriptedBackend) -> str:
    """The conversation id of an answer citing envoy.md, the top hit for ENVOY."""
    events = await h.answer(ENVOY)
    assert [e.citation.doc_id for e in events if e.HasField("citation")] == ["envoy.md"]
    return events[-1].done.conversation_id


async def test_get_conversation_withholds_a_withdrawn_citation_in_one_listing_and_shows_it_again_when_readable() -> (
    None
):
    backend = ScriptedBackend(["It listens on 8080 [1]."])
    async with generation_server(backend) as h:
        conversation_id = await asked(h, backend)
        h.retrieval.withdrawn.add("envoy.md")
        hidden = await stored_conversation(h, conversation_id)
        listings = list(h.retrieval.listings)
        h.retrieval.withdrawn.clear()  # readable again (access given back)
        again = await stored_conversation(h, conversation_id)
    [turn] = hidden.turns
    [citation] = turn.citations
    assert turn.withdrawn and turn.answer == "" and turn.question == ENVOY
    assert citation.withdrawn and citation.title == citation.text == "" and citation.doc_id == "envoy.md"
    assert "8080" not in str(hidden)
    assert listings == [["envoy.md"]]  # one call for the whole conversation
    assert not again.turns[0].withdrawn and again.turns[0].citations[0].text == CORPUS["envoy.md"]


async def test_a_follow_up_neither_prompts_with_nor_searches_by_a_withdrawn_turn() -> None:
    backend = ScriptedBackend(["It listens on 8080 [1]."])
    async with generation_server(backend) as h:
        conversation_id = await asked(h, backend)
        await h.answer("and its admin port?", conversation_id=conversation_id, turn_id="t1")
        assert backend.calls[-1][1] == [Turn(ENVOY, "It listens on 8080 [1].")]  # the premise: it is the history
        h.retrieval.withdrawn.add("envoy.md")
        await h.answer("and what about its cost?", conversation_id=conversation_id)
        await h.answer("and who reads it?", conversation_id=conversation_id, after_turn_id="t1")
    assert backend.calls[-2][1] == backend.calls[-1][1] == []  # continued, or branched off (previous_response_id)
    assert h.retrieval.queries[-2] == "and what about its cost?"


async def test_an_answer_citing_nothing_is_withheld_once_a_document_it_was_given_is_no_longer_readable() -> None:
    """A model that cites nothing (or an answer cut short by a stop sequence before its first marker) still repeats
    the passages it was given: its turn keeps their documents, and one its reader may no longer read withholds the
    answer, in the conversation read back and in a follow-up's prompt, as a withdrawn citation does."""
    backend = ScriptedBackend(["It listens on 8080."])
    async with generation_server(backend) as h:
        events = await h.answer(ENVOY)
        assert not [e for e in events if e.HasField("citation")]  # the premise: nothing cited
        conversation_id = events[-1].done.conversation_id
        shown = await stored_conversation(h, conversation_id)
        h.retrieval.withdrawn.add("envoy.md")
        hidden = await stored_conversation(h, conversation_id)
        await h.answer("and its admin port?", conversation_id=conversation_id)
    assert shown.turns[0].answer == "It listens on 8080."  # the premise: readable, it is shown
    [turn] = hidden.turns
    assert turn.withdrawn and turn.answer == "" and turn.question == ENVOY
    assert "8080" not in str(hidden) and "envoy.md" not in str(hidden)
    assert backend.calls[-1][1] == []
    assert list(shown.turns[0].source_ids) == ["envoy.md"]


async def test_an_answer_replayed_for_a_similar_question_is_withheld_with_the_documents_it_was_first_given() -> None:
    """The semantic cache replays an answer for a similar question whose search found other documents: its turn kept
    only those, so the replayed answer, citing nothing, stayed shown once the documents it came from were hidden."""
    backend = ScriptedBackend(["It listens on 8080."])
    first = "Which port does Envoy listen on, and the cache?"  # finds envoy.md first
    similar = "Which port does Envoy listen on, and the cache that keeps complete answers in Redis?"  # cache.md
    async with generation_server(backend, semantic=SemanticIndex(threshold=0.6)) as h:
        await h.answer(first, top_k=1)
        replayed = await h.answer(similar, top_k=1)
        conversation_id = replayed[-1].done.conversation_id
        h.retrieval.withdrawn.add("envoy.md")
        hidden = await stored_conversation(h, conversation_id)
    assert [hit.doc_id for hit in replayed[0].retrieval.hits] == ["cache.md"] and replayed[-1].done.cached
    [turn] = hidden.turns
    assert turn.withdrawn and turn.answer == "" and "8080" not in str(hidden), hidden
    assert list(replayed[-1].done.source_ids) == ["envoy.md"] and len(backend.calls) == 1


def nowhere() -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_when_retrieval_svc_cannot_say_what_is_readable_no_stored_turn_is_shown() -> None:
    backend = ScriptedBackend(["It listens on 8080 [1]."])
    async with generation_server(backend) as h, grpc.aio.insecure_channel(nowhere()) as channel:
        conversation_id = await asked(h, backend)
        small_talk = (await h.answer("hi"))[-1].done.conversation_id
        h.servicer.retrieval = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stored_conversation(h, conversation_id)
        uncited = await stored_conversation(h, small_talk)  # nothing cited: nothing to ask
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failed.value.details() == (
        "the cited documents cannot be checked now: retrieval_svc cannot be reached now; try again shortly"
    )
    assert [t.question for t in uncited.turns] == ["hi"]
