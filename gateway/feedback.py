"""``POST /api/v1/feedback``: a rating of an answer, checked here and stored by generation_svc.

The gateway only validates and translates; generation_svc owns answers and their ratings
(generation_svc/feedback.py). Anything invalid is refused before the upstream call, so
nothing is written on error; an unknown answer comes back from generation_svc as 404.
"""

from __future__ import annotations

from typing import Any

from gateway.convert import citation_json
from gateway.errors import ApiError
from likeopt.v1 import generation_pb2

MAX_COMMENT_CHARS = 2000
"""As generation_svc's limit; a longer comment is refused with 422."""
MAX_FEEDBACK_BYTES = 16 * 1024
"""A feedback body larger than this is refused with 413 before it is parsed."""
FEEDBACK_TIMEOUT_S = 5.0
MAX_LIST = 1000


def feedback_message(data: dict[str, Any]) -> generation_pb2.FeedbackRequest:
    """The FeedbackRequest of a JSON body, or a 422 naming what is wrong."""
    values: dict[str, str] = {}
    for name in ("answer_id", "trace_id", "rating", "comment"):
        value = data.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ApiError(422, "INVALID_ARGUMENT", f"'{name}' must be a string")
        values[name] = value
    if values["rating"] not in ("up", "down"):
        raise ApiError(422, "INVALID_ARGUMENT", '\'rating\' must be "up" or "down"')
    if not values["answer_id"] and not values["trace_id"]:
        raise ApiError(422, "INVALID_ARGUMENT", "'answer_id' or 'trace_id' is required")
    if (length := len(values["comment"])) > MAX_COMMENT_CHARS:
        raise ApiError(422, "INVALID_ARGUMENT", f"'comment' is {length} characters; the limit is {MAX_COMMENT_CHARS}")
    return generation_pb2.FeedbackRequest(**values)


def list_request(rating: str, limit: str) -> generation_pb2.ListFeedbackRequest:
    """The ListFeedbackRequest of ``GET /api/v1/feedback?rating=&limit=``, or a 422."""
    if rating not in ("", "up", "down"):
        raise ApiError(422, "INVALID_ARGUMENT", '\'rating\' must be "up" or "down"')
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIST:
        raise ApiError(422, "INVALID_ARGUMENT", f"'limit' must be between 1 and {MAX_LIST}")
    return generation_pb2.ListFeedbackRequest(rating=rating, limit=int(limit))


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
