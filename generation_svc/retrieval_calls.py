"""generation_svc's calls to retrieval_svc, made as the caller (its principal passed on) within the answer's
deadline: the search for passages, and which cited documents the caller may still read. A failure becomes
AnswerFailed in words the caller may read."""

from __future__ import annotations

import asyncio
import logging

import grpc

from generation_svc.backends import AnswerFailed
from generation_svc.conversations import cited_documents
from likeopt.runtime.grpc_client import CHANNEL_FAILURE, channel_failure_words
from likeopt.runtime.principal import Principal, forwarded
from likeopt.v1 import generation_pb2, retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)

RETRIEVAL_TIMEOUT_S = 5.0


async def search_as_caller(
    retrieval: retrieval_pb2_grpc.RetrievalServiceStub,
    search: retrieval_pb2.SearchRequest,
    deadline: float,
    principal: Principal | None = None,
) -> retrieval_pb2.SearchResponse:
    """Passages for the question, searched as the caller (its principal passed on): only what it may read."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise AnswerFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left to retrieve passages")
    try:
        return await retrieval.Search(
            search, timeout=min(RETRIEVAL_TIMEOUT_S, remaining), metadata=forwarded(principal)
        )
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED):
            code = grpc.StatusCode.UNAVAILABLE
        raise AnswerFailed(code, retrieval_failure(exc)) from exc


async def readable_documents(
    retrieval: retrieval_pb2_grpc.RetrievalServiceStub,
    conversation: generation_pb2.Conversation,
    principal: Principal | None,
    deadline: float,
) -> set[str]:
    """Which of the documents the conversation cites the caller may still read: one ListDocuments as the caller
    (retrieval_svc applies its access lists, and a deleted document is not listed), none when nothing is
    cited. AnswerFailed when retrieval_svc does not say."""
    cited = cited_documents(conversation)
    if not cited:
        return set()
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise AnswerFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left to check the cited documents")
    request = retrieval_pb2.ListDocumentsRequest(ids=cited, limit=len(cited))
    try:
        reply = await retrieval.ListDocuments(
            request, timeout=min(RETRIEVAL_TIMEOUT_S, remaining), metadata=forwarded(principal)
        )
    except grpc.aio.AioRpcError as exc:
        code = exc.code() if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED else grpc.StatusCode.UNAVAILABLE
        raise AnswerFailed(code, f"the cited documents cannot be checked now: {retrieval_failure(exc)}") from exc
    return {document.id for document in reply.documents}


def retrieval_failure(exc: grpc.aio.AioRpcError) -> str:
    """What the caller reads of a failed search: retrieval_svc's own words (a Milvus it cannot reach, a bad
    query), never gRPC's about a connection nor an internal error's text, which go to the log."""
    details = exc.details() or exc.code().name
    if exc.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS):
        log.warning("retrieval failed", extra={"fields": {"upstream": "retrieval_svc", "details": details}})
        return "retrieval failed: internal error in retrieval_svc; the trace id finds it in the logs"
    if CHANNEL_FAILURE.match(details):
        log.warning("retrieval_svc unreachable", extra={"fields": {"upstream": "retrieval_svc", "details": details}})
        return channel_failure_words(details, "retrieval_svc")
    return f"retrieval failed: {details}"
