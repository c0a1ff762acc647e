"""A streamed answer that fails after its 200 status is counted as such: the HTTP counter sees only the 200."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import REGISTRY

from gateway.openai_api import stream_frames
from gateway.openai_translate import ChunkLines
from gateway.routes.chat import answer_frames
from likeopt.v1 import generation_pb2
from tests.unit.test_gateway_resume import Call

Event = generation_pb2.AnswerEvent
RETRIEVAL = Event(retrieval=generation_pb2.RetrievalEvent(conversation_id="c"))


class FailingCall(Call):
    """An Answer call whose channel fails after its events."""

    async def _events(self) -> AsyncIterator[Event]:
        async for event in super()._events():
            yield event
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")


def stream_errors(route: str, code: str) -> float:
    return REGISTRY.get_sample_value("likeopt_http_stream_errors_total", {"route": route, "code": code}) or 0.0


async def test_chat_streams_that_end_in_an_error_are_counted_by_route_and_code() -> None:
    before = stream_errors("/api/v1/chat", "UNAVAILABLE"), stream_errors("/api/v1/chat", "DEADLINE_EXCEEDED")
    [frame async for frame in answer_frames(FailingCall([RETRIEVAL]), 0.0)]
    in_band = Event(error=generation_pb2.ErrorEvent(code="DEADLINE_EXCEEDED", message="took too long"))
    [frame async for frame in answer_frames(Call([RETRIEVAL, in_band]), 0.0)]
    after = stream_errors("/api/v1/chat", "UNAVAILABLE"), stream_errors("/api/v1/chat", "DEADLINE_EXCEEDED")
    assert after == (before[0] + 1, before[1] + 1)


async def test_openai_streams_that_end_in_an_error_are_counted_under_their_route() -> None:
    before = stream_errors("/v1/chat/completions", "UNAVAILABLE")
    call = FailingCall([])
    frames = [f async for f in stream_frames(call, RETRIEVAL, call.__aiter__(), ChunkLines("chatcmpl-1", False))]
    assert b"error" in b"".join(frames)
    assert stream_errors("/v1/chat/completions", "UNAVAILABLE") == before + 1


def failure(code: str) -> Event:
    return Event(error=generation_pb2.ErrorEvent(code=code, message="it failed"))


async def request_span_status(frames: AsyncIterator[bytes]) -> StatusCode:
    """The status the request's span ends with when frames are streamed inside it."""
    recorder = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    with provider.get_tracer(__name__).start_as_current_span("POST /api/v1/chat"):
        [frame async for frame in frames]
    (span,) = recorder.get_finished_spans()
    return span.status.status_code


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([RETRIEVAL, failure("DEADLINE_EXCEEDED")], StatusCode.ERROR),
        ([RETRIEVAL, failure("INVALID_ARGUMENT")], StatusCode.UNSET),
        ([RETRIEVAL, Event(done=generation_pb2.DoneEvent(conversation_id="c"))], StatusCode.UNSET),
    ],
)
async def test_a_chat_that_fails_midway_marks_the_requests_span_failed_unless_the_client_erred(
    events: list[Event], status: StatusCode
) -> None:
    """Its status line said 200: without the span's status a trace search for errors missed every broken answer.
    A client's mistake is not the mesh's failure, as its 4xx reply's span is not."""
    assert await request_span_status(answer_frames(Call(events), 0.0)) == status


async def test_an_openai_stream_whose_channel_fails_marks_the_requests_span_failed() -> None:
    call = FailingCall([])
    frames = stream_frames(call, RETRIEVAL, call.__aiter__(), ChunkLines("chatcmpl-1", False))
    assert await request_span_status(frames) == StatusCode.ERROR
