"""Sampling, trace ids without export, log lines' ids, and spans of cancelled gRPC streams.

Everything runs in process: tracer providers are built (never installed globally) and
passed to the instrumentation, with an in-memory exporter where finished spans matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import grpc
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from cache_svc.l1 import L1Cache
from cache_svc.l2 import RedisLayer
from cache_svc.two_layer import TwoLayerCache
from gateway.observe import RequestMetrics
from gateway.request_spans import RequestSpans
from gateway.trace_header import TraceIdHeader
from likeopt.runtime.grpc_server import RequestLogContext
from likeopt.runtime.grpc_tracing import ServerSpans, client_interceptors, traced
from likeopt.runtime.logs import MAX_EXC_CHARS, MAX_TEXT_CHARS, JsonFormatter, bind_request_span, setup_logging
from likeopt.runtime.telemetry import (
    CACHE_HIT,
    CACHE_LAYER,
    CACHE_NAMESPACE,
    UNTRACED_PATHS,
    StreamSpans,
    current_trace_id,
    effective_sample_ratio,
    tracer_provider,
    unsampled_parent,
)
from likeopt.v1.generation_pb2 import AnswerEvent
from tests.otlp_receiver import OtlpReceiver
from tests.support import self_signed

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
UNSAMPLED = f"00-{TRACE_ID}-b7ad6b7169203331-00"
SAMPLED = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def _parent(traceparent: str):
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every record logged during the test, as the services' JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _records(stream: io.StringIO, message: str) -> list[dict]:
    return [r for r in map(json.loads, stream.getvalue().splitlines()) if message in r["msg"]]


def test_a_field_of_a_log_line_never_hides_its_own_service_or_level(log_lines):
    fields = {"service": "retrieval_svc", "level": "nonsense", "details": "gone"}
    logging.getLogger("test.fields").warning("upstream unreachable", extra={"fields": fields})
    [line] = _records(log_lines, "upstream unreachable")
    assert (line["service"], line["level"], line["details"]) == ("test", "WARNING", "gone")
    assert (line["fields.service"], line["fields.level"]) == ("retrieval_svc", "nonsense")


def test_a_line_keeps_at_most_a_bounded_part_of_what_a_client_sent(log_lines):
    """The MCP SDK logged a 1 MB tool name twice per request: 2 MB of log for one request, no key needed."""
    name = "B" * 1_000_000
    logging.getLogger("test.sizes").warning("Tool %r failed", name, extra={"fields": {"uri": name}})
    try:
        raise ValueError(name)
    except ValueError:
        logging.getLogger("test.sizes").exception("crashed")
    [line] = _records(log_lines, "Tool")
    assert len(line["msg"]) < MAX_TEXT_CHARS + 100 and line["msg"].endswith(
        f"({len(name) + 14 - MAX_TEXT_CHARS} more characters)"
    )
    assert len(line["uri"]) < MAX_TEXT_CHARS + 100
    [crash] = _records(log_lines, "crashed")
    assert len(crash["exc"]) <= MAX_EXC_CHARS + 1 and crash["exc"].endswith("B")
    assert len(log_lines.getvalue()) < 3 * (MAX_TEXT_CHARS + MAX_EXC_CHARS)


def test_libraries_that_log_each_request_are_quiet_below_warning():
    setup_logging("test")
    try:
        assert logging.getLogger("mcp.server.streamable_http").getEffectiveLevel() == logging.WARNING
    finally:
        logging.getLogger().handlers[:] = []
        logging.getLogger().setLevel(logging.WARNING)


# -- sampling ------------------------------------------------------------------------


def test_no_endpoint_means_nothing_is_sampled():
    assert effective_sample_ratio("", 1.0) == 0.0
    assert effective_sample_ratio("http://jaeger:4317", 0.25) == 0.25


@pytest.mark.parametrize(
    ("ratio", "traceparent", "recorded"),
    [
        (1.0, None, True),
        (0.0, None, False),
        (0.0, SAMPLED, True),  # a sampled parent wins over the ratio...
        (1.0, UNSAMPLED, False),  # ...and so does an unsampled one: traces stay whole
    ],
)
def test_sampling_is_parent_based_with_the_ratio_for_new_traces(ratio, traceparent, recorded):
    provider = tracer_provider("retrieval_svc", "http://127.0.0.1:9", ratio)
    try:
        parent = _parent(traceparent) if traceparent else None
        with provider.get_tracer("test").start_as_current_span("work", context=parent) as span:
            assert span.is_recording() is recorded
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("carrier", "continued"),
    [
        ({}, False),
        ({"traceparent": SAMPLED}, False),
        ({"traceparent": UNSAMPLED}, True),
        ({"traceparent": "00-xyz"}, False),
    ],
)
def test_only_a_valid_unsampled_context_is_continued_without_spans(carrier, continued):
    parent = unsampled_parent(carrier)
    assert (parent is not None) is continued
    if parent is not None:
        assert format(trace.get_current_span(parent).get_span_context().trace_id, "032x") == TRACE_ID


@pytest.mark.parametrize(
    ("tls", "scheme"), [(False, ""), (False, "http://"), (True, "https://")], ids=["host:port", "http", "https"]
)
def test_spans_reach_the_collector_in_plaintext_or_over_tls_checked_against_the_ca_bundle(
    tls: bool, scheme: str, tmp_path, monkeypatch
):
    """What Envoy speaks to the same endpoint (tests/unit/test_envoy_config.py): https:// is TLS, with the
    certificate checked against the bundle SSL_CERT_FILE names; anything else is plaintext."""
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    receiver = OtlpReceiver(tls=(cert, key) if tls else None)
    receiver.start()
    provider = tracer_provider("gateway", scheme + receiver.endpoint.partition("://")[2])
    try:
        with provider.get_tracer("test").start_as_current_span("work"):
            pass
        provider.force_flush()
        spans = receiver.wait_for(lambda spans: bool(spans), timeout_s=10)
    finally:
        provider.shutdown()
        receiver.stop()
    assert [(s.service, s.name) for s in spans] == [("gateway", "work")]


def test_service_name_is_the_resource():
    provider = tracer_provider("cache_svc", "")
    assert provider.resource.attributes["service.name"] == "cache_svc"


def test_unsampled_requests_keep_their_trace_id_for_clients_and_logs(log_lines):
    """Envoy at 0 % forwards flag 00: the spans do not record, yet every id is still there."""
    tracer = tracer_provider("gateway", "").get_tracer("test")
    with tracer.start_as_current_span("request", context=_parent(UNSAMPLED)) as span:
        assert not span.is_recording()
        assert current_trace_id() == TRACE_ID
        logging.getLogger("test").info("serving")
    (line,) = _records(log_lines, "serving")
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == format(span.get_span_context().span_id, "016x") != "b7ad6b7169203331"


# -- logs ----------------------------------------------------------------------------


async def test_log_lines_in_worker_threads_carry_the_ids(log_lines):
    tracer = tracer_provider("retrieval_svc", "").get_tracer("test")
    with tracer.start_as_current_span("search", context=_parent(UNSAMPLED)):
        await asyncio.to_thread(logging.getLogger("worker").info, "in a thread")
    (line,) = _records(log_lines, "in a thread")
    assert line["trace_id"] == TRACE_ID


async def test_lines_logged_after_the_request_span_keep_its_ids(log_lines):
    tracer = tracer_provider("gateway", "").get_tracer("test")

    async def request(bind: bool) -> None:
        with tracer.start_as_current_span("request", context=_parent(UNSAMPLED)):
            if bind:
                bind_request_span()
        logging.getLogger("server").error("failed after the span, bound=%s", bind)

    await asyncio.gather(asyncio.create_task(request(True)), asyncio.create_task(request(False)))
    (bound,) = _records(log_lines, "bound=True")
    (unbound,) = _records(log_lines, "bound=False")
    assert bound["trace_id"] == TRACE_ID
    assert "trace_id" not in unbound


# -- gateway: X-Trace-Id ---------------------------------------------------------------


def test_x_trace_id_is_the_callers_trace_even_unsampled_and_only_recorded_traces_get_spans(log_lines):
    async def hello(request: Request) -> PlainTextResponse:
        logging.getLogger("gateway").info("handling")
        return PlainTextResponse("hi")

    recorder = _Recorder()
    app = RequestSpans(TraceIdHeader(Starlette(routes=[Route("/", hello)])), tracer_provider=recorder.provider)
    with TestClient(app) as client:
        response = client.get("/", headers={"traceparent": UNSAMPLED})
        assert recorder.finished(SpanKind.SERVER) == []
        fresh = client.get("/")
        sampled = client.get("/", headers={"traceparent": SAMPLED})
    assert response.headers["x-trace-id"] == sampled.headers["x-trace-id"] == TRACE_ID
    assert len(fresh.headers["x-trace-id"]) == 32 and fresh.headers["x-trace-id"] != TRACE_ID
    assert _records(log_lines, "handling")[0]["trace_id"] == TRACE_ID
    spans = recorder.finished(SpanKind.SERVER)
    assert [format(s.context.trace_id, "032x") for s in spans] == [fresh.headers["x-trace-id"], TRACE_ID]


def test_the_gateway_traces_no_health_readiness_or_metrics_request_even_in_a_sampled_trace():
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    recorder = _Recorder()
    paths = sorted(UNTRACED_PATHS)
    app = RequestSpans(
        Starlette(routes=[Route(path, ok) for path in [*paths, "/api/v1/index"]]), tracer_provider=recorder.provider
    )
    with TestClient(app) as client:
        for path in paths:
            assert client.get(path).status_code == client.get(path, headers={"traceparent": SAMPLED}).status_code == 200
        client.get("/api/v1/index?probe=1")
    assert [s.name for s in recorder.finished(SpanKind.SERVER)] == ["GET /api/v1/index"]


def test_the_gateways_span_never_holds_the_query_string_yet_the_app_reads_it():
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.url.query)

    recorder = _Recorder()
    app = RequestSpans(Starlette(routes=[Route("/api/v1/search", echo)]), tracer_provider=recorder.provider)
    with TestClient(app) as client:
        reply = client.get("/api/v1/search?api_key=secret&top_k=3", headers={"traceparent": SAMPLED})
    assert reply.text == "api_key=secret&top_k=3"
    (span,) = recorder.finished(SpanKind.SERVER)
    assert span.attributes["http.url"] == "http://testserver/api/v1/search"
    leaks = {key: value for key, value in span.attributes.items() if "secret" in str(value) or "?" in str(value)}
    assert not leaks


def test_the_gateways_span_is_named_after_the_route_template_not_the_path():
    """Named after the raw path, each document id was an operation of its own in Jaeger; the metrics already
    used the template."""
    documents = FastAPI()

    @documents.delete("/api/v1/documents/{doc_id:path}")
    async def delete(doc_id: str) -> dict[str, str]:
        return {"deleted": doc_id}

    recorder = _Recorder()
    app = RequestSpans(TraceIdHeader(RequestMetrics(documents)), tracer_provider=recorder.provider)
    with TestClient(app) as client:
        assert client.delete("/api/v1/documents/notes/a.md", headers={"traceparent": SAMPLED}).status_code == 200
        assert client.get("/no/such/page", headers={"traceparent": SAMPLED}).status_code == 404
    routed, unmatched = recorder.finished(SpanKind.SERVER)
    assert routed.name == "DELETE /api/v1/documents/{doc_id:path}"
    assert routed.attributes["http.route"] == "/api/v1/documents/{doc_id:path}"
    assert routed.attributes["http.target"] == "/api/v1/documents/notes/a.md"
    assert unmatched.name == "GET" and "http.route" not in unmatched.attributes


# -- gRPC: context across the hop, spans of cancelled streams, grpc's own log lines ----


class _Recorder:
    """A provider whose finished spans land in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self, kind: SpanKind) -> list:
        return [s for s in self.exporter.get_finished_spans() if s.kind == kind]


