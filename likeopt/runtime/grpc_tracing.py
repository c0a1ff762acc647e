"""OpenTelemetry's gRPC interceptors: spans only where a trace is recorded, and ended however a call ends.

Inside an unsampled trace (every request through Envoy when no OTLP endpoint is set) a
call makes no span at either end: the client only carries the trace context on, and the
server runs the call inside it (likeopt.runtime.telemetry.unsampled_parent). That saves about
0.12 ms of CPU per call, both ends together (benchmarks/README.md, "Spans only where recorded").

Two upstream gaps (opentelemetry-python-contrib #3271 and its streaming twin), both hit
when a browser closes an answer and the gateway or generation_svc cancels what it awaits:

* server streaming: upstream ends the span in the ``finally`` of the response iterator it
  hands out; a reader that stops early and cancels the call never resumes that iterator,
  so the span stayed open and was never exported. Here the call's done callback ends it
  when the call is cancelled; the iterator still ends it (with any error) otherwise.
* unary response: a caller cancelled while awaiting the reply left the span open forever
  and did not even cancel the call, so the server kept working for nobody. Here the
  cancellation cancels the call and ends the span.

And one of ours: a stream may report its failure in band, as a message with an ``error`` field
(generation_svc's AnswerEvent), after which the reader stops and cancels. The client span then
takes that error's code and is marked failed, as the server's span is, rather than "cancelled".
Likewise a reader that stops at the ``done`` message has the whole answer: its cancel of what
is left keeps the span's code OK.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.grpc._aio_client import (
    StreamStreamAioClientInterceptor,
    StreamUnaryAioClientInterceptor,
    UnaryStreamAioClientInterceptor,
    UnaryUnaryAioClientInterceptor,
)
from opentelemetry.semconv._incubating.attributes.rpc_attributes import RPC_GRPC_STATUS_CODE
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider

from likeopt.runtime.interceptors import Streaming, Unary, WrappingInterceptor
from likeopt.runtime.telemetry import GRPC_HEALTH_PREFIX, TRACE_HEADERS, in_unsampled_trace, unsampled_parent


def _end_cancelled(span: Span, settled: bool = False) -> None:
    if span.is_recording():
        if not settled:  # a stream that reported its failure or its end in band keeps that code
            span.set_attribute(RPC_GRPC_STATUS_CODE, grpc.StatusCode.CANCELLED.value[0])
        span.end()


def _has(message: Any, field: str) -> bool:
    fields = getattr(getattr(message, "DESCRIPTOR", None), "fields_by_name", {})
    return field in fields and message.HasField(field)


def in_band_failure(message: Any) -> Any | None:
    """The ``error`` a streamed message carries (AnswerEvent's ErrorEvent, with code and message), if any."""
    return message.error if _has(message, "error") else None


def in_band_end(message: Any) -> bool:
    """Whether a streamed message is its stream's last word (AnswerEvent's ``done``)."""
    return _has(message, "done")


def mark_failed(span: Span, failure: Any) -> None:
    """A span's status and gRPC code from an in-band failure (code is a grpc.StatusCode name)."""
    code = getattr(grpc.StatusCode, str(failure.code), grpc.StatusCode.UNKNOWN)
    span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
    span.set_status(Status(StatusCode.ERROR, f"{code.name}: {failure.message}"))


class _NoSpanWhenUnsampled:
    """For every client interceptor: a call made inside an unsampled trace only carries the context on."""

    async def _intercept(
        self, traced: Callable[..., Awaitable[Any]], continuation: Any, details: Any, request: Any
    ) -> Any:
        if in_unsampled_trace():
            return await continuation(self.propagate_trace_in_details(details), request)  # type: ignore[attr-defined]
        return await traced(continuation, details, request)


class _UnaryStreamSpans(_NoSpanWhenUnsampled, UnaryStreamAioClientInterceptor):
    """Upstream's interceptor with its response wrapper replaced (see the module doc)."""

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(super().intercept_unary_stream, continuation, details, request)

    async def _wrap_stream_response(self, span: Span, call: Any) -> AsyncIterator[Any]:
        settled = False
        call.add_done_callback(lambda done: _end_cancelled(span, settled) if done.cancelled() else None)
        try:
            async for response in call:
                if not settled and span.is_recording():
                    settled = _settled_in_band(span, response)
                yield response
        except grpc.aio.AioRpcError as exc:
            if span.is_recording():
                self.add_error_details_to_span(span, exc)
            raise
        finally:
            if span.is_recording():
                span.end()


def _settled_in_band(span: Span, message: Any) -> bool:
    """Whether message tells the stream's outcome (a failure, then marked on span, or its end)."""
    if (failure := in_band_failure(message)) is not None:
        mark_failed(span, failure)
        return True
    if in_band_end(message):
        span.set_attribute(RPC_GRPC_STATUS_CODE, grpc.StatusCode.OK.value[0])
        return True
    return False


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


class _UnaryUnarySpans(_NoSpanWhenUnsampled, _CancellableUnaryResponse, UnaryUnaryAioClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(super().intercept_unary_unary, continuation, details, request)


class _StreamUnarySpans(_NoSpanWhenUnsampled, _CancellableUnaryResponse, StreamUnaryAioClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._intercept(super().intercept_stream_unary, continuation, details, requests)


class _StreamStreamSpans(_NoSpanWhenUnsampled, StreamStreamAioClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._intercept(super().intercept_stream_stream, continuation, details, requests)


_FIXED = {
    UnaryUnaryAioClientInterceptor: _UnaryUnarySpans,
    UnaryStreamAioClientInterceptor: _UnaryStreamSpans,
    StreamUnaryAioClientInterceptor: _StreamUnarySpans,
    StreamStreamAioClientInterceptor: _StreamStreamSpans,
}


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
    return not (method.startswith(GRPC_HEALTH_PREFIX) or method.endswith(UNTRACED_SUFFIX))


def client_interceptors(tracer_provider: TracerProvider | None = None) -> list[grpc.aio.ClientInterceptor]:
    """W3C context on every call and a client span per call, ended however the call ends."""
    return [
        _FIXED[type(interceptor)](interceptor._tracer, filter_=traced)
        for interceptor in aio_client_interceptors(tracer_provider, filter_=traced)
    ]


class _InContext(WrappingInterceptor):
    """Runs one call inside a given context (the caller's unsampled trace), with no span."""

    def __init__(self, context: Context) -> None:
        self._context = context

    def wrap_unary(self, call: Unary, method: str) -> Unary:
        async def unary(request: Any, servicer_context: grpc.aio.ServicerContext) -> Any:
            token = otel_context.attach(self._context)
            try:
                return await call(request, servicer_context)
            finally:
                otel_context.detach(token)

        return unary

    def wrap_streaming(self, stream: Streaming, method: str) -> Streaming:
        """The context is set around each step, never across a yield: grpc closes a stream cancelled while it
        writes a reply later and from another context, where resetting a context set before failed (an ERROR
        with a traceback for every client that left an answer)."""

        async def streaming(request: Any, servicer_context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            replies = aiter(stream(request, servicer_context))
            try:
                while True:
                    token = otel_context.attach(self._context)
                    try:
                        reply = await anext(replies, _ENDED)
                    finally:
                        otel_context.detach(token)
                    if reply is _ENDED:
                        return
                    yield reply
            finally:
                await replies.aclose()

        return streaming


_ENDED = object()
"""What a stream's next step gives once it has no more replies."""


async def _step(replies: AsyncIterator[Any]) -> Any:
    return await anext(replies, _ENDED)


def in_own_context(stream: Streaming) -> Streaming:
    """stream with every step, and its closing, run in one Context of its own, so what it holds across replies
    (upstream's span, made current with a context manager) is set and reset in the same Context even when grpc,
    after a cancel mid-write, closes it from another. A task per reply: only recorded calls come here."""

    async def streaming(request: Any, servicer_context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        own = contextvars.copy_context()
        replies = aiter(stream(request, servicer_context))
        try:
            while (reply := await asyncio.create_task(_step(replies), context=own)) is not _ENDED:
                yield reply
        finally:
            await asyncio.create_task(replies.aclose(), context=own)  # type: ignore[arg-type]

    return streaming


class ServerSpans(grpc.aio.ServerInterceptor):
    """OpenTelemetry's server interceptor for calls that start a trace or continue a sampled one; a call
    continuing an unsampled trace runs inside the caller's context instead, with no span of its own."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._spans = aio_server_interceptor(tracer_provider, filter_=traced)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        carrier = {key: value for key, value in details.invocation_metadata or () if key in TRACE_HEADERS}
        parent = unsampled_parent(carrier)
        if parent is None:
            handler = await self._spans.intercept_service(continuation, details)
            if handler is not None and handler.response_streaming:
                name = "stream_stream" if handler.request_streaming else "unary_stream"
                handler = handler._replace(**{name: in_own_context(getattr(handler, name))})
            return handler
        return await _InContext(parent).intercept_service(continuation, details)
