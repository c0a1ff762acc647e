"""Feedback: a rating of an answer (by the person it was given to), and the stored ratings (administration).

The gateway only checks and translates; generation_svc owns answers and their ratings
(generation_svc/feedback.py). Anything invalid is refused before the upstream call, so nothing is
written on error; an unknown answer comes back from generation_svc as 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from starlette.responses import JSONResponse

from gateway.auth import Administrator, Reader, administrator, reader
from gateway.bodies import json_body, request_body
from gateway.convert import citation_json
from gateway.errors import BODY_STATUSES, UPSTREAM_STATUSES, upstream_call
from gateway.models import FeedbackList, FeedbackRequest, FeedbackResponse
from gateway.routes import api_router
from gateway.state import Running
from likeopt.runtime.contract import FEEDBACK_CURSOR, LIST_LIMIT
from likeopt.runtime.principal import forwarded
from likeopt.v1 import generation_pb2

MAX_FEEDBACK_BYTES = 16 * 1024
"""A feedback body larger than this is refused with 413 before it is parsed."""
FEEDBACK_TIMEOUT_S = 5.0
NO_STORE = {"Cache-Control": "no-store"}

rate = api_router("feedback", reader, 401, *BODY_STATUSES, *UPSTREAM_STATUSES)
listing = api_router("feedback", administrator, 401, 422, *UPSTREAM_STATUSES)


@rate.post(
    "/feedback",
    summary="Rate an answer (thumbs up or down, optional comment); stored durably",
    response_model=FeedbackResponse,
    openapi_extra=request_body({"application/json": FeedbackRequest}),
)
async def feedback(
    body: Annotated[FeedbackRequest, Depends(json_body(FeedbackRequest, MAX_FEEDBACK_BYTES))],
    gateway: Running,
    principal: Reader,
) -> FeedbackResponse:
    """404 when no answer the caller was given has the id (answers are kept for 30 days)."""
    message = generation_pb2.FeedbackRequest(
        answer_id=body.answer_id, trace_id=body.trace_id, rating=body.rating, comment=body.comment
    )
    call = gateway.upstreams.generation.Feedback(message, timeout=FEEDBACK_TIMEOUT_S, metadata=forwarded(principal))
    reply = await upstream_call(call)
    return FeedbackResponse(feedback_id=reply.feedback_id, answer_id=reply.answer_id)


@listing.get(
    "/feedback",
    summary="Stored feedback with the answers it rates, newest first, and counts per rating",
    response_model=FeedbackList,
)
async def feedback_list(
    api_key: Administrator,
    gateway: Running,
    rating: Annotated[Literal["up", "down", ""], Query(description="Only this rating; empty: both.")] = "",
    limit: Annotated[int, Query(ge=LIST_LIMIT.low, le=LIST_LIMIT.high)] = LIST_LIMIT.default,
    before_feedback_id: Annotated[
        int,
        Query(
            ge=FEEDBACK_CURSOR.low,
            le=FEEDBACK_CURSOR.high,
            description="The next page: feedback older than this id (the last item's); 0: newest.",
        ),
    ] = FEEDBACK_CURSOR.default,
) -> JSONResponse:
    """Users' questions and comments: only with the API key, which generation_svc checks again."""
    request = generation_pb2.ListFeedbackRequest(rating=rating, limit=limit, before_feedback_id=before_feedback_id)
    key = (("authorization", f"Bearer {api_key}"),)
    reply = await upstream_call(
        gateway.upstreams.generation.ListFeedback(request, timeout=FEEDBACK_TIMEOUT_S, metadata=key)
    )
    listed = FeedbackList.model_validate(feedback_json(reply))
    return JSONResponse(listed.model_dump(mode="json"), headers=NO_STORE)


def feedback_json(reply: generation_pb2.ListFeedbackReply) -> dict[str, Any]:
    """The listing as JSON: counts, then each rating with the answer it rates."""
    return {
        "up": reply.up,
        "down": reply.down,
        "items": [
            {
                "feedback_id": item.feedback_id,
                "answer_id": item.answer_id,
                "trace_id": item.trace_id,
                "rating": item.rating,
                "comment": item.comment,
                "created_unix_ms": item.created_unix_ms,
                "question": item.question,
                "answer": item.answer,
                "citations": [citation_json(c) for c in item.citations],
                "backend": item.backend,
                "support": round(item.support, 3),
                "no_answer": item.no_answer,
            }
            for item in reply.items
        ],
    }