async def boom(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("unexpected")


async def trace_id(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return current_trace_id().encode()


async def endless(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    while True:  # no await between replies: a cancel lands while grpc writes, and grpc closes this later
        yield b"x" * 64


async def fails_in_band(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[AnswerEvent]:
    yield AnswerEvent(delta={"text": "Half"})
    context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)  # as generation_svc ends a failed answer
    yield AnswerEvent(error={"code": "DEADLINE_EXCEEDED", "message": "retrieval failed"})
    await asyncio.sleep(0.5)


async def answers_then_lingers(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[AnswerEvent]:
    yield AnswerEvent(delta={"text": "Whole"})
    yield AnswerEvent(done={"conversation_id": "c"})
    await asyncio.sleep(0.5)  # the reader has all it needs and cancels before the call's own end


@pytest.fixture
async def grpc_pair() -> AsyncIterator[tuple[_Recorder, grpc.aio.Channel, dict[str, asyncio.Event]]]:
    """A server with methods that stream or wait until cancelled, and one that fails; events say what happened."""
    recorder = _Recorder()
    events = {name: asyncio.Event() for name in ("forever cancelled", "hang started", "hang cancelled")}

    async def forever(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        try:
            while True:
                yield current_trace_id().encode()
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            events["forever cancelled"].set()
            raise

    async def hang(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        events["hang started"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events["hang cancelled"].set()
            raise
        return b""

    server = grpc.aio.server(interceptors=[ServerSpans(recorder.provider), RequestLogContext()])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Ticks",
                {
                    "Forever": grpc.unary_stream_rpc_method_handler(forever),
                    "Endless": grpc.unary_stream_rpc_method_handler(endless),
                    "Hang": grpc.unary_unary_rpc_method_handler(hang),
                    "Boom": grpc.unary_unary_rpc_method_handler(boom),
                    "TraceId": grpc.unary_unary_rpc_method_handler(trace_id),
                    "FailsInBand": grpc.unary_stream_rpc_method_handler(
                        fails_in_band, response_serializer=AnswerEvent.SerializeToString
                    ),
                    "AnswersThenLingers": grpc.unary_stream_rpc_method_handler(
                        answers_then_lingers, response_serializer=AnswerEvent.SerializeToString
                    ),
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=client_interceptors(recorder.provider))
    try:
        yield recorder, channel, events
    finally:
        await channel.close()
        await server.stop(0)


async def test_a_cancelled_stream_ends_both_spans_in_one_trace(grpc_pair):
    recorder, channel, events = grpc_pair
    tracer = recorder.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        call = channel.unary_stream("/test.Ticks/Forever")(b"")
        async for _ in call:
            break
        call.cancel()
    await asyncio.wait_for(events["forever cancelled"].wait(), 10)
    for _ in range(100):  # the client span ends when its stream wrapper is closed
        if recorder.finished(SpanKind.CLIENT) and recorder.finished(SpanKind.SERVER):
            break
        await asyncio.sleep(0.05)
    (client,) = recorder.finished(SpanKind.CLIENT)
    (server,) = recorder.finished(SpanKind.SERVER)
    trace_id = caller.get_span_context().trace_id
    assert client.context.trace_id == server.context.trace_id == trace_id
    assert client.parent.span_id == caller.get_span_context().span_id
    assert server.parent.span_id == client.context.span_id
    assert client.end_time is not None and server.end_time is not None


async def _client_span_of_a_reader_stopping_at(grpc_pair, method: str, field: str):
    """The client span of a call to method whose reader stops at the first AnswerEvent holding field and cancels."""
    recorder, channel, _ = grpc_pair
    with recorder.provider.get_tracer("test").start_as_current_span("caller"):
        call = channel.unary_stream(f"/test.Ticks/{method}", response_deserializer=AnswerEvent.FromString)(b"")
        async for event in call:
            if event.HasField(field):
                break
        call.cancel()
    for _ in range(100):
        if recorder.finished(SpanKind.CLIENT):
            break
        await asyncio.sleep(0.05)
    (client,) = recorder.finished(SpanKind.CLIENT)
    return client


async def test_a_stream_that_reports_its_failure_in_band_is_a_failed_client_span(grpc_pair):
    # The gateway stops reading at an error event and cancels: its span said CANCELLED and was not an error.
    client = await _client_span_of_a_reader_stopping_at(grpc_pair, "FailsInBand", "error")
    assert client.status.status_code == StatusCode.ERROR and "retrieval failed" in client.status.description
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


async def test_a_reader_that_stops_at_the_done_event_keeps_the_client_span_ok(grpc_pair):
    # MCP's ask stops at done and cancels the rest: the span said CANCELLED for a whole answer.
    client = await _client_span_of_a_reader_stopping_at(grpc_pair, "AnswersThenLingers", "done")
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert client.status.status_code == StatusCode.UNSET


async def test_calls_inside_an_unsampled_trace_carry_it_on_but_make_no_spans(grpc_pair):
    recorder, channel, _ = grpc_pair
    token = context.attach(_parent(UNSAMPLED))
    try:
        unary = await channel.unary_unary("/test.Ticks/TraceId")(b"")
        call = channel.unary_stream("/test.Ticks/Forever")(b"")
        streamed = await call.read()
        call.cancel()
    finally:
        context.detach(token)
    assert unary == streamed == TRACE_ID.encode()
    assert recorder.exporter.get_finished_spans() == ()
    with recorder.provider.get_tracer("test").start_as_current_span("caller") as caller:  # recorded: spans as ever
        assert (
            await channel.unary_unary("/test.Ticks/TraceId")(b"")
            == format(caller.get_span_context().trace_id, "032x").encode()
        )
    assert len(recorder.finished(SpanKind.CLIENT)) == len(recorder.finished(SpanKind.SERVER)) == 1


@pytest.mark.parametrize("parent", [UNSAMPLED, SAMPLED])
async def test_a_stream_cancelled_mid_write_leaves_no_context_error_in_the_log(grpc_pair, caplog, parent):
    """grpc closes such a stream later, from another context: detaching the call's trace context there failed,
    and every browser that left an answer wrote an ERROR with a traceback."""
    _, channel, _ = grpc_pair
    token = context.attach(_parent(parent))
    try:
        for _ in range(5):
            call = channel.unary_stream("/test.Ticks/Endless")(b"")
            await call.read()
            call.cancel()
        await asyncio.sleep(0.3)
        gc.collect()
        await asyncio.sleep(0.1)
    finally:
        context.detach(token)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_cancelled_caller_cancels_its_unary_call_and_ends_its_span(grpc_pair):
    """Upstream left the client span open for good and the server working (contrib #3271)."""
    recorder, channel, events = grpc_pair

    async def caller() -> bytes:
        return await channel.unary_unary("/test.Ticks/Hang")(b"", timeout=60)

    waiting = asyncio.create_task(caller())
    await asyncio.wait_for(events["hang started"].wait(), 10)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(events["hang cancelled"].wait(), 10)
    (client,) = recorder.finished(SpanKind.CLIENT)
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]


async def test_grpc_logs_an_unexpected_error_with_the_calls_ids(grpc_pair, log_lines):
    recorder, channel, _ = grpc_pair
    tracer = recorder.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary("/test.Ticks/Boom")(b"")
    lines = [r for r in map(json.loads, log_lines.getvalue().splitlines()) if r["logger"].startswith("grpc")]
    assert lines, "grpc logged nothing about the failure"
    assert {line.get("trace_id") for line in lines} == {format(caller.get_span_context().trace_id, "032x")}


# -- stage spans (instrumented code uses the global provider) ---------------------------


@pytest.fixture(scope="module")
def global_spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of code that traces through the global tracer provider."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


async def test_cache_lookups_record_layer_namespace_and_hit(global_spans):
    cache = TwoLayerCache(L1Cache(100, 1 << 20), RedisLayer("", 0.05), default_ttl_s=60)
    global_spans.clear()
    assert await cache.get("search", "k") == (None, "")
    await cache.set("search", "k", b"v")
    assert await cache.get("search", "k") == (b"v", "l1")
    seen = [
        (s.name, s.attributes[CACHE_LAYER], s.attributes[CACHE_NAMESPACE], s.attributes[CACHE_HIT])
        for s in global_spans.get_finished_spans()
    ]
    assert seen == [
        ("cache l1 get", "l1", "search", False),
        ("cache l2 get", "l2", "search", False),
        ("cache l1 get", "l1", "search", True),
    ]


async def test_stream_spans_end_when_the_reader_walks_away_and_never_leak_into_it(global_spans):
    async def generate() -> AsyncIterator[str]:
        with StreamSpans("backend", {"likeopt.backend": "test"}) as spans:
            for piece in ("a", "b", "c"):
                spans.piece()
                yield piece

    global_spans.clear()
    pieces = generate()
    assert await anext(pieces) == "a"
    assert not trace.get_current_span().get_span_context().is_valid, "the stream's span leaked into its reader"
    await pieces.aclose()
    spans = {s.name: s for s in global_spans.get_finished_spans()}
    stream, first = spans["backend stream"], spans["backend first token"]
    assert first.parent.span_id == stream.context.span_id
    assert first.end_time <= stream.end_time
    assert stream.attributes["likeopt.stream.abandoned"] is True
    assert stream.attributes["likeopt.stream.pieces"] == 1


async def test_a_failed_stream_is_an_error_and_still_ends_both_spans(global_spans):
    global_spans.clear()
    with pytest.raises(RuntimeError), StreamSpans("backend"):
        raise RuntimeError("model crashed")
    spans = {s.name: s for s in global_spans.get_finished_spans()}
    assert set(spans) == {"backend stream", "backend first token"}
    assert spans["backend stream"].status.status_code.name == "ERROR"


def test_uvicorns_line_about_a_crashed_request_carries_its_trace_id(log_lines):
    """uvicorn logs the failure after the request's span has ended; the bound ids still apply."""

    async def crash(request: Request) -> PlainTextResponse:
        raise RuntimeError("handler bug")

    app = RequestSpans(
        TraceIdHeader(Starlette(routes=[Route("/", crash)])), tracer_provider=tracer_provider("gateway", "")
    )
    # Another test's uvicorn may have applied uvicorn's own logging config, which stops
    # "uvicorn" records from reaching the root logger; the gateway runs with log_config=None.
    uvicorn_logger = logging.getLogger("uvicorn")
    propagate, uvicorn_logger.propagate = uvicorn_logger.propagate, True
    with contextlib.ExitStack() as restore, socket.socket() as sock:
        restore.callback(setattr, uvicorn_logger, "propagate", propagate)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.01)
            port = sock.getsockname()[1]
            response = httpx.get(f"http://127.0.0.1:{port}/", headers={"traceparent": UNSAMPLED}, timeout=10)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    assert response.status_code == 500
    lines = [r for r in map(json.loads, log_lines.getvalue().splitlines()) if r["logger"].startswith("uvicorn")]
    assert any("Exception in ASGI application" in r["msg"] for r in lines), lines
    assert all(r.get("trace_id") == TRACE_ID for r in lines if "ASGI" in r["msg"])


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("/likeopt.v1.RetrievalService/Search", True),
        (b"/likeopt.v1.CacheService/Get", True),  # client call details carry bytes
        ("/grpc.health.v1.Health/Check", False),
        (b"/grpc.health.v1.Health/Watch", False),
        ("/likeopt.v1.RetrievalService/WatchIndex", False),
    ],
)
def test_health_checks_and_index_watches_get_no_span(method: str | bytes, expected: bool) -> None:
    assert traced(SimpleNamespace(method=method)) is expected
