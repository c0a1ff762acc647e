"""Which chat requests get one JSON reply, and how the answer's events become it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from gateway.chat_json import gathered_answer, prefers_json
from gateway.openai_api import first_event, whole_answer
from likeopt.v1 import generation_pb2, retrieval_pb2


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/json, text/event-stream;q=0.5", True),
        ("application/json, */*;q=0.1", True),
        ("", False),  # no preference: the stream, the contract's default
        ("*/*", False),
        ("text/event-stream", False),
        ("application/json, */*", False),  # a tie (axios's default) goes to the stream
        ("application/json, text/event-stream", False),
        ("application/json;q=0.5, text/event-stream", False),
        ("application/json;q=oops", False),
        ("text/*;q=0.9, application/json", True),
    ],
)
def test_json_only_when_ranked_above_everything_the_stream_satisfies(accept: str, json: bool) -> None:
    assert prefers_json(accept) is json


class Call:
    """An Answer call's stream of events, and whether the gateway cancelled it."""

    def __init__(self, events: list[generation_pb2.AnswerEvent]) -> None:
        self.events = events
        self.cancelled = False

    async def __aiter__(self) -> AsyncIterator[generation_pb2.AnswerEvent]:
        for event in self.events:
            yield event

    def cancel(self) -> None:
        self.cancelled = True


HIT = retrieval_pb2.SearchHit(doc_id="a.md", chunk_id="a.md#0", title="A", text="Alpha.", score=1.0)
CITATION = generation_pb2.CitationEvent(n=1, doc_id="a.md", chunk_id="a.md#0", title="A", text="Alpha.")


async def test_the_events_become_one_answer_with_its_hits_and_done_fields() -> None:
    call = Call(
        [
            generation_pb2.AnswerEvent(retrieval=generation_pb2.RetrievalEvent(hits=[HIT], index_version=7)),
            generation_pb2.AnswerEvent(delta=generation_pb2.DeltaEvent(text="Alpha ")),
            generation_pb2.AnswerEvent(delta=generation_pb2.DeltaEvent(text="it is. [1]")),
            generation_pb2.AnswerEvent(citation=CITATION),
            generation_pb2.AnswerEvent(
                done=generation_pb2.DoneEvent(conversation_id="c1", finish_reason="stop", citations=[CITATION])
            ),
        ]
    )
    reply = await gathered_answer(call, time.perf_counter())
    assert reply["answer"] == "Alpha it is. [1]"
    assert [h["doc_id"] for h in reply["hits"]] == ["a.md"] and reply["index_version"] == 7
    assert reply["conversation_id"] == "c1" and [c["n"] for c in reply["citations"]] == [1]
    assert call.cancelled


async def test_an_error_event_is_the_matching_http_error_and_a_stream_without_done_is_a_502() -> None:
    failed = Call(
        [
            generation_pb2.AnswerEvent(delta=generation_pb2.DeltaEvent(text="Half")),
            generation_pb2.AnswerEvent(error=generation_pb2.ErrorEvent(code="DEADLINE_EXCEEDED", message="too slow")),
        ]
    )
    with pytest.raises(Exception) as raised:
        await gathered_answer(failed, time.perf_counter())
    assert (raised.value.status, raised.value.code) == (504, "DEADLINE_EXCEEDED")  # type: ignore[attr-defined]
    opened = generation_pb2.RetrievalEvent(hits=[HIT], conversation_id="c1")
    half = [generation_pb2.AnswerEvent(retrieval=opened), generation_pb2.AnswerEvent(delta={"text": "Half"})]
    with pytest.raises(Exception) as cut:
        await gathered_answer(Call(half), time.perf_counter())
    assert cut.value.status == 502  # type: ignore[attr-defined]


async def test_a_busy_service_is_a_429_that_says_when_to_try_again() -> None:
    busy = generation_pb2.ErrorEvent(code="RESOURCE_EXHAUSTED", message="busy", retry_after_s=1.2)
    with pytest.raises(Exception) as raised:
        await gathered_answer(Call([generation_pb2.AnswerEvent(error=busy)]), time.perf_counter())
    assert raised.value.status == 429 and raised.value.headers == {"Retry-After": "2"}  # type: ignore[attr-defined]
    unknown = generation_pb2.ErrorEvent(code="SOMETHING_NEW", message="?")
    with pytest.raises(Exception) as odd:
        await gathered_answer(Call([generation_pb2.AnswerEvent(error=unknown)]), time.perf_counter())
    assert odd.value.status == 502 and odd.value.headers is None  # type: ignore[attr-defined]


def first_tokens_timed() -> float:
    return REGISTRY.get_sample_value("likeopt_chat_first_token_seconds_count") or 0.0


def answered(*texts: str) -> Call:
    opened = generation_pb2.AnswerEvent(retrieval=generation_pb2.RetrievalEvent(hits=[HIT], conversation_id="c1"))
    deltas = [generation_pb2.AnswerEvent(delta=generation_pb2.DeltaEvent(text=text)) for text in texts]
    done = generation_pb2.AnswerEvent(done=generation_pb2.DoneEvent(conversation_id="c1", finish_reason="stop"))
    return Call([opened, *deltas, done])


async def test_a_gathered_answer_times_its_first_text_once_as_a_streamed_one_does() -> None:
    # JSON replies (REST and OpenAI's non-streamed) used to leave likeopt_chat_first_token_seconds unobserved.
    before = first_tokens_timed()
    await gathered_answer(answered("", "Alpha ", "it is."), time.perf_counter())  # an empty delta is no text yet
    assert first_tokens_timed() == before + 1
    first, events = await first_event(answered("Beta."), time.perf_counter())
    await whole_answer(Call([]), first, events)
    assert first_tokens_timed() == before + 2
    await gathered_answer(answered(), time.perf_counter())  # no text at all: nothing to time
    assert first_tokens_timed() == before + 2
