"""CPU cost of one Python gRPC hop as the services make it (not a test: prints figures).

A cached search crosses two such hops (gateway -> retrieval_svc -> cache_svc), so their
cost bounds the mesh's cached throughput. Client and server share one process here, so
each figure is both ends of a call: with and without the interceptors every service
installs (OpenTelemetry, request log context, Prometheus), on asyncio's loop and uvloop's.

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
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from likeopt.grpc_client import CHANNEL_OPTIONS, open_channel
from likeopt.grpc_server import RequestLogContext
from likeopt.metrics import MetricsInterceptor
from likeopt.telemetry import setup_tracing
from likeopt.v1 import cache_pb2, cache_pb2_grpc

VALUE = b"x" * 3000
"""About the size of a cached search result."""


class Echo(cache_pb2_grpc.CacheServiceServicer):
    async def Get(self, request: cache_pb2.GetRequest, context: grpc.aio.ServicerContext) -> cache_pb2.GetResponse:
        return cache_pb2.GetResponse(found=True, value=VALUE)


async def cpu_per_call_us(instrumented: bool, calls: int, concurrency: int) -> float:
    """CPU microseconds (user + system, both ends) per unary call."""
    setup_tracing("grpc_hop", "", 1.0)
    interceptors = [aio_server_interceptor(), RequestLogContext(), MetricsInterceptor()] if instrumented else []
    server = grpc.aio.server(interceptors=interceptors)
    cache_pb2_grpc.add_CacheServiceServicer_to_server(Echo(), server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    channel = open_channel(address) if instrumented else grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    request = cache_pb2.GetRequest(namespace="search", key="k")

    async def worker(n: int) -> None:
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
    parser.add_argument("--instrumented", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure = cpu_per_call_us(args.instrumented, args.calls, args.concurrency)
        print(f"{uvloop.run(measure) if args.one == 'uvloop' else asyncio.run(measure):.0f}")
        return
    # Each variant in a fresh process: tracing set-up and loop policy are process-wide.
    print("| loop | interceptors | CPU per call (both ends) |\n|---|---|---:|")
    for loop in ("asyncio", "uvloop"):
        for instrumented in (False, True):
            argv = [sys.executable, "-m", "benchmarks.grpc_hop", "--one", loop, "--calls", str(args.calls)]
            argv += ["--concurrency", str(args.concurrency)] + (["--instrumented"] if instrumented else [])
            micros = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
            label = "OpenTelemetry + log context + metrics" if instrumented else "none"
            print(f"| {loop} | {label} | {micros} µs |", flush=True)


if __name__ == "__main__":
    main()
