"""Whether a POST to /mcp holds one well-formed JSON-RPC 2.0 message, and the refusal of one that does not.

The SDK refuses a malformed message (no ``"jsonrpc": "2.0"``, no method, a string instead of an object, a batch) with
a pydantic validation dump under -32602 (invalid params) where JSON-RPC says -32600 (invalid request); and it takes a
request whose id is neither a string nor an integer for a notification, answering 202 and never the request, so its
client waits for an answer that cannot come. Text that is not JSON at all is still the SDK's to refuse (-32700, in
words a person can read).
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import INVALID_REQUEST, ErrorData, JSONRPCError
from starlette.responses import Response

BATCH = "JSON-RPC batches are not supported (MCP 2025-06-18 removed them): send one message per POST"


def problem_of(message: Any) -> str | None:
    """What makes a parsed message no JSON-RPC 2.0 message MCP takes (MCP's ids are strings or integers, its
    params an object), or None when it is one."""
    if isinstance(message, list):
        return BATCH
    if not isinstance(message, dict):
        return f"an MCP message is a JSON-RPC 2.0 object, not a JSON {type(message).__name__}"
    if message.get("jsonrpc") != "2.0":
        return 'a JSON-RPC 2.0 message has "jsonrpc": "2.0"'
    request_id = message.get("id")
    if "id" in message and not (valid_id(request_id) or (request_id is None and "error" in message)):
        return f"id must be a string or an integer, not {json.dumps(request_id)[:40]}"
    if "method" in message:
        if not isinstance(message["method"], str):
            return "method must be a string"
        if not isinstance(message.get("params", {}), dict):
            return "params must be an object"
        return None
    if "id" not in message or ("result" in message) == ("error" in message):
        return "a message has a method (a request or notification), or an id and a result or an error (a response)"
    return None


def valid_id(value: Any) -> bool:
    """Whether value is an MCP request id: a string or an integer (JSON's true and false are no integers)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def body_problem(body: bytes) -> str | None:
    """problem_of the message in a POST body; None when the body is not JSON (the SDK's parse error says why)."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    return problem_of(message)


def invalid_request(problem: str) -> Response:
    """HTTP 400 with a JSON-RPC -32600 error naming the problem, as the SDK answers any POST it cannot take (the id
    is null: a malformed message's id cannot be trusted to be one)."""
    error = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST, message=problem))
    body = error.model_dump_json(by_alias=True, exclude_unset=True)
    return Response(body, status_code=400, media_type="application/json")
