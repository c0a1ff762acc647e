"""ASGI middleware: a server span per request, only where the trace is recorded.

Through Envoy every request carries a W3C ``traceparent``; with no OTLP endpoint (or outside
the sampled share) it says "not sampled", and such a request runs inside the caller's
context with no span of its own: nothing would record one, and OpenTelemetry's middleware
making non-recording spans was 0.17 of the gateway's 1.39 ms of CPU per uncached search
(benchmarks/README.md, "Spans only where recorded"). The trace id still reaches
``X-Trace-Id``, the log lines and the next hop. Health, readiness and metrics probes get no
span either, sampled or not (likeopt.runtime.telemetry.UNTRACED_PATHS).

A request that starts a trace or continues a sampled one goes through OpenTelemetry's
middleware as before, which never sees the query string: it would put it in the span's
attributes (``http.url``, ``http.target``), and a token handed over in one would be kept
by the collector. Once routed, its span is named after the route template, as the metrics are.
"""

from __future__ import annotations

from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.trace import Span
from opentelemetry.util.http import sanitize_method
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observe import UNMATCHED, route_label
from likeopt.runtime.telemetry import TRACE_HEADERS, UNTRACED_PATHS, unsampled_parent

NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""This module traces every request and gateway/observe.py measures it; FastAPI's own spans and
metrics would count each request twice, for CPU on every one (its check alone is a tenth of a cached search)."""

_TRACE_HEADER_NAMES = frozenset(name.encode() for name in TRACE_HEADERS)


def trace_headers(scope: Scope) -> dict[str, str]:
    """The request's W3C trace headers (ASGI header names are lower-case bytes)."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in _TRACE_HEADER_NAMES
    }


def caller_without_span(scope: Scope) -> Context | None:
    """The caller's context for a request that gets no span of its own (a health, readiness or metrics probe, or
    one inside an unsampled trace), else None."""
    carrier = trace_headers(scope)
    return propagate.extract(carrier) if scope["path"] in UNTRACED_PATHS else unsampled_parent(carrier)


_QUERY_KEPT = "likeopt.query_string"
"""Where the query waits in the scope while OpenTelemetry's middleware reads it without one."""


def name_after_route(span: Span, method: str, scope: Scope) -> None:
    """Name a routed request's span ``METHOD /route/{template}`` and set ``http.route``, as OpenTelemetry's
    conventions ask: OpenTelemetry's middleware names it before routing, after the raw path, so every document
    or conversation id was an operation of its own in Jaeger."""
    method = sanitize_method(method)
    method = "HTTP" if method == "_OTHER" else method
    route = route_label(scope)
    if route == UNMATCHED:
        span.update_name(method)
        return
    span.update_name(f"{method} {route}")
    span.set_attribute(HTTP_ROUTE, route)


class _InsideTheSpan:
    """The app under OpenTelemetry's middleware: it gets the query string back, and names the span once routed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _QUERY_KEPT in scope:
            scope["query_string"] = scope.pop(_QUERY_KEPT)
        span = trace.get_current_span()
        if scope["type"] != "http" or not span.is_recording():
            await self.app(scope, receive, send)
            return
        method = scope["method"]  # as the client sent it: HEAD is served as GET below

        async def send_naming_the_span(message: Message) -> None:
            if message["type"] == "http.response.start":  # routed by now; the span ends with the last body part
                name_after_route(span, method, scope)
            await send(message)

        await self.app(scope, receive, send_naming_the_span)


class RequestSpans:
    """OpenTelemetry's ASGI middleware (given ``options``) for recorded traces; the caller's context otherwise."""

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self.spans = OpenTelemetryMiddleware(_InsideTheSpan(app), **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parent = caller_without_span(scope) if scope["type"] == "http" else None
        if parent is None:
            if scope.get("query_string"):  # the scope is the request's own: the app below sees the same dict
                scope[_QUERY_KEPT], scope["query_string"] = scope["query_string"], b""
            await self.spans(scope, receive, send)
            return
        token = context.attach(parent)
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
