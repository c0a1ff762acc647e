"""OpenTelemetry set-up shared by every process.

Traces go to ``LIKEOPT_OTLP_ENDPOINT`` over OTLP/gRPC in batches; with no endpoint the
tracer still creates spans (so trace ids reach logs and clients) but exports nothing.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup_tracing(service_name: str, otlp_endpoint: str) -> TracerProvider:
    """Install a global tracer provider named ``service_name``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


def current_trace_id() -> str:
    """The active trace id as 32 hex digits, or '' outside a sampled span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""
