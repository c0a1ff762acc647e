"""``GET /api/v1/conversations/{id}``: a conversation's stored turns, as generation_svc keeps them per owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from gateway.auth import Reader, reader
from gateway.convert import conversation_json
from gateway.errors import UPSTREAM_STATUSES, upstream_call
from gateway.models import Conversation
from gateway.routes import api_router
from gateway.state import Running
from likeopt.runtime.contract import ID_PATTERN
from likeopt.runtime.principal import forwarded
from likeopt.v1 import generation_pb2

LOOKUP_TIMEOUT_S = 10.0

router = api_router("conversations", reader, 401, *UPSTREAM_STATUSES)


@router.get(
    "/conversations/{conversation_id}",
    summary="The stored turns of a conversation (kept for LIKEOPT_SESSION_TTL_S)",
    response_model=Conversation,
)
async def conversation(
    conversation_id: Annotated[str, Path(pattern=ID_PATTERN, description="The done event's conversation_id.")],
    principal: Reader,
    gateway: Running,
) -> Conversation:
    """404 for an unknown, expired or someone else's conversation."""
    lookup = generation_pb2.GetConversationRequest(conversation_id=conversation_id)
    call = gateway.upstreams.generation.GetConversation(lookup, timeout=LOOKUP_TIMEOUT_S, metadata=forwarded(principal))
    return Conversation.model_validate(conversation_json(await upstream_call(call)))
