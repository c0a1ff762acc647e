"""CPU cost of one Python gRPC hop as the services make it (not a test: prints figures).

A cached search crosses two such hops (gateway -> retrieval_svc -> cache_svc), so their
cost bounds the mesh's cached throughput. Client and server share one process here, so
each figure is both ends of a call: without interceptors, and with those every service
installs (OpenTelemetry, request log context, Prometheus) for calls inside an unsampled
trace (every request through Envoy when no OTLP endpoint is set: no spans, the context is
only carried on) and inside a recorded one (a span at each end, made and dropped here),
on asyncio's loop and uvloop's.

Usage, from the repository root:
    python -m benchmarks.grpc_hop [--calls 4000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

import grpc
import uvloop
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from likeopt.runtime.grpc_client import CHANNEL_OPTIONS, open_channel
from likeopt.runtime.grpc_server import RequestLogContext
from likeopt.runtime.grpc_tracing import ServerSpans
from likeopt.runtime.metrics import MetricsInterceptor
from likeopt.v1 import cache_pb2, cache_pb2_grpc

VALUE = b"x" * 3000
"""About the size of a cached search result."""
TRACES = {
    "none": "none",
    "unsampled": "OpenTelemetry + log context + metrics, unsampled trace",
    "recorded": "OpenTelemetry + log context + metrics, recorded trace",
}


class Echo(cache_pb2_grpc.CacheServiceServicer):
    async def Get(self, request: cache_pb2.GetRequest, context: grpc.aio.ServicerContext) -> cache_pb2.GetResponse:
        return cache_pb2.GetResponse(found=True, value=VALUE)


def enter_trace(kind: str) -> None:
    """Make the calls that follow belong to a trace of this kind, as a request's calls would."""
    if kind == "unsampled":
        parent = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
        context.attach(TraceContextTextMapPropagator().extract(parent))
    elif kind == "recorded":
        context.attach(trace.set_span_in_context(trace.get_tracer("grpc_hop").start_span("request")))


async def cpu_per_call_us(kind: str, calls: int, concurrency: int) -> float:
    """CPU microseconds (user + system, both ends) per unary call."""
    trace.set_tracer_provider(TracerProvider())  # records every span it is asked for; exports none
    instrumented = kind != "none"
    interceptors = [ServerSpans(), RequestLogContext(), MetricsInterceptor()] if instrumented else []
    server = grpc.aio.server(interceptors=interceptors)
    cache_pb2_grpc.add_CacheServiceServicer_to_server(Echo(), server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    channel = open_channel(address) if instrumented else grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    request = cache_pb2.GetRequest(namespace="search", key="k")

    async def worker(n: int) -> None:
        enter_trace(kind)  # each worker is a task: its own context
        for _ in range(n):
            await stub.Get(request, timeout=5)

    await worker(200)  # connect and warm up
    before = os.times()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    after = os.times()
    await channel.close()
    await server.stop(0)
    return (after.user + after.system - before.user - before.system) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--one", choices=["asyncio", "uvloop"], help=argparse.SUPPRESS)
    parser.add_argument("--trace", choices=list(TRACES), default="none", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure = cpu_per_call_us(args.trace, args.calls, args.concurrency)
        print(f"{uvloop.run(measure) if args.one == 'uvloop' else asyncio.run(measure):.0f}")
        return
    # Each variant in a fresh process: tracing set-up and loop policy are process-wide.
    print("| loop | interceptors | CPU per call (both ends) |\n|---|---|---:|")
    for loop in ("asyncio", "uvloop"):
        for kind, label in TRACES.items():
            argv = [sys.executable, "-m", "benchmarks.grpc_hop", "--one", loop, "--calls", str(args.calls)]
            argv += ["--concurrency", str(args.concurrency), "--trace", kind]
            micros = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
            print(f"| {loop} | {label} | {micros} µs |", flush=True)


if __name__ == "__main__":
    main()
