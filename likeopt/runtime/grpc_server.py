"""The life cycle every gRPC service shares.

Health checking (NOT_SERVING until the service's own start-up work is done),
server reflection, OpenTelemetry spans, and a graceful shutdown on SIGTERM or
SIGINT: health flips to NOT_SERVING, in-flight calls (streams included) get a grace
period to finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from likeopt.runtime.background_loads import exit_now
from likeopt.runtime.config import STOP_GRACE_S, Config, metrics_port
from likeopt.runtime.grpc_client import KEEPALIVE_TIME_MS, MAX_MESSAGE_BYTES, METADATA_LIMITS
from likeopt.runtime.grpc_tracing import ServerSpans
from likeopt.runtime.interceptors import Streaming, Unary, WrappingInterceptor
from likeopt.runtime.logs import bind_request_span
from likeopt.runtime.metrics import MetricsInterceptor, serve_metrics
from likeopt.runtime.port_health import PortHealth
from likeopt.runtime.reflection import HEALTH_SERVICE, add_reflection

log = logging.getLogger(__name__)

HEALTH_POLL_S = 0.5
"""How often a service's health follows its ServiceSpec.serving."""

SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    *METADATA_LIMITS,
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients ping every KEEPALIVE_TIME_MS, between calls too. A server expecting pings less often (gRPC's
    # default: 5 minutes) counts them as abuse and sends GOAWAY "too_many_pings", which ends long streams such as
    # the gateway's WatchIndex (then its near cache is bypassed until it re-watches); half leaves room for jitter.
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
    ("grpc.so_reuseport", 0),
    # No HPACK dynamic table for what clients send: gRPC's decoder keeps a -bin header's parse error with the table's
    # entry, so after one client sent a value that is not base64, every later call on Envoy's shared connection that
    # carried that header (grpc-trace-bin, say) failed INTERNAL, whoever sent it. Headers then travel whole, a few
    # hundred bytes a call on the services' own network.
    ("grpc.http2.hpack_table_size.decoder", 0),
)


@dataclass
class ServiceSpec:
    """What a service contributes to the shared server."""

    name: str
    address: str
    register: Callable[[grpc.aio.Server], Sequence[str]]
    """Adds the servicers; returns their full service names (for health and reflection)."""
    start: Callable[[], Awaitable[None]] | None = None
    """Slow start-up work (loading models, indexes); the server answers NOT_SERVING meanwhile."""
    stop: Callable[[], Awaitable[None]] | None = None
    """Releases resources after the last call has finished."""
    end_endless_streams: Callable[[], None] | None = None
    """Called as the drain begins: ends streams that never finish by themselves (WatchIndex) and sets when to
    abandon work that could outlast the grace (an ingestion's embedding), so the drain waits only for what can
    finish."""
    grace_s: float = STOP_GRACE_S
    ingress_peers: Mapping[str, grpc.aio.Channel] | None = None
    """Set on the service Envoy sends its port's reflection and health calls to: the port's other gRPC services,
    each with a channel to the process serving it (likeopt.runtime.reflection, likeopt.runtime.port_health)."""
    extra_options: Sequence[tuple[str, int]] = field(default_factory=tuple)
    serving: Callable[[], bool] | None = None
    """After start-up, polled every HEALTH_POLL_S: health is NOT_SERVING while it says False (a server the
    service cannot work without is away), SERVING again once it says True. The process keeps running and
    answering, so an outage it cannot mend never costs a restart."""


class RequestLogContext(WrappingInterceptor):
    """Binds each call's span for the lines grpc logs after it has ended (an unexpected error).

    Comes after ServerSpans, so the call's span (or its caller's unsampled context) is current when it runs.
    """

    def wrap_unary(self, call: Unary, method: str) -> Unary:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            bind_request_span()
            return await call(request, context)

        return unary

    def wrap_streaming(self, stream: Streaming, method: str) -> Streaming:
        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            bind_request_span()
            async for reply in stream(request, context):
                yield reply

        return streaming


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Every service's interceptors, in order: spans, then the log context (which needs the span), then metrics."""
    return [ServerSpans(), RequestLogContext(), MetricsInterceptor()]


async def serve(spec: ServiceSpec) -> int:
    """Run the service until SIGTERM/SIGINT; return the process exit code."""
    server = grpc.aio.server(interceptors=server_interceptors(), options=[*SERVER_OPTIONS, *spec.extra_options])
    health = PortHealth(spec.ingress_peers)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = list(spec.register(server))
    add_reflection(server, [*names, HEALTH_SERVICE], spec.ingress_peers is not None)
    try:
        server.add_insecure_port(spec.address)
    except RuntimeError as exc:
        log.error("cannot listen", extra={"fields": {"address": spec.address, "error": str(exc)}})
        print(f"{spec.name}: cannot listen on {spec.address} (port in use?): {exc}", file=sys.stderr)
        return 2
    await _set_all(health, names, health_pb2.HealthCheckResponse.NOT_SERVING)
    config = Config.for_process(spec.name)
    serve_metrics(config.host, metrics_port(spec.name, config))
    await server.start()
    log.info("listening", extra={"fields": {"address": spec.address}})

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    if spec.start is not None:
        starting = asyncio.create_task(spec.start())
        done, _ = await asyncio.wait({starting, asyncio.create_task(stopping.wait())}, return_when="FIRST_COMPLETED")
        if starting not in done:
            starting.cancel()
        elif (failure := starting.exception()) is not None:
            log.error("start-up failed", exc_info=failure)
            # Last in the log, as one plain line: the launcher shows the log's tail, the traceback above it.
            print(f"{spec.name}: cannot start: {failure}", file=sys.stderr, flush=True)
            await server.stop(0)
            return 1
    if not stopping.is_set():
        await _set_all(health, names, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving")
        following = asyncio.create_task(_follow_serving(health, names, spec.serving, stopping))
        await stopping.wait()
        await following

    log.info("shutting down", extra={"fields": {"grace_s": spec.grace_s}})
    await health.enter_graceful_shutdown()
    if spec.end_endless_streams is not None:
        spec.end_endless_streams()
    await server.stop(spec.grace_s)
    if spec.stop is not None:
        await spec.stop()
    log.info("stopped")
    return 0


async def _follow_serving(
    health: HealthServicer, names: Sequence[str], serving: Callable[[], bool] | None, stopping: asyncio.Event
) -> None:
    """Keep health in step with spec.serving until the service stops (ServiceSpec.serving)."""
    if serving is None:
        return
    last = True
    while not stopping.is_set():
        now = serving()
        if now != last:
            status = health_pb2.HealthCheckResponse.SERVING if now else health_pb2.HealthCheckResponse.NOT_SERVING
            await _set_all(health, names, status)
            if now:
                log.info("serving again")
            else:
                log.warning("not serving: a server it needs is away")
            last = now
        try:
            await asyncio.wait_for(stopping.wait(), HEALTH_POLL_S)
        except TimeoutError:
            pass


async def _set_all(health: HealthServicer, names: Sequence[str], status: int) -> None:
    for name in ("", *names):
        await health.set(name, status)


def run(spec_factory: Callable[[], ServiceSpec]) -> None:
    """Entry point helper: build the spec inside the event loop and exit with serve's code, without waiting for a
    load still under way (likeopt.runtime.background_loads).

    The loop is uvloop's: every call crosses the event loop several times (gRPC, cache, threads),
    and uvloop makes each crossing cheaper (about 8 % less CPU per unary call, benchmarks/README.md).
    """

    async def main() -> int:
        return await serve(spec_factory())

    exit_now(uvloop.run(main()))
