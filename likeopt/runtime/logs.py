"""Structured logging: one JSON object per line, carrying the current trace and span ids.

Operators grep a trace id from the UI or Jaeger and find every log line written
while serving that request, in every process: lines from worker threads too (asyncio's
``to_thread`` copies the context into them), and the servers' own lines about a request
that come after its span has ended (see :func:`bind_request_span`).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import sys
import time
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.trace import SpanContext

_request_span: ContextVar[SpanContext | None] = ContextVar("likeopt_request_span", default=None)

MAX_TEXT_CHARS = 4096
"""Longest message or text field a line keeps: libraries quote what clients send (the MCP SDK logged a 1 MB tool
name twice per request), and a client must not be able to fill the disk with logs."""
MAX_EXC_CHARS = 16384
"""Longest traceback a line keeps (its last part, where the error is)."""
QUIET_LOGGERS = ("httpx", "httpcore", "sentence_transformers", "uvicorn.access", "mcp")
"""Libraries that log every request at INFO (the MCP SDK: each call's session and failed tool); WARNING and above
still show."""


def bind_request_span() -> None:
    """Remember the current span as the request's, for lines logged once it has ended.

    uvicorn ("Exception in ASGI application") and grpc ("Unexpected error in servicer")
    log a failed request after the instrumentation has closed its span, but still in the
    request's own task, whose context keeps this variable; call it at the start of a request.
    """
    _request_span.set(trace.get_current_span().get_span_context())


def log_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span, else of the request's; {} outside one."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        span_context = _request_span.get() or span_context
    if not span_context.is_valid:
        return {}
    return {"trace_id": format(span_context.trace_id, "032x"), "span_id": format(span_context.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON line with the active span's ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": cut(record.getMessage(), MAX_TEXT_CHARS),
        }
        entry.update(log_ids())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):  # a field never hides the line's own keys (its service, its trace)
            entry.update(
                (
                    key if key not in entry else f"fields.{key}",
                    cut(value, MAX_TEXT_CHARS) if isinstance(value, str) else value,
                )
                for key, value in extra.items()
            )
        if record.exc_info:
            trace_text = self.formatException(record.exc_info)
            entry["exc"] = trace_text if len(trace_text) <= MAX_EXC_CHARS else "…" + trace_text[-MAX_EXC_CHARS:]
        return json.dumps(entry, ensure_ascii=False, default=str)


def cut(text: str, limit: int) -> str:
    """text, or its first limit characters and how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def setup_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines; a crash in native code (SIGSEGV, SIGABRT) writes
    every thread's Python stack there too, so the service's log says where it died."""
    faulthandler.enable(sys.stderr, all_threads=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
