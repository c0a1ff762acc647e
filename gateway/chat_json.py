"""``POST /api/v1/chat`` for clients that asked for JSON: the answer's events gathered into one reply.

The stream stays the contract's default (DESIGN.md): JSON is chosen only when the Accept header ranks
``application/json`` above ``text/event-stream`` and ``*/*``. A failure, before or during the answer,
is the matching HTTP error instead of an ``error`` event after a 200. Accept is parsed here because
none of the gateway's libraries parses media ranges (Starlette does not).
"""

from __future__ import annotations

from typing import Any

import grpc

from gateway.convert import event_json
from gateway.errors import UPSTREAM_FAILED, ApiError, retry_after, status_of
from gateway.observe import first_text_timed

JSON = "application/json"
STREAM_RANGES = ("text/event-stream", "text/*", "*/*")
"""What the event stream satisfies; a tie with application/json goes to the stream, the default."""


def prefers_json(accept: str) -> bool:
    """Whether the Accept header ranks application/json above everything the event stream satisfies."""
    quality: dict[str, float] = {}
    for media_range in accept.split(","):
        media, *params = (part.strip() for part in media_range.split(";"))
        quality[media.lower()] = max(quality.get(media.lower(), 0.0), q_value(params))
    return quality.get(JSON, 0.0) > max(quality.get(r, 0.0) for r in STREAM_RANGES)


def q_value(params: list[str]) -> float:
    """A media range's weight: its q parameter, 1 when absent, 0 when it does not parse."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


async def gathered_answer(call: Any, started: float) -> dict[str, Any]:
    """The reply body of an Answer stream (started at perf_counter() ``started``); an error event or a failed
    call raises the matching ApiError."""
    answer: list[str] = []
    reply: dict[str, Any] = {}
    finished = False
    try:
        async for event in first_text_timed(call, started):
            if event.HasField("error"):
                failure = event.error
                raise ApiError(
                    status_of(failure.code), failure.code, failure.message, retry_after(failure.retry_after_s)
                )
            kind, data = event_json(event)
            if kind == "delta":
                answer.append(data["text"])
            elif kind in ("retrieval", "done"):
                reply.update(data)
                finished = kind == "done"
    except grpc.aio.AioRpcError as exc:
        raise ApiError.from_grpc(exc) from None
    finally:
        call.cancel()
    if not finished:
        raise ApiError(UPSTREAM_FAILED, "INCOMPLETE", "the answer ended before it was complete")
    return {"answer": "".join(answer), **reply}
