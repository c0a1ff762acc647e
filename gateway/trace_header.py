"""ASGI middleware adding ``X-Trace-Id`` to every response, so users can quote it.

Through Envoy the id is Envoy's trace (the gateway's span is a child of Envoy's), so the
header, Envoy's access log, the ``done`` event and every service's log lines agree.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from likeopt.runtime.logs import bind_request_span
from likeopt.runtime.telemetry import current_trace_id


class TraceIdHeader:
    """Runs inside the OpenTelemetry middleware, where the request's span is current."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bind_request_span()
        trace_id = current_trace_id()

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start" and trace_id:
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-trace-id", trace_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_header)
