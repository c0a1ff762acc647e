"""Run cache_svc: ``python -m cache_svc``."""

from __future__ import annotations

import sys

import grpc
from opentelemetry.instrumentation.redis import RedisInstrumentor
from prometheus_client import REGISTRY

from cache_svc.l1 import L1Cache
from cache_svc.l2 import RedisLayer
from cache_svc.metrics import CacheCollector
from cache_svc.service import CacheServicer
from cache_svc.two_layer import TwoLayerCache
from likeopt.runtime.addresses import host_port
from likeopt.runtime.config import settings_or_exit, take_no_arguments
from likeopt.runtime.grpc_server import ServiceSpec, run
from likeopt.runtime.logs import setup_logging
from likeopt.runtime.telemetry import setup_tracing
from likeopt.v1 import cache_pb2, cache_pb2_grpc

SERVICE = "cache_svc"
L2_START_WAIT_S = 10.0
"""How long cache_svc waits at start for Redis to answer before it serves with L2 off (L1 only, probed on)."""


def build() -> ServiceSpec:
    config = settings_or_exit(SERVICE)
    setup_logging(SERVICE, config.log_level)
    setup_tracing(SERVICE, config.otlp_endpoint, config.trace_sample_ratio)
    RedisInstrumentor().instrument()  # a span per Redis command or pipeline, under the RPC's
    l2 = RedisLayer(config.redis_url, config.redis_timeout_s, cluster=config.redis_cluster)
    cache = TwoLayerCache(
        L1Cache(config.cache_l1_max_entries, config.cache_l1_max_bytes), l2, default_ttl_s=config.cache_ttl_s
    )
    REGISTRY.register(CacheCollector(cache))

    def register(server: grpc.aio.Server) -> list[str]:
        cache_pb2_grpc.add_CacheServiceServicer_to_server(CacheServicer(cache), server)
        return [cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name]

    async def start() -> None:
        await l2.connect(L2_START_WAIT_S)  # a first request must not miss what Redis holds
        l2.start_probing()  # Redis health re-checked on its own schedule, not only when a request calls

    return ServiceSpec(
        name=SERVICE,
        address=host_port(config.host, config.cache_port),
        register=register,
        start=start,
        stop=l2.aclose,
    )


if __name__ == "__main__":
    take_no_arguments(SERVICE, sys.argv[1:])
    run(build)
