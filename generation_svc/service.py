"""GenerationService: retrieve, then stream a grounded answer with citations.

The whole RAG orchestration lives in generation_svc (not in the gateway), so a gRPC client gets
exactly the event stream the browser gets. Every call has a deadline: the
caller's, capped by LIKEOPT_ANSWER_TIMEOUT_S; a stalled retrieval or backend ends
the stream with DEADLINE_EXCEEDED and an error event. Each step is a module beside
this one: conversation_turns.py, retrieval_calls.py, answer_production.py, answer_stream.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from functools import partial

import grpc
import numpy as np
from prometheus_client import Counter

from generation_svc.answer_cache import AnswerCache, AnswerScope, answer_key
from generation_svc.answer_production import passages_from_hits, produced, said
from generation_svc.answer_stream import (
    DEADLINE_MARGIN_S,
    Event,
    answer_deadline,
    answer_failure,
    failure_event,
    timed,
)
from generation_svc.backends import AnswerFailed, Backend, Turn
from generation_svc.bounds import AnswerBounds
from generation_svc.conversation_turns import ConversationTurns, owner_of
from generation_svc.conversations import (
    ConversationStore,
    drop_retried_turn,
    found_by_borrowing_alone,
    given_documents,
    history_of,
    rewrite_query,
    stored_key,
    withheld,
)
from generation_svc.feedback import FeedbackStore, FeedbackUnavailable, UnknownAnswer
from generation_svc.relevance import NOT_COVERED, RelevanceFloor
from generation_svc.retrieval_calls import readable_documents, search_as_caller
from generation_svc.semantic_cache import SemanticIndex
from generation_svc.shared_stream import SharedStreams
from generation_svc.small_talk import small_talk_reply
from generation_svc.turn_locks import TurnLocks
from likeopt.caching.cache_client import CacheUnreachable
from likeopt.runtime.api_key import holds_key
from likeopt.runtime.config import Config
from likeopt.runtime.contract import (
    ANSWER_TOP_K,
    ID_RE,
    LIST_LIMIT,
    RATINGS,
    InvalidInput,
    check_query,
    rejects_invalid_input,
)
from likeopt.runtime.principal import BadPrincipal, Principal, principal_in, scope_of
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)

NO_ANSWERS = Counter("likeopt_no_answer_total", "Questions answered with NOT_COVERED: no passage was about them.")


def bearer_matches(context: grpc.aio.ServicerContext, api_key: str) -> bool:
    """Whether the call carries the API key as its bearer token (read as the gateway reads it)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return holds_key(value, api_key)
    return False


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    """Streams answers from a backend over passages from retrieval_svc."""

    def __init__(
        self,
        config: Config,
        backend: Backend,
        retrieval: retrieval_pb2_grpc.RetrievalServiceStub,
        answers: AnswerCache,
        conversations: ConversationStore,
        semantic: SemanticIndex | None = None,
        floor: RelevanceFloor | None = None,
        feedback: FeedbackStore | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.retrieval = retrieval
        self.answers = answers
        self.conversations = conversations
        self.turn_locks = TurnLocks()
        self.semantic = semantic
        self.floor = floor
        """Judges whether retrieved passages are about the question; None answers every question."""
        self.feedback = feedback
        """Keeps answers for feedback (answer ids); None keeps nothing."""
        self.flights: SharedStreams[Event] = SharedStreams()
        self.turns = ConversationTurns(conversations, feedback)
        """The conversation an answer continues and the turn it adds, kept in conversations and feedback."""

    async def Answer(
        self, request: generation_pb2.AnswerRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Event]:
        started = time.perf_counter()
        deadline = answer_deadline(context, self.config.answer_timeout_s)
        try:
            principal = self._principal(context)
            check_query(request.query)
            top_k = ANSWER_TOP_K.check(request.top_k)
            bounds = AnswerBounds.of(request)
            turn_key = stored_key(request.conversation_id, owner_of(principal)) if request.conversation_id else ""
            async with self.turn_locks.held(turn_key) as turn:
                conversation = await self.turns.continued(request, principal, turn)
                another_question = bool(conversation.turns) and not drop_retried_turn(conversation, request.query)
                if (reply_text := small_talk_reply(request.query)) is not None:
                    retrieved, retrieval_ms = Event(retrieval=generation_pb2.RetrievalEvent()), 0.0
                    source = said(self.backend.name, reply_text, bounds, small_talk=True)
                else:
                    readable = await readable_documents(self.retrieval, conversation, principal, deadline)
                    history = history_of(withheld(conversation, readable))
                    retrieved, source, searched = await self._grounded(
                        request, history, top_k, bounds, principal, deadline
                    )
                    retrieval_ms = (searched - started) * 1000
                retrieved.retrieval.conversation_id = conversation.conversation_id
                sources = given_documents(hit.doc_id for hit in retrieved.retrieval.hits)
                retrieved.retrieval.another_question = another_question
                yield retrieved
                async with (
                    aclosing(timed(source, started, retrieval_ms, deadline)) as timed_events,
                    aclosing(
                        self.turns.recorded(timed_events, request, conversation, turn, principal, sources)
                    ) as events,
                ):
                    async for event in events:
                        yield event
        except (AnswerFailed, InvalidInput) as failure:
            yield failure_event(context, answer_failure(failure))

    async def _grounded(
        self,
        request: generation_pb2.AnswerRequest,
        history: list[Turn],
        top_k: int,
        bounds: AnswerBounds,
        principal: Principal | None,
        deadline: float,
    ) -> tuple[Event, AsyncGenerator[Event, None], float]:
        """The retrieval event (no hits when the floor judges none about the question), the answer's events, and
        when the search returned (perf_counter)."""
        semantic = self.semantic if not history else None  # follow-ups depend on their turns
        search = retrieval_pb2.SearchRequest(
            query=rewrite_query(request.query, history),
            top_k=top_k,
            mode=request.mode,
            return_query_embedding=semantic is not None,
            min_index_version=request.min_index_version,
        )
        reply = await search_as_caller(self.retrieval, search, deadline, principal)
        searched = time.perf_counter()
        borrowed = self.floor is not None and found_by_borrowing_alone(request.query, search.query, reply.hits)
        if borrowed or not await self._covers(search.query, reply, deadline, principal):
            NO_ANSWERS.inc()
            nothing = generation_pb2.RetrievalEvent(index_version=reply.index_version)
            return Event(retrieval=nothing), said(self.backend.name, NOT_COVERED, bounds), searched
        found = generation_pb2.RetrievalEvent(hits=reply.hits, index_version=reply.index_version)
        source = self._answer_source(request, reply, top_k, bounds, history, semantic, scope_of(principal))
        return Event(retrieval=found), source, searched

    def _answer_source(
        self,
        request: generation_pb2.AnswerRequest,
        reply: retrieval_pb2.SearchResponse,
        top_k: int,
        bounds: AnswerBounds,
        history: list[Turn],
        semantic: SemanticIndex | None,
        readers: str = "",
    ) -> AsyncGenerator[Event, None]:
        """The answer's events: shared with identical questions in flight, replayed from the cache or generated.

        readers is the caller's permission fingerprint: answers are shared (in flight, cached, or found similar)
        only between callers who may read the same documents, as the passages they quote came from them.
        """
        passages = passages_from_hits(list(reply.hits))
        scope = AnswerScope(reply.index_version, self.backend.fingerprint, top_k, request.mode, readers, bounds)
        key = answer_key(request.query, scope, history)
        similar, remember = None, None
        if semantic is not None and reply.query_embedding:
            vector = np.asarray(reply.query_embedding, dtype=np.float32)
            similar = semantic.find(scope, vector, request.query)
            remember = partial(semantic.remember, scope, vector, request.query, key)
        produce = partial(
            produced, self.answers, self.backend, request.query, passages, history, key, similar, remember, bounds
        )
        return self.flights.watch(key, produce)

    async def _covers(
        self, question: str, reply: retrieval_pb2.SearchResponse, deadline: float, principal: Principal | None
    ) -> bool:
        """Whether the passages are about the question, against what the caller may read (relevance.py); always
        when no floor is configured."""
        if self.floor is None:
            return True
        remaining = deadline - asyncio.get_running_loop().time()
        return await self.floor.covers(question, reply, max(remaining - DEADLINE_MARGIN_S, 0.0), principal)

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Event]:
        started = time.perf_counter()
        deadline = answer_deadline(context, self.config.answer_timeout_s)
        try:
            check_query(request.query)
            bounds = AnswerBounds.of(request)
            passages = passages_from_hits(list(request.contexts))
            source = produced(self.answers, self.backend, request.query, passages, [], key=None, bounds=bounds)
            async with aclosing(timed(source, started, 0.0, deadline)) as events:
                async for event in events:
                    yield event
        except (AnswerFailed, InvalidInput) as failure:
            yield failure_event(context, answer_failure(failure))

    @rejects_invalid_input
    async def GetConversation(
        self, request: generation_pb2.GetConversationRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.Conversation:
        """The stored turns as the caller may read them now (withheld): a citation of a document it may no longer
        read comes back withdrawn. When that cannot be checked the call fails (UNAVAILABLE) rather than show what
        may be withdrawn or call withdrawn what may not be."""
        principal = await self._principal_of(request.conversation_id, context)
        try:
            conversation = await self.conversations.load(request.conversation_id, owner_of(principal))
        except CacheUnreachable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "conversations cannot be reached now; try again")
        if conversation is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no conversation {request.conversation_id!r}")
        assert conversation is not None  # abort raises
        try:
            readable = await readable_documents(
                self.retrieval, conversation, principal, answer_deadline(context, self.config.answer_timeout_s)
            )
        except AnswerFailed as failure:
            await context.abort(failure.code, failure.message)
        return withheld(conversation, readable)

    @rejects_invalid_input
    async def DeleteConversation(
        self, request: generation_pb2.DeleteConversationRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.DeleteConversationReply:
        owner = owner_of(await self._principal_of(request.conversation_id, context))
        self.turn_locks.deleted(stored_key(request.conversation_id, owner))  # a turn in flight is not saved
        forgotten = await self.conversations.forget(request.conversation_id, owner)
        if forgotten is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "conversations cannot be reached now; try again")
        if not forgotten:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no conversation {request.conversation_id!r}")
        log.info("conversation deleted", extra={"fields": {"conversation_id": request.conversation_id}})
        return generation_pb2.DeleteConversationReply(conversation_id=request.conversation_id)

    async def _principal_of(self, conversation_id: str, context: grpc.aio.ServicerContext) -> Principal | None:
        """The caller reading or deleting a conversation (its owner_of names whose); a malformed id or principal
        ends the call."""
        if not ID_RE.match(conversation_id):
            raise InvalidInput("conversation_id is malformed")
        try:
            principal = self._principal(context)
        except AnswerFailed as failure:
            await context.abort(failure.code, failure.message)
        return principal

    @rejects_invalid_input
    async def Feedback(
        self, request: generation_pb2.FeedbackRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.FeedbackReply:
        if self.feedback is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "feedback is not kept by this server")
        try:
            owner = owner_of(self._principal(context))
        except AnswerFailed as failure:
            await context.abort(failure.code, failure.message)
        try:
            feedback_id, answer_id = await self.feedback.rate(
                request.answer_id, request.trace_id, request.rating, request.comment, owner
            )
        except UnknownAnswer as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except FeedbackUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return generation_pb2.FeedbackReply(feedback_id=feedback_id, answer_id=answer_id)

    @rejects_invalid_input
    async def ListFeedback(
        self, request: generation_pb2.ListFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.ListFeedbackReply:
        """Questions and comments are users' words: only callers holding the API key may read them."""
        if not self.config.api_key or not bearer_matches(context, self.config.api_key.get_secret_value()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "ListFeedback needs the API key")
        if self.feedback is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "feedback is not kept by this server")
        if request.rating not in ("", *RATINGS):
            raise InvalidInput("rating must be 'up' or 'down'")
        if request.before_feedback_id < 0:
            raise InvalidInput("before_feedback_id must not be negative")
        limit = LIST_LIMIT.check(request.limit)
        try:
            items, counts = await self.feedback.list(request.rating, limit, request.before_feedback_id)
        except FeedbackUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return generation_pb2.ListFeedbackReply(items=items, up=counts.up, down=counts.down)

    def _principal(self, context: grpc.aio.ServicerContext) -> Principal | None:
        """The caller Envoy verified (None in API-key mode or from inside the mesh); a header that does not parse
        is refused, never read as an unrestricted caller."""
        try:
            return principal_in(context.invocation_metadata(), self.config)
        except BadPrincipal as exc:
            raise AnswerFailed(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
