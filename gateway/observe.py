"""What the gateway measures about its own traffic: Prometheus metrics and a rolling window.

The Prometheus histograms serve scrapers; the rolling window answers the web
dashboard's "requests per second and latency over the last minute" without a
Prometheus server in between.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import Counter, Histogram
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.head_requests import ASKED_METHOD
from likeopt.runtime.metrics import LATENCY_BUCKETS, labelled
from likeopt.runtime.percentiles import percentile

HTTP_REQUESTS = Counter(
    "likeopt_http_requests_total", "HTTP requests served by the gateway.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "likeopt_http_request_duration_seconds",
    "Time to the end of the response (whole stream for SSE).",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
STREAM_ERRORS = Counter(
    "likeopt_http_stream_errors_total",
    "Streamed answers that ended in an error event after their 200 status (likeopt_http_requests_total counts"
    " them as 200), by route and error code.",
    ["route", "code"],
)
FIRST_TOKEN = Histogram(
    "likeopt_chat_first_token_seconds",
    "Time from a chat request to its first answer text, seen by the gateway.",
    buckets=LATENCY_BUCKETS,
)


class RollingWindow:
    """Samples of the last ``span_s`` seconds, for rates and percentiles."""

    def __init__(self, span_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.span_s = span_s
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, value: float) -> None:
        self._samples.append((self.clock(), value))
        self._expire()

    def _expire(self) -> None:
        horizon = self.clock() - self.span_s
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def rate(self) -> float:
        """Samples per second over the window."""
        self._expire()
        return len(self._samples) / self.span_s

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) of the values in the window, None when empty.

        The same definition as ``likeopt bench``'s, so the dashboard and a bench run agree.
        """
        self._expire()
        return percentile((v for _, v in self._samples), q)


API_LATENCY = RollingWindow()
"""Latency of /api/ requests (seconds), for the dashboard."""
CHAT_FIRST_TOKEN = RollingWindow()
"""Time to first token of chats (seconds), for the dashboard."""


def stream_failed(route: str, code: str, http_status: int) -> None:
    """Count an answer that failed after its 200 status, and mark the request's span failed when the failure is
    the mesh's (``http_status``, what the API answers for code, is a 5xx), as a 5xx reply's span is: the status
    line said 200, so without this a trace search for errors missed every answer that broke midway."""
    STREAM_ERRORS.labels(route, code).inc()
    if http_status >= 500:
        trace.get_current_span().set_status(Status(StatusCode.ERROR, f"the answer ended in an error: {code}"))


def record_first_token(seconds: float) -> None:
    FIRST_TOKEN.observe(seconds)
    CHAT_FIRST_TOKEN.add(seconds)


async def first_text_timed(events: AsyncIterable[Any], started: float) -> AsyncIterator[Any]:
    """An Answer stream's events, unchanged; the first answer text's arrival is the chat's time to first token,
    whether the answer is then streamed or gathered into one reply (REST, OpenAI, MCP)."""
    waiting = True
    async for event in events:
        if waiting and event.WhichOneof("event") == "delta" and event.delta.text:
            waiting = False
            record_first_token(time.perf_counter() - started)
        yield event


UNMATCHED = "unmatched"
"""The route label of a request no route matched."""


def route_label(scope: Scope) -> str:
    """The route template a request matched, with the prefix of the app mounted on the way (``/v1/models``)."""
    route = scope.get("route")
    if route is None:  # FastAPI's router leaves a mount (static files) out of the scope: its path is the root's
        mounted = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
        return mounted or UNMATCHED
    if isinstance(route, Mount):  # the mount itself answered (static files, or nothing matched inside)
        return route.path
    root = scope.get("root_path", "")
    return root[len(scope.get("app_root_path", root)) :] + route.path


class LabelledRoute(Route):
    """A plain Starlette route (an ASGI endpoint: MCP, the UI's config.js) that names itself in the scope, as
    FastAPI's routes do, so its requests are counted under its path rather than as "unmatched" 404s."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; HTTP lets a client send any token, and each would otherwise be a new series."""


def method_label(scope: Scope) -> str:
    """The method the client sent (HEAD served as GET stays HEAD), or "other" for one no route serves."""
    method = scope.get(ASKED_METHOD, scope["method"])
    return method if method in COUNTED_METHODS else "other"


class RequestMetrics:
    """ASGI middleware: count and time every request by its route template, not its raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(scope)
            labelled(HTTP_REQUESTS, route, method_label(scope), str(status)).inc()
            labelled(HTTP_LATENCY, route).observe(elapsed)
            if route.startswith("/api/v1/") and route not in ("/api/v1/dashboard", "/api/v1/chat"):
                API_LATENCY.add(elapsed)
