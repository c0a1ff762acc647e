"""Run generation_svc: ``python -m generation_svc``."""

from __future__ import annotations

import logging
import sys

import grpc

from generation_svc.answer_cache import AnswerCache
from generation_svc.backends import Backend
from generation_svc.conversations import ConversationStore
from generation_svc.extractive import ExtractiveBackend
from generation_svc.feedback import FeedbackStore
from generation_svc.relevance import RelevanceFloor
from generation_svc.retrieval_calls import RETRIEVAL_TIMEOUT_S
from generation_svc.semantic_cache import SemanticIndex
from generation_svc.service import GenerationServicer
from likeopt.caching.cache_client import CacheClient
from likeopt.runtime.addresses import host_port
from likeopt.runtime.config import Config, settings_or_exit, take_no_arguments
from likeopt.runtime.grpc_client import open_channel
from likeopt.runtime.grpc_server import ServiceSpec, run
from likeopt.runtime.logs import setup_logging
from likeopt.runtime.principal import Principal, forwarded
from likeopt.runtime.telemetry import setup_tracing
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

SERVICE = "generation_svc"
SESSION_TIMEOUT_S = 0.25
"""Conversation reads may take longer than other cache calls: a miss there loses the context."""

log = logging.getLogger(SERVICE)


def make_backend(config: Config) -> Backend:
    """The backend LIKEOPT_GENERATION_BACKEND names; local falls back to extractive when it cannot run."""
    if config.generation_backend == "openai":
        from generation_svc.openai_backend import OpenAIBackend

        return OpenAIBackend(
            config.openai_base_url,
            config.openai_model,
            config.openai_api_key.get_secret_value(),
            config.generation_max_tokens,
            config.answer_timeout_s,
        )
    if config.generation_backend == "local":
        from generation_svc.local import LocalBackend, ModelUnavailable, resolve_model_path

        try:
            return LocalBackend(
                resolve_model_path(config.local_model_path),
                config.generation_max_tokens,
                config.generation_queue,
                config.local_threads,
            )
        except ModelUnavailable as exc:
            # The launcher prints every "notice" a child logs, so the user sees this line.
            log.warning(
                "local backend unavailable; using extractive",
                extra={"fields": {"notice": f"local model unavailable ({exc}); answering with the extractive backend"}},
            )
    return ExtractiveBackend()


def relevance_floor(retrieval: retrieval_pb2_grpc.RetrievalServiceStub) -> RelevanceFloor:
    """The floor, probing the corpus through the same retrieval_svc the answers use."""

    async def search(
        request: retrieval_pb2.SearchBatchRequest, principal: Principal | None
    ) -> retrieval_pb2.SearchBatchResponse:
        return await retrieval.SearchBatch(request, timeout=RETRIEVAL_TIMEOUT_S, metadata=forwarded(principal))

    return RelevanceFloor(search)


def build() -> ServiceSpec:
    config = settings_or_exit(SERVICE)
    setup_logging(SERVICE, config.log_level)
    setup_tracing(SERVICE, config.otlp_endpoint, config.trace_sample_ratio)
    retrieval_channel = open_channel(config.retrieval_addr)
    answers_cache = CacheClient(config.cache_addr, config.cache_timeout_s, config.cache_enabled)
    sessions_cache = CacheClient(
        config.cache_addr, max(config.cache_timeout_s, SESSION_TIMEOUT_S), config.cache_enabled
    )
    backend = make_backend(config)
    log.info("backend ready", extra={"fields": {"backend": backend.name, "fingerprint": backend.fingerprint}})
    retrieval = retrieval_pb2_grpc.RetrievalServiceStub(retrieval_channel)
    feedback = FeedbackStore(config.feedback_db)  # opened later when it cannot be now
    servicer = GenerationServicer(
        config,
        backend,
        retrieval,
        AnswerCache(answers_cache, config.cache_ttl_s),
        ConversationStore(sessions_cache, config.session_ttl_s),
        SemanticIndex(config.semantic_cache_threshold) if config.semantic_cache_threshold else None,
        floor=relevance_floor(retrieval) if config.relevance_floor else None,
        feedback=feedback,
    )

    def register(server: grpc.aio.Server) -> list[str]:
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
        return [generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name]

    async def stop() -> None:
        feedback.close()
        await answers_cache.close()
        await sessions_cache.close()
        await retrieval_channel.close()

    return ServiceSpec(
        name=SERVICE,
        address=host_port(config.host, config.generation_port),
        register=register,
        stop=stop,
        ingress_peers={retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name: retrieval_channel},
    )


if __name__ == "__main__":
    take_no_arguments(SERVICE, sys.argv[1:])
    run(build)
