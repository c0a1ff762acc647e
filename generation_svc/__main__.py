"""Run generation_svc: ``python -m generation_svc``."""

from __future__ import annotations

import grpc

from generation_svc.backends import Backend
from generation_svc.extractive import ExtractiveBackend
from generation_svc.service import GenerationServicer
from likeopt.config import Config
from likeopt.grpc_client import open_channel
from likeopt.grpc_server import ServiceSpec, run
from likeopt.logs import setup_logging
from likeopt.telemetry import setup_tracing
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2_grpc

SERVICE = "generation_svc"


def make_backend(config: Config) -> Backend:
    """The backend LIKEOPT_GENERATION_BACKEND names."""
    if config.generation_backend == "extractive":
        return ExtractiveBackend()
    raise SystemExit(f"{SERVICE}: backend {config.generation_backend!r} is not available in this build")


def build() -> ServiceSpec:
    config = Config.from_env()
    setup_logging(SERVICE, config.log_level)
    setup_tracing(SERVICE, config.otlp_endpoint, config.trace_sample_ratio)
    retrieval_channel = open_channel(config.retrieval_addr)
    servicer = GenerationServicer(
        config, make_backend(config), retrieval_pb2_grpc.RetrievalServiceStub(retrieval_channel)
    )

    def register(server: grpc.aio.Server) -> list[str]:
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
        return [generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name]

    async def stop() -> None:
        await retrieval_channel.close()

    return ServiceSpec(name=SERVICE, address=f"{config.host}:{config.generation_port}", register=register, stop=stop)


if __name__ == "__main__":
    run(build)
