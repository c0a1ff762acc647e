"""GenerationService: retrieve, then stream a grounded answer with citations.

The whole RAG orchestration lives here (not in the gateway), so a gRPC client gets
exactly the event stream the browser gets. Every call has a deadline: the
caller's, capped by LIKEOPT_ANSWER_TIMEOUT_S; a stalled retrieval or backend ends
the stream with DEADLINE_EXCEEDED and an error event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from functools import partial
from typing import TypeVar

import grpc
import numpy as np
from prometheus_client import Counter

from generation_svc.answer_cache import AnswerCache, AnswerScope, answer_key, cacheable
from generation_svc.backends import AnswerFailed, Backend, Passage, Turn, Usage, as_read
from generation_svc.bounds import UNBOUNDED, AnswerBounds, until_stop
from generation_svc.conversations import (
    MAX_TURNS,
    ConversationStore,
    add_turn,
    as_it_stood_after,
    cited_documents,
    cited_only,
    drop_retried_turn,
    found_by_borrowing_alone,
    history_of,
    rewrite_query,
    stored_key,
    withheld,
)
from generation_svc.extractive import count_pieces
from generation_svc.feedback import FeedbackStore, FeedbackUnavailable, UnknownAnswer
from generation_svc.grounding import check, observe
from generation_svc.relevance import NOT_COVERED, RelevanceFloor
from generation_svc.semantic_cache import SEMANTIC_HITS, SemanticIndex
from generation_svc.shared_stream import SharedStreams
from generation_svc.small_talk import small_talk_reply
from generation_svc.turn_locks import Turn as HeldTurn
from generation_svc.turn_locks import TurnLocks
from likeopt.caching.cache_client import CacheUnreachable
from likeopt.runtime.api_key import holds_key
from likeopt.runtime.config import Config
from likeopt.runtime.contract import (
    ANSWER_TOP_K,
    ID_RE,
    INVALID_INPUT_STATUS,
    LIST_LIMIT,
    RATINGS,
    InvalidInput,
    check_conversation_id,
    check_optional_id,
    check_query,
    rejects_invalid_input,
)
from likeopt.runtime.grpc_client import CHANNEL_FAILURE, channel_failure_words
from likeopt.runtime.principal import BadPrincipal, Principal, forwarded, principal_in, scope_of
from likeopt.runtime.telemetry import StreamSpans, current_trace_id
from likeopt.runtime.text import cited_numbers
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIEVAL_TIMEOUT_S = 5.0
DEADLINE_MARGIN_S = 0.05
"""Kept back from the caller's deadline so the error event still reaches it."""
NO_ANSWERS = Counter("likeopt_no_answer_total", "Questions answered with NOT_COVERED: no passage was about them.")

Event = generation_pb2.AnswerEvent


def bearer_matches(context: grpc.aio.ServicerContext, api_key: str) -> bool:
    """Whether the call carries the API key as its bearer token (read as the gateway reads it)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return holds_key(value, api_key)
    return False


def answer_failure(exc: AnswerFailed | InvalidInput) -> AnswerFailed:
    """The failure a stream ends with: a bad request as INVALID_INPUT_STATUS, the contract's one mapping."""
    return AnswerFailed(INVALID_INPUT_STATUS, str(exc)) if isinstance(exc, InvalidInput) else exc


def passages_from_hits(hits: list[retrieval_pb2.SearchHit]) -> list[Passage]:
    """Number hits from 1 in their order."""
    return [Passage(n, h.doc_id, h.chunk_id, h.title, h.text) for n, h in enumerate(hits, start=1)]


