"""Whether a POST to /mcp holds one well-formed JSON-RPC 2.0 message, and the refusal of one that does not.

The SDK refuses a malformed message (no ``"jsonrpc": "2.0"``, no method, a string instead of an object, a batch) with
a pydantic validation dump under -32602 (invalid params) where JSON-RPC says -32600 (invalid request); and it takes a
request whose id is neither a string nor an integer for a notification, answering 202 and never the request, so its
client waits for an answer that cannot come. Text that is not JSON at all is still the SDK's to refuse (-32700, in
words a person can read). An MCP-Protocol-Version header naming no version the SDK knows is refused here too: the SDK
takes such a request for one of the 2026-07-28 envelope era and complains of a missing ``params._meta``, which does
not tell a client of an earlier era what it did wrong.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import INVALID_REQUEST, ErrorData, JSONRPCError
from mcp_types import UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS
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


def refusal(error: ErrorData, request_id: str | int | None = None) -> Response:
    """HTTP 400 with a JSON-RPC error, as the SDK answers any POST it cannot take."""
    body = JSONRPCError(jsonrpc="2.0", id=request_id, error=error).model_dump_json(by_alias=True, exclude_unset=True)
    return Response(body, status_code=400, media_type="application/json")


def invalid_request(problem: str) -> Response:
    """A -32600 error naming the problem (the id is null: a malformed message's id cannot be trusted to be one)."""
    return refusal(ErrorData(code=INVALID_REQUEST, message=problem))


def version_refusal(requested: str | None, request_id: Any) -> Response | None:
    """The SDK's unsupported-version error for an MCP-Protocol-Version header naming no known version, with every
    version this server speaks (the SDK's own lists only the envelope era's); None for a known one or none."""
    if requested is None or requested in KNOWN_PROTOCOL_VERSIONS:
        return None
    message = (
        f"unsupported MCP-Protocol-Version {requested[:40]!r}: this server speaks {', '.join(KNOWN_PROTOCOL_VERSIONS)}"
    )
    data = {"supported": list(KNOWN_PROTOCOL_VERSIONS), "requested": requested[:40]}
    error = ErrorData(code=UNSUPPORTED_PROTOCOL_VERSION, message=message, data=data)
    return refusal(error, request_id if valid_id(request_id) else None)
