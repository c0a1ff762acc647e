"""How an HTTP refusal of a POST to /mcp reads to an MCP client: a JSON-RPC error, the gateway's and Envoy's alike.

The official SDK's client reads a JSON-RPC error in the body of a non-2xx reply and raises it with its message; any
other body (the REST API's ``{"error": {code, message}}``) it replaces with "Server returned an error response", so a
missing key, a refused token, a full rate budget or an oversized message would all read the same. The REST API's
code (``UNAUTHENTICATED``, ``RATE_LIMITED``…) stays in ``error.data.code`` for scripts that read it.
"""

from __future__ import annotations

from typing import Any

MCP_REFUSED = -32600
"""The JSON-RPC code of a refusal before the message was read: JSON-RPC's invalid request, which the SDK's own server
gives every refusal at the HTTP level (406, 415…); the HTTP status says which. MCP gives the server range's codes
other meanings (-32001 is a request timeout)."""


def mcp_refusal_body(code: str, message: str) -> dict[str, Any]:
    """The body: a JSON-RPC error with a null id (the refused message was not read, so its id is unknown; the SDK
    answers the request it sent with it), ``message`` the reason, ``data.code`` the REST API's code."""
    return {"jsonrpc": "2.0", "id": None, "error": {"code": MCP_REFUSED, "message": message, "data": {"code": code}}}