async def within_deadline(source: AsyncGenerator[T, None], deadline: float) -> AsyncIterator[T]:
    """source's items; past the loop-time deadline, source is closed and DEADLINE_EXCEEDED raised."""
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await anext(source)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise AnswerFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "the answer ran past its deadline") from None
            yield item
    finally:
        await source.aclose()


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

    async def Answer(
        self, request: generation_pb2.AnswerRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Event]:
        started = time.perf_counter()
        deadline = self._deadline(context)
        try:
            principal = self._principal(context)
            check_query(request.query)
            top_k = ANSWER_TOP_K.check(request.top_k)
            bounds = AnswerBounds.of(request)
            turn_key = stored_key(request.conversation_id, owner_of(principal)) if request.conversation_id else ""
            async with self.turn_locks.held(turn_key) as turn:
                conversation = await self._conversation(request, principal, turn)
                another_question = bool(conversation.turns) and not drop_retried_turn(conversation, request.query)
                if (reply_text := small_talk_reply(request.query)) is not None:
                    retrieved, retrieval_ms = Event(retrieval=generation_pb2.RetrievalEvent()), 0.0
                    source = self._say(reply_text, bounds, small_talk=True)
                else:
                    readable = await self._readable(conversation, principal, deadline)
                    history = history_of(withheld(conversation, readable))
                    retrieved, source, searched = await self._grounded(
                        request, history, top_k, bounds, principal, deadline
                    )
                    retrieval_ms = (searched - started) * 1000
                retrieved.retrieval.conversation_id = conversation.conversation_id
                retrieved.retrieval.another_question = another_question
                yield retrieved
                async with (
                    aclosing(self._timed(source, started, retrieval_ms, deadline)) as timed,
                    aclosing(self._recorded(timed, request, conversation, turn, principal)) as events,
                ):
                    async for event in events:
                        yield event
        except (AnswerFailed, InvalidInput) as failure:
            yield self._fail(context, answer_failure(failure))

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
        reply = await self._retrieve(search, deadline, principal)
        searched = time.perf_counter()
        borrowed = self.floor is not None and found_by_borrowing_alone(request.query, search.query, reply.hits)
        if borrowed or not await self._covers(search.query, reply, deadline, principal):
            NO_ANSWERS.inc()
            nothing = generation_pb2.RetrievalEvent(index_version=reply.index_version)
            return Event(retrieval=nothing), self._say(NOT_COVERED, bounds), searched
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
        produce = partial(self._produce, request.query, passages, history, key, similar, remember, bounds)
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

    async def _say(self, text: str, bounds: AnswerBounds, small_talk: bool = False) -> AsyncIterator[Event]:
        """An answer that is not from the documents (they do not cover the question, or it was small talk), within
        the caller's bounds: it cites nothing and says so in done.no_answer."""
        text, finish_reason = bounds.cut(text)
        if text:
            yield Event(delta=generation_pb2.DeltaEvent(text=text))
        done = generation_pb2.DoneEvent(
            finish_reason=finish_reason,
            backend=self.backend.name,
            no_answer=True,
            small_talk=small_talk,
            completion_tokens=count_pieces(text),  # counted as the extractive backend counts; no prompt was read
        )
        yield Event(done=done)

    async def _recorded(
        self,
        events: AsyncIterator[Event],
        request: generation_pb2.AnswerRequest,
        conversation: generation_pb2.Conversation,
        turn: HeldTurn,
        principal: Principal | None = None,
    ) -> AsyncIterator[Event]:
        """events, the finished turn stored in the conversation and the answer kept for feedback (neither for an
        ephemeral request). An answer that ends early (stopped by the client, or failed) is stored as far as it
        went, so a follow-up still sees it."""
        text: list[str] = []
        citations: list[generation_pb2.CitationEvent] = []
        done: generation_pb2.DoneEvent | None = None
        owner = owner_of(principal)
        try:
            async for event in events:
                if event.HasField("delta"):
                    text.append(event.delta.text)
                elif event.HasField("citation"):
                    citations.append(event.citation)
                elif event.HasField("done"):
                    done = event.done
                    done.conversation_id = conversation.conversation_id
                    done.citations.extend(citations)
                    await self._keep_turn(
                        request, conversation, turn, "".join(text), citations, owner_of(principal), done
                    )
                yield event
        finally:
            if done is None:  # the question alone still gives a follow-up's search its words
                await self._keep_turn(request, conversation, turn, "".join(text), citations, owner, None)

    async def _keep_turn(
        self,
        request: generation_pb2.AnswerRequest,
        conversation: generation_pb2.Conversation,
        turn: HeldTurn,
        answer: str,
        citations: list[generation_pb2.CitationEvent],
        owner: str,
        done: generation_pb2.DoneEvent | None,
    ) -> None:
        """Store the turn (interrupted when there is no done) and keep a finished answer for feedback. It is stored
        before the done event goes out and before the conversation's next question may load it (a follow-up sent
        at once finds it), and not at all once the conversation was deleted meanwhile."""
        if request.ephemeral:
            return
        interrupted = done is None
        kept = cited_only(answer, citations) if interrupted else answer
        add_turn(conversation, request.query, kept, citations, interrupted, request.turn_id)
        if turn.save:
            await asyncio.shield(self.conversations.saved(conversation, owner))  # a client leaving now: saved still
        if done is not None and self.feedback is not None:
            self.feedback.record_later(request.query, answer, citations, done, owner)

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Event]:
        started = time.perf_counter()
        deadline = self._deadline(context)
        try:
            check_query(request.query)
            bounds = AnswerBounds.of(request)
            passages = passages_from_hits(list(request.contexts))
            source = self._produce(request.query, passages, [], key=None, bounds=bounds)
            async with aclosing(self._timed(source, started, 0.0, deadline)) as events:
                async for event in events:
                    yield event
        except (AnswerFailed, InvalidInput) as failure:
            yield self._fail(context, answer_failure(failure))

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
            readable = await self._readable(conversation, principal, self._deadline(context))
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

    async def _readable(
        self, conversation: generation_pb2.Conversation, principal: Principal | None, deadline: float
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
            reply = await self.retrieval.ListDocuments(
                request, timeout=min(RETRIEVAL_TIMEOUT_S, remaining), metadata=forwarded(principal)
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code() if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED else grpc.StatusCode.UNAVAILABLE
            raise AnswerFailed(code, f"the cited documents cannot be checked now: {retrieval_failure(exc)}") from exc
        return {document.id for document in reply.documents}

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

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        """The loop time by which this call must end: the caller's deadline or ours, whichever is first."""
        budget = self.config.answer_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, max(remaining - DEADLINE_MARGIN_S, 0.0))
        return asyncio.get_running_loop().time() + budget

    async def _conversation(
        self, request: generation_pb2.AnswerRequest, principal: Principal | None, turn: HeldTurn
    ) -> generation_pb2.Conversation:
        """The conversation to continue, or a new one (also when the old one expired, or is someone else's:
        conversations are kept per owner, so another's id finds nothing), or a branch of it (after_turn_id).

        Turns the caller sends (an OpenAI-style client keeps its own history) are the conversation as that
        caller shows it, so they win over stored ones; only the last MAX_TURNS count, as in storage.
        """
        conversation_id, history = check_conversation_id(request.conversation_id), request.history
        check_optional_id(request.turn_id, "turn_id")
        check_optional_id(request.after_turn_id, "after_turn_id")
        if history:
            turns = [generation_pb2.Turn(question=t.question, answer=t.answer) for t in history[-MAX_TURNS:]]
            return generation_pb2.Conversation(conversation_id=conversation_id or uuid.uuid4().hex, turns=turns)
        if not conversation_id:
            return generation_pb2.Conversation(conversation_id=uuid.uuid4().hex)
        try:
            stored = await self.conversations.load(conversation_id, owner_of(principal))
        except CacheUnreachable:  # answered without its turns, and not saved over them
            log.warning("conversation not loaded", extra={"fields": {"conversation_id": conversation_id}})
            turn.save = False
            return generation_pb2.Conversation(conversation_id=conversation_id)
        if stored is None and not request.after_turn_id:
            return generation_pb2.Conversation(conversation_id=conversation_id)
        continued = as_it_stood_after(stored, request.after_turn_id) if stored is not None else None
        if continued is None:
            raise AnswerFailed(grpc.StatusCode.NOT_FOUND, f"no turn {request.after_turn_id!r} in {conversation_id!r}")
        return continued

    async def _retrieve(
        self, search: retrieval_pb2.SearchRequest, deadline: float, principal: Principal | None = None
    ) -> retrieval_pb2.SearchResponse:
        """Passages for the question, searched as the caller (its principal passed on): only what it may read."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AnswerFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left to retrieve passages")
        try:
            return await self.retrieval.Search(
                search, timeout=min(RETRIEVAL_TIMEOUT_S, remaining), metadata=forwarded(principal)
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED):
                code = grpc.StatusCode.UNAVAILABLE
            raise AnswerFailed(code, retrieval_failure(exc)) from exc

    async def _produce(
        self,
        question: str,
        passages: list[Passage],
        history: list[Turn],
        key: str | None,
        similar: str | None = None,
        remember: Callable[[], None] | None = None,
        bounds: AnswerBounds = UNBOUNDED,
    ) -> AsyncIterator[Event]:
        """Delta, citation and done events: replayed from the answer cache (the question's own entry, else a
        semantically similar question's), or generated and then cached."""
        for candidate in (key, similar):
            if candidate is not None and (cached := await self.answers.get(candidate)) is not None:
                if candidate == similar:
                    SEMANTIC_HITS.inc()
                elif remember is not None:
                    remember()
                for event in cached:
                    yield event
                return
        events: list[Event] = []
        async for event in self._generate(question, passages, history, bounds):
            events.append(event)
            yield event
        if key is not None:
            self.answers.put(key, events)
            if remember is not None and cacheable(events):
                remember()

    async def _generate(
        self, question: str, passages: list[Passage], history: list[Turn], bounds: AnswerBounds
    ) -> AsyncIterator[Event]:
        """Deltas from the backend within the caller's bounds, then each cited passage once, then done.

        The backend and the grounding check read the passages as_read (no marker-shaped references of their own);
        a citation shows its passage as stored, as search does."""
        usage = Usage()
        text: list[str] = []
        read = [as_read(p) for p in passages]
        with StreamSpans("backend", {"likeopt.backend": self.backend.name}) as spans:
            pieces = self.backend.stream(question, read, history, usage, limit=bounds.max_tokens)
            async for piece in until_stop(pieces, bounds.stop, usage):
                if piece:
                    spans.piece()
                    text.append(piece)
                    yield Event(delta=generation_pb2.DeltaEvent(text=piece))
            spans.stream.set_attributes(
                {
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "gen_ai.response.finish_reasons": [usage.finish_reason],
                }
            )
        answer = "".join(text)
        grounding = check(answer, read)
        if not usage.no_answer:
            observe(grounding)
        for n in cited_numbers(answer, len(passages)):
            p = passages[n - 1]
            yield Event(
                citation=generation_pb2.CitationEvent(
                    n=n,
                    doc_id=p.doc_id,
                    chunk_id=p.chunk_id,
                    title=p.title,
                    text=p.text,
                    supported=grounding.supported(n),
                    support=grounding.passage_support.get(n, 0.0),
                )
            )
        yield Event(
            done=generation_pb2.DoneEvent(
                finish_reason=usage.finish_reason,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                backend=self.backend.name,
                support=grounding.support,
                no_answer=usage.no_answer,
            )
        )

    async def _timed(
        self, source: AsyncGenerator[Event, None], started: float, retrieval_ms: float, deadline: float
    ) -> AsyncIterator[Event]:
        """source's events within the deadline, done given this caller's own timings and trace id.

        Events may be shared with other callers, so done is copied before it is changed.
        """
        first_token_ms = 0.0
        async for event in within_deadline(source, deadline):
            if event.HasField("delta") and not first_token_ms:
                first_token_ms = (time.perf_counter() - started) * 1000
            elif event.HasField("done"):
                own = Event()
                own.CopyFrom(event)
                own.done.trace_id = current_trace_id()
                own.done.answer_id = uuid.uuid4().hex
                own.done.timings.CopyFrom(
                    generation_pb2.Timings(
                        retrieval_ms=retrieval_ms,
                        first_token_ms=first_token_ms,
                        total_ms=(time.perf_counter() - started) * 1000,
                    )
                )
                log.info(
                    "answered",
                    extra={"fields": {"backend": own.done.backend, "cached": own.done.cached, **_ms(own.done.timings)}},
                )
                event = own
            yield event

    @staticmethod
    def _fail(context: grpc.aio.ServicerContext, failure: AnswerFailed) -> Event:
        log.warning("answer failed", extra={"fields": {"code": failure.code.name, "error": failure.message}})
        context.set_code(failure.code)
        context.set_details(failure.message)
        error = generation_pb2.ErrorEvent(code=failure.code.name, message=failure.message)
        if failure.retry_after_s is not None:
            error.retry_after_s = failure.retry_after_s
            context.set_trailing_metadata((("retry-after", str(math.ceil(failure.retry_after_s))),))
        return Event(error=error)


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


def owner_of(principal: Principal | None) -> str:
    """Whose conversations: empty for the one user of API-key mode (and calls from inside the mesh)."""
    return principal.owner if principal is not None else ""


def _ms(timings: generation_pb2.Timings) -> dict[str, float]:
    return {
        "retrieval_ms": round(timings.retrieval_ms, 1),
        "first_token_ms": round(timings.first_token_ms, 1),
        "total_ms": round(timings.total_ms, 1),
    }
