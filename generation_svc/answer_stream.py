"""The caller's side of an answer's event stream: the deadline it runs within, the timings and ids its done event
carries for this caller, and the error event it ends with when it fails."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

import grpc

from generation_svc.backends import AnswerFailed
from likeopt.runtime.contract import INVALID_INPUT_STATUS, InvalidInput
from likeopt.runtime.telemetry import current_trace_id
from likeopt.v1 import generation_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")

DEADLINE_MARGIN_S = 0.05
"""Kept back from the caller's deadline so the error event still reaches it."""

Event = generation_pb2.AnswerEvent


def answer_deadline(context: grpc.aio.ServicerContext, answer_timeout_s: float) -> float:
    """The loop time by which this call must end: the caller's deadline or ours, whichever is first."""
    budget = answer_timeout_s
    remaining = context.time_remaining()
    if remaining is not None:
        budget = min(budget, max(remaining - DEADLINE_MARGIN_S, 0.0))
    return asyncio.get_running_loop().time() + budget


async def within_deadline(source: AsyncGenerator[T, None], deadline: float) -> AsyncIterator[T]:
    """source's items; past the loop-time deadline, source is closed and DEADLINE_EXCEEDED raised."""
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await anext(source)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise AnswerFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "the answer ran past its deadline") from None
            yield item
    finally:
        await source.aclose()


async def timed(
    source: AsyncGenerator[Event, None], started: float, retrieval_ms: float, deadline: float
) -> AsyncIterator[Event]:
    """source's events within the deadline, done given this caller's own timings and trace id.

    Events may be shared with other callers, so done is copied before it is changed.
    """
    first_token_ms = 0.0
    async for event in within_deadline(source, deadline):
        if event.HasField("delta") and not first_token_ms:
            first_token_ms = (time.perf_counter() - started) * 1000
        elif event.HasField("done"):
            own = Event()
            own.CopyFrom(event)
            own.done.trace_id = current_trace_id()
            own.done.answer_id = uuid.uuid4().hex
            own.done.timings.CopyFrom(
                generation_pb2.Timings(
                    retrieval_ms=retrieval_ms,
                    first_token_ms=first_token_ms,
                    total_ms=(time.perf_counter() - started) * 1000,
                )
            )
            log.info(
                "answered",
                extra={
                    "fields": {"backend": own.done.backend, "cached": own.done.cached, **rounded_ms(own.done.timings)}
                },
            )
            event = own
        yield event


def rounded_ms(timings: generation_pb2.Timings) -> dict[str, float]:
    """The timings as logged: to a tenth of a millisecond."""
    return {
        "retrieval_ms": round(timings.retrieval_ms, 1),
        "first_token_ms": round(timings.first_token_ms, 1),
        "total_ms": round(timings.total_ms, 1),
    }


def answer_failure(exc: AnswerFailed | InvalidInput) -> AnswerFailed:
    """The failure a stream ends with: a bad request as INVALID_INPUT_STATUS, the contract's one mapping."""
    return AnswerFailed(INVALID_INPUT_STATUS, str(exc)) if isinstance(exc, InvalidInput) else exc


def failure_event(context: grpc.aio.ServicerContext, failure: AnswerFailed) -> Event:
    """The error event a failed answer ends with, its status and retry-after set on the call as well."""
    log.warning("answer failed", extra={"fields": {"code": failure.code.name, "error": failure.message}})
    context.set_code(failure.code)
    context.set_details(failure.message)
    error = generation_pb2.ErrorEvent(code=failure.code.name, message=failure.message)
    if failure.retry_after_s is not None:
        error.retry_after_s = failure.retry_after_s
        context.set_trailing_metadata((("retry-after", str(math.ceil(failure.retry_after_s))),))
    return Event(error=error)
