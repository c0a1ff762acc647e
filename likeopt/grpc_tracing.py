"""OpenTelemetry's gRPC client interceptors, with server-streaming spans that always end.

Upstream ends a server-streaming call's span in the ``finally`` of the response iterator it
hands out. A reader that stops early and cancels the call (the gateway, when a browser
closes an answer) never resumes that iterator, so the span stayed open and was never
exported. Here the call's done callback ends the span when the call is cancelled; the
iterator still ends it, with the error status if any, in every other case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.instrumentation.grpc._aio_client import UnaryStreamAioClientInterceptor
from opentelemetry.semconv._incubating.attributes.rpc_attributes import RPC_GRPC_STATUS_CODE
from opentelemetry.trace import Span, TracerProvider


def _end_if_cancelled(span: Span, call: grpc.aio.Call) -> None:
    if call.cancelled() and span.is_recording():
        span.set_attribute(RPC_GRPC_STATUS_CODE, grpc.StatusCode.CANCELLED.value[0])
        span.end()


class _UnaryStreamSpans(UnaryStreamAioClientInterceptor):
    """The upstream interceptor with its response wrapper replaced (see the module doc)."""

    async def _wrap_stream_response(self, span: Span, call: Any) -> AsyncIterator[Any]:
        call.add_done_callback(lambda done: _end_if_cancelled(span, done))
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


def client_interceptors(tracer_provider: TracerProvider | None = None) -> list[grpc.aio.ClientInterceptor]:
    """W3C context on every call and a client span per call, ended however the call ends."""
    return [
        _UnaryStreamSpans(interceptor._tracer)
        if isinstance(interceptor, UnaryStreamAioClientInterceptor)
        else interceptor
        for interceptor in aio_client_interceptors(tracer_provider)
    ]
