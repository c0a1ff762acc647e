"""OpenTelemetry set-up shared by every process.

Traces go to ``LIKEOPT_OTLP_ENDPOINT`` over OTLP/gRPC in batches. Sampling is parent-based:
the first hop that sees a request (Envoy, for everything through the front door) decides
with ``LIKEOPT_TRACE_SAMPLE_RATIO`` and every later hop follows the ``sampled`` flag of the
W3C ``traceparent`` it receives, so a trace is either whole or absent.

With no endpoint nothing is recorded (the ratio counts as 0): spans are then non-recording
but still carry valid trace and span ids, so ``X-Trace-Id``, the ``done`` event and every
log line keep their ids whether or not traces are exported.

A hop whose caller sent an unsampled trace context makes no spans of its own at all (see
:func:`unsampled_parent`): nothing would record them, and making them cost about 0.12 ms
of CPU per gRPC call (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import grpc
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from likeopt.runtime.addresses import Collector, ca_file, otlp_collector

# Span attributes of cache lookups, shared by cache_svc, its clients and the tracing test.
CACHE_NAMESPACE = "likeopt.cache.namespace"
CACHE_LAYER = "likeopt.cache.layer"
"""``l1``, ``l2``, or ``service`` for a client's lookup through cache_svc."""
CACHE_HIT = "likeopt.cache.hit"
CACHE_KEYS = "likeopt.cache.keys"
CACHE_HITS = "likeopt.cache.hits"
CACHE_ERROR = "likeopt.cache.error"
"""Why a client's lookup counted as a miss without an answer (a gRPC status code name)."""
NEAR_LAYER = "near"
"""The layer of a process's own near cache (likeopt/caching/near_cache.py), whose hits make no span of their own."""


def note_near_hit(namespace: str) -> None:
    """Mark the current span as answered from this process's near cache: the hit makes no span of its own, so a
    cached search's trace said nothing of why it had no hops below. Only a recorded span is touched."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({CACHE_LAYER: NEAR_LAYER, CACHE_NAMESPACE: namespace, CACHE_HIT: True})


def effective_sample_ratio(otlp_endpoint: str, ratio: float) -> float:
    """The share of new traces to record: ``ratio``, or 0 when there is nowhere to send them.

    Envoy's sampling percentage and the services' root sampler both use this, so they agree.
    """
    return ratio if otlp_endpoint else 0.0


def tracer_provider(service_name: str, otlp_endpoint: str, sample_ratio: float = 1.0) -> TracerProvider:
    """A tracer provider named ``service_name``, exporting to ``otlp_endpoint`` when set.

    The batch processor reads its schedule (``OTEL_BSP_SCHEDULE_DELAY`` and friends) from
    the environment, so tests can make it export quickly without a setting of our own.
    """
    sampler = ParentBased(TraceIdRatioBased(effective_sample_ratio(otlp_endpoint, sample_ratio)))
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler)
    if otlp_endpoint:
        provider.add_span_processor(BatchSpanProcessor(span_exporter(otlp_collector(otlp_endpoint))))
    return provider


def span_exporter(collector: Collector) -> SpanExporter:
    """An OTLP/gRPC exporter to ``collector`` speaking what Envoy speaks to it: plaintext, or TLS with the
    collector's certificate checked against :func:`~likeopt.runtime.addresses.ca_file` for its host name."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    if not collector.tls:
        return OTLPSpanExporter(endpoint=collector.target, insecure=True)
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca_file()).read_bytes())
    return OTLPSpanExporter(endpoint=collector.target, insecure=False, credentials=credentials)


def setup_tracing(service_name: str, otlp_endpoint: str, sample_ratio: float = 1.0) -> TracerProvider:
    """Install :func:`tracer_provider` as this process's global provider (once, at start)."""
    provider = tracer_provider(service_name, otlp_endpoint, sample_ratio)
    trace.set_tracer_provider(provider)
    return provider


TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
"""The W3C headers (and gRPC metadata keys) that carry a trace context from hop to hop."""

UNTRACED_PATHS = frozenset({"/healthz", "/metrics", "/api/v1/healthz", "/api/v1/readyz", "/api/v1/metrics"})
"""Health, readiness and metrics over HTTP: Kubernetes, Envoy and Prometheus ask every few seconds, and each
request would be a trace of its own. Neither Envoy nor the gateway traces them."""
GRPC_HEALTH_PREFIX = "/grpc.health.v1.Health/"
"""gRPC health checks' methods, untraced for the same reason by Envoy and every service."""


def unsampled_parent(carrier: Mapping[str, str]) -> Context | None:
    """The context a caller sent in ``carrier`` (W3C headers) when it says "not sampled", else None.

    A request inside such a trace records nothing anywhere, so it runs in this context with no
    span of its own: its trace id still reaches the logs, ``X-Trace-Id`` and the next hop. A
    request that sent no context starts a trace, and one that is sampled records it: both None,
    for the usual spans.
    """
    if "traceparent" not in carrier:
        return None
    context = propagate.extract(carrier)
    return context if in_unsampled_trace(context) else None


def in_unsampled_trace(context: Context | None = None) -> bool:
    """Whether the span of context (by default the current one) belongs to a trace that nobody records."""
    span_context = trace.get_current_span(context).get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


def current_trace_id() -> str:
    """The active trace id as 32 hex digits, or '' outside any span.

    Sampled or not: an unsampled request still has a trace id worth quoting in logs.
    """
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


class StreamSpans:
    """The spans of one streamed generation: ``<name> stream`` for all of it, and
    ``<name> first token`` for the wait before its first piece.

    Neither becomes the current span: they stay open across the yields of an async
    generator, and a span made current there would leak into whatever its consumer runs
    between two pieces. Use as a context manager around the loop over the stream; both
    spans end when it exits, however the stream ended (finished, failed or cancelled), the
    stream's with the number of pieces (``likeopt.stream.pieces``).
    """

    def __init__(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        tracer = trace.get_tracer(__name__)
        self.stream = tracer.start_span(f"{name} stream", attributes=attributes)
        self._first_token = tracer.start_span(f"{name} first token", context=trace.set_span_in_context(self.stream))
        self._waiting = True
        self.pieces = 0

    def piece(self) -> None:
        """A piece of output arrived; the first one ends the first-token span."""
        self.pieces += 1
        if self._waiting:
            self._waiting = False
            self._first_token.end()

    def __enter__(self) -> StreamSpans:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is not None and not isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            self.stream.record_exception(error)
            self.stream.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif error is not None:
            self.stream.set_attribute("likeopt.stream.abandoned", True)
        if self._waiting:
            self._waiting = False
            self._first_token.end()
        self.stream.set_attribute("likeopt.stream.pieces", self.pieces)
        self.stream.end()
