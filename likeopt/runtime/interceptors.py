"""A base for server interceptors that wrap what each call does, unary or streaming alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses say how to wrap a call that replies once and one that streams its replies."""

    def wrap_unary(self, call: Unary, method: str) -> Unary:
        return call

    def wrap_streaming(self, stream: Streaming, method: str) -> Streaming:
        return stream

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        if handler.response_streaming:
            name = "stream_stream" if handler.request_streaming else "unary_stream"
            return handler._replace(**{name: self.wrap_streaming(getattr(handler, name), method)})
        name = "stream_unary" if handler.request_streaming else "unary_unary"
        return handler._replace(**{name: self.wrap_unary(getattr(handler, name), method)})
