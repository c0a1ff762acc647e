"""GenerationService: retrieve, then stream a grounded answer with citations.

The whole RAG orchestration lives here (not in the gateway), so a gRPC client gets
exactly the event stream the browser gets.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator

import grpc

from generation_svc.backends import Backend, Passage
from likeopt.config import Config
from likeopt.telemetry import StreamSpans, current_trace_id
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 4096
DEFAULT_TOP_K = 5
MAX_TOP_K = 20
RETRIEVAL_TIMEOUT_S = 5.0
MARKER = re.compile(r"\[(\d{1,3})\]")


class AnswerFailed(Exception):
    """Ends a stream with an error event and the matching gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_question(query: str) -> None:
    """Raise AnswerFailed(INVALID_ARGUMENT) for a question that cannot be answered."""
    if not query.strip():
        raise AnswerFailed(grpc.StatusCode.INVALID_ARGUMENT, "query must contain a non-space character")
    if len(query) > MAX_QUERY_CHARS:
        raise AnswerFailed(
            grpc.StatusCode.INVALID_ARGUMENT, f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}"
        )
    if "\x00" in query:
        raise AnswerFailed(grpc.StatusCode.INVALID_ARGUMENT, "query must not contain NUL characters")


def passages_from_hits(hits: list[retrieval_pb2.SearchHit]) -> list[Passage]:
    """Number hits from 1 in their order."""
    return [Passage(n, h.doc_id, h.chunk_id, h.title, h.text) for n, h in enumerate(hits, start=1)]


def cited_numbers(text: str, count: int) -> list[int]:
    """Passage numbers cited by [n] markers in text, in order of first citation, valid ones only."""
    seen: dict[int, None] = {}
    for match in MARKER.finditer(text):
        n = int(match.group(1))
        if 1 <= n <= count:
            seen.setdefault(n)
    return list(seen)


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    """Streams answers from a backend over passages from retrieval_svc."""

    def __init__(self, config: Config, backend: Backend, retrieval: retrieval_pb2_grpc.RetrievalServiceStub) -> None:
        self.config = config
        self.backend = backend
        self.retrieval = retrieval

    async def Answer(
        self, request: generation_pb2.AnswerRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.AnswerEvent]:
        started = time.perf_counter()
        conversation_id = request.conversation_id or uuid.uuid4().hex
        try:
            validate_question(request.query)
            hits, index_version = await self._retrieve(request)
            retrieval_ms = (time.perf_counter() - started) * 1000
            yield generation_pb2.AnswerEvent(
                retrieval=generation_pb2.RetrievalEvent(hits=hits, index_version=index_version)
            )
            async for event in self._generate(request.query, passages_from_hits(hits), started, retrieval_ms):
                if event.HasField("done"):
                    event.done.conversation_id = conversation_id
                yield event
        except AnswerFailed as failure:
            yield self._fail(context, failure)

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.AnswerEvent]:
        started = time.perf_counter()
        try:
            validate_question(request.query)
            async for event in self._generate(request.query, passages_from_hits(list(request.contexts)), started, 0.0):
                yield event
        except AnswerFailed as failure:
            yield self._fail(context, failure)

    async def _retrieve(self, request: generation_pb2.AnswerRequest) -> tuple[list[retrieval_pb2.SearchHit], int]:
        top_k = request.top_k or DEFAULT_TOP_K
        if not 1 <= top_k <= MAX_TOP_K:
            raise AnswerFailed(grpc.StatusCode.INVALID_ARGUMENT, f"top_k must be between 1 and {MAX_TOP_K}")
        try:
            reply = await self.retrieval.Search(
                retrieval_pb2.SearchRequest(query=request.query, top_k=top_k, mode=request.mode),
                timeout=RETRIEVAL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED):
                code = grpc.StatusCode.UNAVAILABLE
            raise AnswerFailed(code, f"retrieval failed: {exc.details()}") from exc
        return list(reply.hits), reply.index_version

    async def _generate(
        self, question: str, passages: list[Passage], started: float, retrieval_ms: float
    ) -> AsyncIterator[generation_pb2.AnswerEvent]:
        """Deltas from the backend, then each cited passage once, then done."""
        text_parts: list[str] = []
        first_token_ms = 0.0
        with StreamSpans("backend", {"likeopt.backend": self.backend.name}) as spans:
            async for piece in self.backend.stream(question, passages, []):
                if not piece:
                    continue
                spans.piece()
                if not text_parts:
                    first_token_ms = (time.perf_counter() - started) * 1000
                text_parts.append(piece)
                yield generation_pb2.AnswerEvent(delta=generation_pb2.DeltaEvent(text=piece))
            spans.stream.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        for n in cited_numbers("".join(text_parts), len(passages)):
            p = passages[n - 1]
            yield generation_pb2.AnswerEvent(
                citation=generation_pb2.CitationEvent(
                    n=n, doc_id=p.doc_id, chunk_id=p.chunk_id, title=p.title, text=p.text
                )
            )
        yield generation_pb2.AnswerEvent(
            done=generation_pb2.DoneEvent(
                trace_id=current_trace_id(),
                finish_reason="stop",
                backend=self.backend.name,
                timings=generation_pb2.Timings(
                    retrieval_ms=retrieval_ms,
                    first_token_ms=first_token_ms,
                    total_ms=(time.perf_counter() - started) * 1000,
                ),
            )
        )

    @staticmethod
    def _fail(context: grpc.aio.ServicerContext, failure: AnswerFailed) -> generation_pb2.AnswerEvent:
        log.warning("answer failed", extra={"fields": {"code": failure.code.name, "error": failure.message}})
        context.set_code(failure.code)
        context.set_details(failure.message)
        return generation_pb2.AnswerEvent(
            error=generation_pb2.ErrorEvent(code=failure.code.name, message=failure.message)
        )
