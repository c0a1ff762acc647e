"""A chat stream resumed with Last-Event-ID: continued only when the answer is the one the client has."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from gateway.routes.chat import answer_frames
from generation_svc.extractive import ExtractiveBackend
from likeopt.runtime.contract import REPLAYABLE_BACKENDS
from likeopt.v1 import generation_pb2

Event = generation_pb2.AnswerEvent


class Call:
    """Stands in for a gRPC Answer call: its events, then the end."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        for event in self.events:
            yield event

    def cancel(self) -> None:
        self.cancelled = True


def answer(backend: str, cached: bool = False, another_question: bool = False) -> list[Event]:
    return [
        Event(retrieval=generation_pb2.RetrievalEvent(conversation_id="c", another_question=another_question)),
        Event(delta=generation_pb2.DeltaEvent(text="[1] The Zorblax pump")),
        Event(delta=generation_pb2.DeltaEvent(text=" runs at 40 bar.")),
        Event(citation=generation_pb2.CitationEvent(n=1, doc_id="zorblax")),
        Event(done=generation_pb2.DoneEvent(backend=backend, cached=cached)),
    ]


async def frames(events: list[Event], skip: int) -> list[tuple[int, str, dict[str, object]]]:
    """(id, event, data) of each frame sent."""
    sent = []
    async for frame in answer_frames(Call(events), 0.0, skip):
        lines = dict(line.split(": ", 1) for line in frame.decode().strip().splitlines())
        sent.append((int(lines["id"]), lines["event"], json.loads(lines["data"])))
    return sent


async def test_a_models_answer_written_anew_is_sent_whole_and_marked_restarted_never_spliced() -> None:
    sent = await frames(answer("local"), skip=2)
    assert [(i, kind) for i, kind, _ in sent] == [
        (1, "retrieval"),
        (2, "delta"),
        (3, "delta"),
        (4, "citation"),
        (5, "done"),
    ]
    assert sent[0][2]["restarted"] is True


async def test_an_answer_replayed_from_the_cache_or_by_the_extractive_backend_continues_after_the_last_event() -> None:
    for replayed in (answer("local", cached=True), answer("extractive")):
        sent = await frames(replayed, skip=2)
        assert [(i, kind) for i, kind, _ in sent] == [(3, "delta"), (4, "citation"), (5, "done")]
    assert ExtractiveBackend.name in REPLAYABLE_BACKENDS


async def test_an_answer_to_another_question_and_a_first_request_are_sent_whole_as_they_come() -> None:
    for events, skip in ((answer("local", another_question=True), 2), (answer("local"), 0)):
        sent = await frames(events, skip)
        assert [i for i, _, _ in sent] == [1, 2, 3, 4, 5] and "restarted" not in sent[0][2]
