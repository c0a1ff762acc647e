"""Protobuf messages to the JSON shapes of the HTTP contract (DESIGN.md)."""

from __future__ import annotations

from typing import Any

from likeopt.v1 import generation_pb2, retrieval_pb2


def hit_json(hit: retrieval_pb2.SearchHit) -> dict[str, Any]:
    """A search hit with every field present, zeros included."""
    return {
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
        "title": hit.title,
        "text": hit.text,
        "score": hit.score,
        "bm25_score": hit.bm25_score,
        "dense_score": hit.dense_score,
        "bm25_rank": hit.bm25_rank,
        "dense_rank": hit.dense_rank,
        "metadata": dict(hit.metadata),
    }


def citation_json(c: generation_pb2.CitationEvent) -> dict[str, Any]:
    """A citation with the grounding check's verdict: supported, and the best sentence's support score."""
    return {
        "n": c.n,
        "doc_id": c.doc_id,
        "chunk_id": c.chunk_id,
        "title": c.title,
        "text": c.text,
        "supported": c.supported,
        "support": round(c.support, 3),
    }


def conversation_json(conversation: generation_pb2.Conversation) -> dict[str, Any]:
    """Stored turns, each citation saying whether it is withdrawn (an answer's citations never are)."""
    return {
        "conversation_id": conversation.conversation_id,
        "turns": [
            {
                "question": t.question,
                "answer": t.answer,
                "citations": [{**citation_json(c), "withdrawn": c.withdrawn} for c in t.citations],
                "created_unix_ms": t.created_unix_ms,
                "interrupted": t.interrupted,
                "withdrawn": t.withdrawn,
            }
            for t in conversation.turns
        ],
    }


def event_json(event: generation_pb2.AnswerEvent) -> tuple[str, dict[str, Any]]:
    """The SSE event name and data of one answer event."""
    kind = event.WhichOneof("event")
    if kind == "retrieval":
        r = event.retrieval
        return kind, {
            "hits": [hit_json(h) for h in r.hits],
            "index_version": r.index_version,
            "conversation_id": r.conversation_id,
        }
    if kind == "delta":
        return kind, {"text": event.delta.text}
    if kind == "citation":
        return kind, citation_json(event.citation)
    if kind == "done":
        d = event.done
        return kind, {
            "conversation_id": d.conversation_id,
            "trace_id": d.trace_id,
            "cached": d.cached,
            "finish_reason": d.finish_reason,
            "backend": d.backend,
            "prompt_tokens": d.prompt_tokens,
            "completion_tokens": d.completion_tokens,
            "support": round(d.support, 3),
            "no_answer": d.no_answer,
            "small_talk": d.small_talk,
            "answer_id": d.answer_id,
            "citations": [citation_json(c) for c in d.citations],
            "timings": {
                "retrieval_ms": round(d.timings.retrieval_ms, 3),
                "first_token_ms": round(d.timings.first_token_ms, 3),
                "total_ms": round(d.timings.total_ms, 3),
            },
        }
    if kind == "error":
        return kind, {"code": event.error.code, "message": event.error.message}
    raise ValueError(f"answer event with no payload: {event!r}")
