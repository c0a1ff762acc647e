"""Run retrieval_svc: ``python -m retrieval_svc``."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

import grpc

from likeopt.caching.cache_client import CacheClient
from likeopt.runtime.addresses import host_port
from likeopt.runtime.config import settings_or_exit, take_no_arguments
from likeopt.runtime.grpc_server import ServiceSpec, run
from likeopt.runtime.logs import setup_logging
from likeopt.runtime.telemetry import setup_tracing
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.backend import BackendUnavailable, RetrievalBackend, configured_backend
from retrieval_svc.reachability import Reachability
from retrieval_svc.service import RetrievalServicer

SERVICE = "retrieval_svc"
FOLLOW_INTERVAL_S = 0.5
LOAD_RETRY_S = 2.0
log = logging.getLogger(SERVICE)


def build() -> ServiceSpec:
    """Wire the servicer; the model and indexes load after the port is open."""
    config = settings_or_exit(SERVICE)
    setup_logging(SERVICE, config.log_level)
    setup_tracing(SERVICE, config.otlp_endpoint, config.trace_sample_ratio)
    cache = CacheClient(
        config.cache_addr, config.cache_timeout_s, config.cache_enabled, write_window_s=config.cache_write_window_s
    )
    reachable = Reachability()
    servicer = RetrievalServicer(config, cache, reachable)

    def register(server: grpc.aio.Server) -> list[str]:
        retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server)
        return [retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name]

    following: list[asyncio.Task[None]] = []

    async def start() -> None:
        backend = await asyncio.to_thread(configured_backend, config)
        await load_when_reachable(backend, reachable)
        servicer.serve(backend)
        following.append(asyncio.create_task(follow_writers(servicer.follow, reachable)))

    async def stop() -> None:
        for task in following:
            task.cancel()
        await cache.close()
        await servicer.close()

    return ServiceSpec(
        name=SERVICE,
        address=host_port(config.host, config.retrieval_port),
        register=register,
        start=start,
        stop=stop,
        end_endless_streams=servicer.drain_begins,
        serving=lambda: reachable.now,
    )


async def load_when_reachable(backend: RetrievalBackend, reachable: Reachability) -> None:
    """Load the backend, waiting (NOT_SERVING) while its server is unreachable; other errors end the start."""
    while True:
        try:
            await asyncio.to_thread(backend.load)
            reachable.answered()
            return
        except BackendUnavailable as exc:
            reachable.failed(exc)
            await asyncio.sleep(LOAD_RETRY_S)


async def follow_writers(follow: Callable[[], Awaitable[object]], reachable: Reachability) -> None:
    """Hear of writes other processes committed (the embedded writer's store, or a shared Milvus) every
    FOLLOW_INTERVAL_S, so WatchIndex followers and the caches move to the new index version (a search that asks
    for a newer version catches up at once: RetrievalServicer.follow); each answer, or its absence, tells
    reachable whether the backend's server is there."""
    while True:
        try:
            await follow()
            reachable.answered()
        except BackendUnavailable as exc:
            reachable.failed(exc)
        except Exception:  # a transient store error must not stop following
            log.exception("following the writers failed; retrying")
        await asyncio.sleep(FOLLOW_INTERVAL_S)


if __name__ == "__main__":
    take_no_arguments(SERVICE, sys.argv[1:])
    run(build)
