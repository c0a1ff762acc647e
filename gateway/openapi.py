"""The OpenAPI 3.1 description of the HTTP API, served at /api/v1/openapi.json.

Written out rather than generated, so the contract in DESIGN.md reads the same
here; tests (and schemathesis) hold the gateway to it.
"""

from __future__ import annotations

from typing import Any

ERROR_STATUSES = {
    "400": "Malformed body",
    "401": "Missing or wrong API key, or (LIKEOPT_AUTH=jwt) a missing or refused token",
    "403": "A token without the writer role (LIKEOPT_JWT_WRITER_ROLE) tried to write",
    "404": "Not found",
    "413": "Body too large",
    "422": "Invalid field",
    "429": "Rate limited",
    "503": "An upstream service is unavailable",
    "504": "An upstream deadline passed",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def errors(*codes: str) -> dict[str, Any]:
    return {code: json_body(ref("Error"), ERROR_STATUSES[code]) for code in codes}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Mode": {"type": "string", "enum": ["hybrid", "bm25", "dense"], "default": "hybrid"},
    "SearchRequest": {
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "Words or a question."},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            "mode": ref("Mode"),
            "filters": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Document metadata that must match exactly.",
            },
        },
    },
    "Hit": {
        "type": "object",
        "required": ["doc_id", "chunk_id", "title", "text", "score", "bm25_score", "dense_score"],
        "properties": {
            "doc_id": {"type": "string"},
            "chunk_id": {"type": "string"},
            "title": {"type": "string"},
            "text": {"type": "string"},
            "score": {"type": "number", "description": "The ranking score (fused in hybrid mode)."},
            "bm25_score": {"type": "number"},
            "dense_score": {"type": "number", "description": "Cosine similarity to the query."},
            "bm25_rank": {"type": "integer", "description": "1-based; 0 when BM25 did not rank it."},
            "dense_rank": {"type": "integer", "description": "1-based; 0 when dense search did not rank it."},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "SearchResponse": {
        "type": "object",
        "required": ["hits", "index_version", "took_ms"],
        "properties": {
            "hits": {"type": "array", "items": ref("Hit")},
            "index_version": {"type": "integer"},
            "cached": {"type": "boolean"},
            "took_ms": {"type": "number"},
        },
    },
    "ChatRequest": {
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 4096},
            "conversation_id": {"type": "string", "description": "Continue this conversation."},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            "mode": ref("Mode"),
        },
    },
    "Document": {
        "type": "object",
        "required": ["id", "text"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "title": {"type": "string"},
            "text": {"type": "string", "minLength": 1},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "access": ref("Access"),
        },
    },
    "Access": {
        "type": "object",
        "description": "Who may read the document (LIKEOPT_AUTH=jwt): a reader of its tenant (any tenant when empty)"
        " who is one of the users or in one of the groups; with neither, every reader of the tenant. Absent: the"
        " writer's tenant. A writer whose token names a tenant writes into that tenant only.",
        "additionalProperties": False,
        "properties": {
            "tenant": {"type": "string"},
            "users": {"type": "array", "items": {"type": "string"}},
            "groups": {"type": "array", "items": {"type": "string"}},
        },
    },
    "UpsertRequest": {
        "type": "object",
        "required": ["documents"],
        "properties": {"documents": {"type": "array", "items": ref("Document")}},
    },
    "UpsertResponse": {
        "type": "object",
        "required": ["upserted", "chunks", "index_version", "skipped"],
        "properties": {
            "upserted": {"type": "integer"},
            "chunks": {"type": "integer"},
            "index_version": {"type": "integer"},
            "skipped": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "reason": {"type": "string"}},
                },
            },
        },
    },
    "DeleteResponse": {
        "type": "object",
        "required": ["deleted", "index_version"],
        "properties": {"deleted": {"type": "integer"}, "index_version": {"type": "integer"}},
    },
    "IndexStatus": {
        "type": "object",
        "required": ["documents", "chunks", "index_version", "ready"],
        "properties": {
            "documents": {"type": "integer"},
            "chunks": {"type": "integer"},
            "index_version": {"type": "integer"},
            "embedding_model": {"type": "string"},
            "embedding_dim": {"type": "integer"},
            "vector_index": {"type": "string"},
            "ready": {"type": "boolean"},
        },
    },
    "Citation": {
        "type": "object",
        "required": ["n", "doc_id", "chunk_id", "title", "text"],
        "properties": {
            "n": {"type": "integer", "description": "The [n] marker in the answer."},
            "doc_id": {"type": "string"},
            "chunk_id": {"type": "string"},
            "title": {"type": "string"},
            "text": {"type": "string"},
            "supported": {
                "type": "boolean",
                "description": "The passage supports a sentence citing it (grounding check); false: shown, not proof.",
            },
            "support": {"type": "number", "description": "Best support score of a sentence citing it, 0..1."},
        },
    },
    "FeedbackRequest": {
        "type": "object",
        "required": ["rating"],
        "properties": {
            "answer_id": {"type": "string", "description": "The `done` event's answer_id (or give trace_id)."},
            "trace_id": {"type": "string", "description": "The `done` event's trace_id."},
            "rating": {"type": "string", "enum": ["up", "down"]},
            "comment": {"type": "string", "maxLength": 2000},
        },
    },
    "FeedbackResponse": {
        "type": "object",
        "required": ["feedback_id", "answer_id"],
        "properties": {"feedback_id": {"type": "integer"}, "answer_id": {"type": "string"}},
    },
    "Conversation": {
        "type": "object",
        "required": ["conversation_id", "turns"],
        "properties": {
            "conversation_id": {"type": "string"},
            "turns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["question", "answer", "citations"],
                    "properties": {
                        "question": {"type": "string"},
                        "answer": {"type": "string"},
                        "citations": {"type": "array", "items": ref("Citation")},
                        "created_unix_ms": {"type": "integer"},
                    },
                },
            },
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["ready", "upstreams"],
        "properties": {
            "ready": {"type": "boolean"},
            "upstreams": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

CHAT_STREAM = (
    "Server-Sent Events, each with `id:`, `event:` and one JSON `data:` line: `retrieval` {hits, index_version}, "
    "`delta` {text}, `citation` {n, doc_id, chunk_id, title, text, supported, support}, then `done` {conversation_id, "
    "trace_id, answer_id, cached, finish_reason, timings, support (0..1: share of sentences supported by the passage "
    "they cite), no_answer (the documents do not cover the question), citations (all of them again)} or `error` "
    "{code, message}. Comment lines are heartbeats. Sent again with a `Last-Event-ID` header, the same question "
    "continues after that event (a finished answer is replayed identically from the cache)."
)


def openapi_spec() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Like-Opt",
            "version": "1",
            "description": "Question answering over your own documents: search, streamed cited answers, ingestion.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/healthz": {
                "get": {"summary": "The gateway is alive", "responses": {"200": json_body({"type": "object"})}}
            },
            "/api/v1/readyz": {
                "get": {
                    "summary": "Every upstream service is SERVING",
                    "responses": {"200": json_body(ref("Readiness")), "503": json_body(ref("Readiness"))},
                }
            },
            "/api/v1/search": {
                "post": {
                    "summary": "Rank passages for a query",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("SearchRequest")}},
                    },
                    "responses": {
                        "200": json_body(ref("SearchResponse")),
                        **errors("400", "413", "422", "429", "503", "504"),
                    },
                }
            },
            "/api/v1/chat": {
                "post": {
                    "summary": "Stream a cited answer",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": ref("ChatRequest")}}},
                    "responses": {
                        "200": {
                            "description": CHAT_STREAM,
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **errors("400", "413", "422", "429"),
                    },
                }
            },
            "/api/v1/feedback": {
                "post": {
                    "summary": "Rate an answer (thumbs up or down, optional comment); stored durably",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("FeedbackRequest")}},
                    },
                    "responses": {
                        "200": json_body(ref("FeedbackResponse")),
                        **errors("400", "404", "413", "422", "429", "503", "504"),
                    },
                },
                "get": {
                    "summary": "Stored feedback with the answers it rates, newest first, and counts per rating",
                    "security": [{"apiKey": []}],
                    "parameters": [
                        {"name": "rating", "in": "query", "schema": {"type": "string", "enum": ["up", "down"]}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {"200": json_body({"type": "object"}), **errors("401", "422", "503", "504")},
                },
            },
            "/api/v1/documents": {
                "post": {
                    "summary": "Add or replace documents (JSON, or multipart files in the field `files`)",
                    "security": [{"apiKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": ref("UpsertRequest")},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                                        "access": {"type": "string", "description": "an Access object as JSON"},
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": json_body(ref("UpsertResponse")),
                        **errors("400", "401", "403", "413", "422", "429", "503", "504"),
                    },
                }
            },
            "/api/v1/documents/{doc_id}": {
                "delete": {
                    "summary": "Delete a document from every index",
                    "security": [{"apiKey": []}],
                    "parameters": [{"name": "doc_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": json_body(ref("DeleteResponse")),
                        **errors("401", "403", "404", "429", "503", "504"),
                    },
                }
            },
            "/api/v1/index": {
                "get": {
                    "summary": "Index size, version and model",
                    "responses": {"200": json_body(ref("IndexStatus")), **errors("503", "504")},
                }
            },
            "/api/v1/conversations/{conversation_id}": {
                "get": {
                    "summary": "The stored turns of a conversation (kept for LIKEOPT_SESSION_TTL_S)",
                    "parameters": [
                        {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": json_body(ref("Conversation")), **errors("404", "422", "503", "504")},
                }
            },
            "/api/v1/dashboard": {
                "get": {
                    "summary": "Live figures for the web dashboard",
                    "responses": {"200": json_body({"type": "object"})},
                }
            },
            "/api/v1/whoami": {
                "get": {
                    "summary": "Who is signed in (LIKEOPT_AUTH=jwt: subject, tenant, groups), and may they write",
                    "responses": {"200": json_body({"type": "object"}), **errors("401")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus exposition of the gateway",
                    "responses": {
                        "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    },
                }
            },
        },
    }
