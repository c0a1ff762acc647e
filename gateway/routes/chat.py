"""``POST /api/v1/chat``: one call of generation_svc's Answer, relayed as Server-Sent Events, or gathered into one JSON
reply for a client that asked for JSON (gateway/chat_json.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import grpc
import orjson
from fastapi import Depends, Header
from starlette.responses import Response, StreamingResponse

from gateway.auth import Reader, reader
from gateway.bodies import json_body, request_body, schema_ref
from gateway.chat_json import gathered_answer, prefers_json
from gateway.convert import event_json
from gateway.direct_route import DirectRoute
from gateway.errors import BODY_STATUSES, UPSTREAM_STATUSES, error_responses, public_details, status_of
from gateway.models import ChatAnswer, ChatEvent, ChatRequest
from gateway.observe import first_text_timed, stream_failed
from gateway.routes import api_router
from gateway.sse import sse_frame, with_heartbeats
from gateway.state import Running
from likeopt.runtime.contract import MODES, REPLAYABLE_BACKENDS
from likeopt.runtime.principal import forwarded
from likeopt.v1 import generation_pb2

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Vary": "Accept"}
JSON_HEADERS = {"Cache-Control": "no-cache", "Vary": "Accept"}
CHAT_STREAM = (
    "Server-Sent Events, each with `id:`, `event:` and one JSON `data:` line: `retrieval` {hits, index_version, "
    "conversation_id (send it again for a follow-up, even after stopping the answer)}, "
    "`delta` {text}, `citation` {n, doc_id, chunk_id, title, text, supported, support}, then `done` {conversation_id, "
    "trace_id, answer_id, cached, finish_reason, timings, support (0..1: share of sentences supported by the passage "
    "they cite), no_answer (the documents do not cover the question), small_talk (a greeting or thanks, answered "
    "without searching), citations (all of them again)} or `error` "
    "{code, message}: an upstream failure arrives as that event, after the 200. Comment lines are heartbeats. Sent "
    "again with a `Last-Event-ID` header, the same question continues after that event when its answer is the one "
    "the client has (a finished answer replayed from the cache, or one from the extractive backend, which answers "
    "alike every time); otherwise (a model writes an unfinished answer anew, and not alike) the new answer comes "
    "whole, from event 1, once it is done, its `retrieval` event saying `restarted: true`: replace what you had. "
    "Another question in the same conversation is a new answer, sent whole."
)

JSON_REPLY = (
    " With `Accept: application/json` (ranked above `text/event-stream` and `*/*`), the reply is one JSON object "
    "instead: the deltas joined as `answer`, the retrieval event's `hits` and the done event's fields; a failure is "
    "then the HTTP error its gRPC status maps to."
)
EVENT_STREAM = {"schema": {"anyOf": [{"type": "string"}, schema_ref(ChatEvent)]}}
"""The stream's schema, for both ways tools read it: as the whole body, text (OpenAPI's reading, and generated
clients': an object schema alone made them parse the stream as one object and fail on every answer), and event by
event, each a ChatEvent (schemathesis's reading of an event stream's schema before OpenAPI 3.2's itemSchema)."""


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


router = api_router("chat", reader, 401, *BODY_STATUSES, route_class=DirectRoute)
"""Direct (gateway/direct_route.py): through FastAPI's router a chat cost the gateway 8.6-8.7 CPU-ms, 7.4-7.6 before."""


CHAT_PATH = "/chat"
CHAT_ROUTE = router.prefix + CHAT_PATH
"""As likeopt_http_requests_total labels it."""


@router.post(
    CHAT_PATH,
    summary="Stream a cited answer",
    response_class=Response,  # no media type of its own: FastAPI would add {"type": "string"} to the stream's schema
    responses={
        200: {
            "description": CHAT_STREAM + JSON_REPLY,
            "content": {
                "text/event-stream": EVENT_STREAM,
                "application/json": {"schema": schema_ref(ChatAnswer)},
            },
        },
        **error_responses(*UPSTREAM_STATUSES),
    },
    openapi_extra=request_body({"application/json": ChatRequest}),
)
async def chat(
    body: Annotated[ChatRequest, Depends(json_body(ChatRequest))],
    principal: Reader,
    gateway: Running,
    last_event_id: Annotated[str, Header(description="The last event a reconnecting client has.")] = "",
    accept: Annotated[str, Header(description="`application/json` for one JSON reply instead of the stream.")] = "",
) -> Response:
    """The answer's events as they are produced; closing the connection cancels generation."""
    request = generation_pb2.AnswerRequest(
        query=body.query,
        conversation_id=body.conversation_id,
        top_k=body.top_k,
        mode=MODES[body.mode],
        max_tokens=body.max_tokens,
        stop=body.stop,
        min_index_version=max(body.min_index_version, gateway.upstreams.least_version),
    )
    started = time.perf_counter()
    call = gateway.upstreams.generation.Answer(
        request, timeout=gateway.config.answer_timeout_s, metadata=forwarded(principal)
    )
    if prefers_json(accept):
        reply = orjson.dumps(await gathered_answer(call, started))
        return Response(reply, media_type="application/json", headers=JSON_HEADERS)
    frames = answer_frames(call, started, resumed_after(last_event_id))
    return EventStream(with_heartbeats(frames), headers=STREAM_HEADERS)


def resumed_after(last_event_id: str) -> int:
    """The Last-Event-ID a reconnecting client sends (0 when none): the events it already has (see Resumption)."""
    value = last_event_id.strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else 0


class Resumption:
    """Which events of an answer a client resuming after event skip gets, numbered as the answer's own.

    Asked again, the same question is answered again: identically when the answer is replayed from the cache
    (done.cached: same deltas and citations, same ids) or comes from a backend that answers alike every time,
    so the events up to skip are left out and the client's answer continues where it broke off. A model's
    unfinished answer is not cached and is written anew, differently (llama.cpp's output depends on what its
    cache holds), and spliced onto the old one it would be two answers: it is held until done and sent whole,
    its retrieval event marked restarted. An answer to another question is new and sent whole at once.
    """

    def __init__(self, skip: int) -> None:
        self.skip = skip
        self.event_id = 0
        self.held: list[tuple[int, str, dict[str, Any]]] = []

    def take(self, event: generation_pb2.AnswerEvent) -> list[tuple[int, str, dict[str, Any]]]:
        """The (id, kind, data) to send now, on event."""
        self.event_id += 1
        kind, data = event_json(event)
        if kind == "retrieval" and event.retrieval.another_question:
            self.skip = 0
        if not self.skip:
            return [(self.event_id, kind, data)]
        if kind == "error":
            return [(self.event_id, kind, data)]
        self.held.append((self.event_id, kind, data))
        if kind != "done":
            return []
        if event.done.cached or event.done.backend in REPLAYABLE_BACKENDS:
            return [item for item in self.held if item[0] > self.skip]
        for _, held_kind, held_data in self.held:
            if held_kind == "retrieval":
                held_data["restarted"] = True
        return self.held


async def answer_frames(call: Any, started: float, skip: int = 0) -> AsyncGenerator[bytes, None]:
    """SSE frames of an Answer stream, resumed after event skip as Resumption says; a failed call ends with an
    error event."""
    resumption = Resumption(skip)
    ended = False
    try:
        async for event in first_text_timed(call, started):
            for event_id, kind, data in resumption.take(event):
                ended = kind in ("done", "error")
                if kind == "error":
                    code = str(data.get("code", ""))
                    stream_failed(CHAT_ROUTE, code, status_of(code))
                yield sse_frame(event_id, kind, data)
    except grpc.aio.AioRpcError as exc:
        if not ended:
            stream_failed(CHAT_ROUTE, exc.code().name, status_of(exc.code().name))
            error = {"code": exc.code().name, "message": public_details(exc)}
            yield sse_frame(resumption.event_id + 1, "error", error)
    finally:
        call.cancel()
