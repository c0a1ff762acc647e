"""OpenTelemetry's gRPC client interceptors, fixed so a cancelled call ends its span.

Two upstream gaps (opentelemetry-python-contrib #3271 and its streaming twin), both hit
when a browser closes an answer and the gateway or generation_svc cancels what it awaits:

* server streaming: upstream ends the span in the ``finally`` of the response iterator it
  hands out; a reader that stops early and cancels the call never resumes that iterator,
  so the span stayed open and was never exported. Here the call's done callback ends it
  when the call is cancelled; the iterator still ends it (with any error) otherwise.
* unary response: a caller cancelled while awaiting the reply left the span open forever
  and did not even cancel the call, so the server kept working for nobody. Here the
  cancellation cancels the call and ends the span.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.instrumentation.grpc._aio_client import (
    StreamUnaryAioClientInterceptor,
    UnaryStreamAioClientInterceptor,
    UnaryUnaryAioClientInterceptor,
)
from opentelemetry.semconv._incubating.attributes.rpc_attributes import RPC_GRPC_STATUS_CODE
from opentelemetry.trace import Span, TracerProvider


def _end_cancelled(span: Span) -> None:
    if span.is_recording():
        span.set_attribute(RPC_GRPC_STATUS_CODE, grpc.StatusCode.CANCELLED.value[0])
        span.end()


class _UnaryStreamSpans(UnaryStreamAioClientInterceptor):
    """Upstream's interceptor with its response wrapper replaced (see the module doc)."""

    async def _wrap_stream_response(self, span: Span, call: Any) -> AsyncIterator[Any]:
        call.add_done_callback(lambda done: _end_cancelled(span) if done.cancelled() else None)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            if span.is_recording():
                self.add_error_details_to_span(span, exc)
            raise
        finally:
            if span.is_recording():
                span.end()


class _CancellableUnaryResponse:
    """For the unary-response interceptors: a cancelled caller cancels the call and ends its span."""

    async def _wrap_unary_response(self, continuation: Callable[[], Awaitable[Any]], span: Span) -> Any:
        started: list[grpc.aio.Call] = []

        async def start() -> Any:
            call = await continuation()
            started.append(call)
            return call

        try:
            return await super()._wrap_unary_response(start, span)  # type: ignore[misc]
        except asyncio.CancelledError:
            for call in started:
                call.cancel()
            _end_cancelled(span)
            raise


class _UnaryUnarySpans(_CancellableUnaryResponse, UnaryUnaryAioClientInterceptor):
    pass


class _StreamUnarySpans(_CancellableUnaryResponse, StreamUnaryAioClientInterceptor):
    pass


_FIXED = {
    UnaryUnaryAioClientInterceptor: _UnaryUnarySpans,
    UnaryStreamAioClientInterceptor: _UnaryStreamSpans,
    StreamUnaryAioClientInterceptor: _StreamUnarySpans,
}


UNTRACED_PREFIX = "/grpc.health.v1.Health/"
UNTRACED_SUFFIX = "/WatchIndex"


def traced(details: Any) -> bool:
    """Whether a call gets a span. Not for health checks (Envoy's, every few seconds, would each be a trace
    of their own) nor index watches (one call for the life of a process: a span open for hours).

    A plain string test: it runs on every call, and OpenTelemetry's composable filters cost about 3 % of
    cache_svc's CPU doing the same (py-spy).
    """
    method = details.method
    if isinstance(method, bytes):  # client call details carry bytes (grpc/grpc#31092)
        method = method.decode()
    return not (method.startswith(UNTRACED_PREFIX) or method.endswith(UNTRACED_SUFFIX))


def client_interceptors(tracer_provider: TracerProvider | None = None) -> list[grpc.aio.ClientInterceptor]:
    """W3C context on every call and a client span per call, ended however the call ends."""
    return [
        _FIXED[type(interceptor)](interceptor._tracer) if type(interceptor) in _FIXED else interceptor
        for interceptor in aio_client_interceptors(tracer_provider, filter_=traced)
    ]
