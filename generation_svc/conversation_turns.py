"""The turns of an answer's conversation: the conversation a question continues (stored, sent by the caller, or
new), and the finished turn stored in it, its answer kept for feedback."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence

import grpc

from generation_svc.answer_stream import Event
from generation_svc.backends import AnswerFailed
from generation_svc.conversations import (
    MAX_TURNS,
    ConversationStore,
    add_turn,
    as_it_stood_after,
    cited_only,
    given_documents,
)
from generation_svc.feedback import FeedbackStore
from generation_svc.turn_locks import Turn as HeldTurn
from likeopt.caching.cache_client import CacheUnreachable
from likeopt.runtime.contract import check_conversation_id, check_optional_id
from likeopt.runtime.principal import Principal
from likeopt.v1 import generation_pb2

log = logging.getLogger(__name__)


def owner_of(principal: Principal | None) -> str:
    """Whose conversations: empty for the one user of API-key mode (and calls from inside the mesh)."""
    return principal.owner if principal is not None else ""


class ConversationTurns:
    """Loads the conversation an Answer continues and records the turn it adds, in the servicer's stores."""

    def __init__(self, conversations: ConversationStore, feedback: FeedbackStore | None) -> None:
        self.conversations = conversations
        self.feedback = feedback

    async def continued(
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

    async def recorded(
        self,
        events: AsyncIterator[Event],
        request: generation_pb2.AnswerRequest,
        conversation: generation_pb2.Conversation,
        turn: HeldTurn,
        principal: Principal | None = None,
        source_ids: Sequence[str] = (),
    ) -> AsyncIterator[Event]:
        """events, the finished turn stored in the conversation and the answer kept for feedback (neither for an
        ephemeral request). An answer that ends early (stopped by the client, or failed) is stored as far as it
        went, so a follow-up still sees it. source_ids: the documents of this search's passages, which the turn keeps
        (conversations.withheld) with those the answer names in done: a replayed answer was given another question's
        passages (semantic cache), which it may repeat."""
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
                    answer = "".join(text)
                    given = given_documents([*done.source_ids, *source_ids])
                    await self._keep(request, conversation, turn, answer, citations, owner, done, given)
                yield event
        finally:
            if done is None:  # the question alone still gives a follow-up's search its words
                await self._keep(request, conversation, turn, "".join(text), citations, owner, None, source_ids)

    async def _keep(
        self,
        request: generation_pb2.AnswerRequest,
        conversation: generation_pb2.Conversation,
        turn: HeldTurn,
        answer: str,
        citations: list[generation_pb2.CitationEvent],
        owner: str,
        done: generation_pb2.DoneEvent | None,
        source_ids: Sequence[str] = (),
    ) -> None:
        """Store the turn (interrupted when there is no done) and keep a finished answer for feedback. It is stored
        before the done event goes out and before the conversation's next question may load it (a follow-up sent
        at once finds it), and not at all once the conversation was deleted meanwhile."""
        if request.ephemeral:
            return
        interrupted = done is None
        kept = cited_only(answer, citations) if interrupted else answer
        add_turn(conversation, request.query, kept, citations, interrupted, request.turn_id, source_ids)
        if turn.save:
            await asyncio.shield(self.conversations.saved(conversation, owner))  # a client leaving now: saved still
        if done is not None and self.feedback is not None:
            self.feedback.record_later(request.query, answer, citations, done, owner)
