"""``GET`` and ``DELETE /api/v1/conversations/{id}``: a conversation's stored turns, as generation_svc keeps them
per owner, and forgetting them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from gateway.auth import Reader, reader
from gateway.convert import conversation_json
from gateway.errors import UPSTREAM_STATUSES, upstream_call
from gateway.models import Conversation, ConversationDeleted
from gateway.routes import api_router
from gateway.state import Running
from likeopt.runtime.contract import ID_PATTERN
from likeopt.runtime.principal import forwarded
from likeopt.v1 import generation_pb2

LOOKUP_TIMEOUT_S = 10.0

ConversationId = Annotated[str, Path(pattern=ID_PATTERN, description="The done event's conversation_id.")]

router = api_router("conversations", reader, 401, *UPSTREAM_STATUSES)


@router.get(
    "/conversations/{conversation_id}",
    summary="The stored turns of a conversation (kept for LIKEOPT_SESSION_TTL_S)",
    response_model=Conversation,
)
async def conversation(conversation_id: ConversationId, principal: Reader, gateway: Running) -> Conversation:
    """404 for an unknown, expired or someone else's conversation."""
    lookup = generation_pb2.GetConversationRequest(conversation_id=conversation_id)
    call = gateway.upstreams.generation.GetConversation(lookup, timeout=LOOKUP_TIMEOUT_S, metadata=forwarded(principal))
    return Conversation.model_validate(conversation_json(await upstream_call(call)))


@router.delete(
    "/conversations/{conversation_id}",
    summary="Forget a conversation's stored turns (the web UI's \"Delete conversation\")",
    response_model=ConversationDeleted,
)
async def delete_conversation(
    conversation_id: ConversationId,
    principal: Reader,
    gateway: Running,
) -> ConversationDeleted:
    """The owner's own only, as for reading it: 404 for an unknown, expired or someone else's conversation. Answers
    cached by question and passages are not the conversation's, and expire with LIKEOPT_CACHE_TTL_S."""
    request = generation_pb2.DeleteConversationRequest(conversation_id=conversation_id)
    call = gateway.upstreams.generation.DeleteConversation(
        request, timeout=LOOKUP_TIMEOUT_S, metadata=forwarded(principal)
    )
    return ConversationDeleted(conversation_id=(await upstream_call(call)).conversation_id)
