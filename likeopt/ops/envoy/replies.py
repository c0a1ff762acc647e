"""Envoy's own refusals (its local replies) in each client's shape: gRPC and gRPC-web get a grpc-status, OpenAI's
clients on /v1/ OpenAI's error, MCP clients on /mcp a JSON-RPC error, everyone else the REST API's
``{"error": {code, message}}``, as the gateway answers them."""

from __future__ import annotations

import grpc

from likeopt.runtime.mcp_refusal import mcp_refusal_body

LOCAL_REPLY_BODY = "%LOCAL_REPLY_BODY%"
UNAUTHENTICATED = ("UNAUTHENTICATED", "invalid_api_key")
"""A refusal's codes: the REST API's (also the gRPC status's name) and OpenAI's."""
DENIED = ("PERMISSION_DENIED", "permission_denied")


def json_reply(code: str, message: str) -> dict:
    """The REST API's error shape, as the gateway's own refusals have it."""
    return {"json_format": {"error": {"code": code, "message": message}}, "content_type": "application/json"}


def _openai_reply(code: str, message: str) -> dict:
    """OpenAI's error shape, as the gateway's own refusals on /v1/ have it (its SDKs read type and code)."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return {"json_format": {"error": error}, "content_type": "application/json"}


def mcp_reply(code: str, message: str) -> dict:
    """A JSON-RPC error, as the gateway's own refusals on /mcp have it (the MCP SDK reads its message)."""
    return {"json_format": mcp_refusal_body(code, message), "content_type": "application/json"}


def status_is(status: int) -> dict:
    """A mapper's filter: the local reply has this HTTP status."""
    value = {"default_value": status, "runtime_key": f"likeopt.local_reply_{status}"}
    return {"status_code_filter": {"comparison": {"op": "EQ", "value": value}}}


def _header_starts(name: str, prefix: str) -> dict:
    return {"header_filter": {"header": {"name": name, "string_match": {"prefix": prefix}}}}


IS_GRPC = _header_starts("content-type", "application/grpc")
OPENAI_PATH = _header_starts(":path", "/v1/")
MCP_PATH = _header_starts(":path", "/mcp")


def all_of(filters: list[dict]) -> dict:
    """A mapper's filter: every one of filters matches."""
    return filters[0] if len(filters) == 1 else {"and_filter": {"filters": filters}}


def grpc_refusal(filters: list[dict], code: str, message: str) -> dict:
    """A mapper answering gRPC and gRPC-web clients "trailers-only": HTTP 200 without a body, the status named code
    in grpc-status and the reason (a format, which may read the metadata) in grpc-message. Envoy makes that of a
    plain gRPC request's local reply by itself; a gRPC-web one would be an HTTP 401 or 403, which gRPC-web clients
    report as an HTTP error, without its status or reason. A header's format cannot read the body: words only."""
    if not message or message == LOCAL_REPLY_BODY or not (message.isascii() and message.isprintable()):
        raise ValueError(f"a gRPC refusal needs its reason in printable ASCII words, not {message!r}")
    headers = {"grpc-status": str(grpc.StatusCode[code].value[0]), "grpc-message": message}
    return {
        "filter": all_of([*filters, IS_GRPC]),
        "status_code": 200,
        "body": {"inline_string": ""},
        "headers_to_add": [
            {"header": {"key": name, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for name, value in headers.items()
        ],
    }


def in_every_shape(
    filters: list[dict],
    codes: tuple[str, str],
    status: int = 0,
    body: str = "",
    message: str = LOCAL_REPLY_BODY,
    grpc_message: str = "",
) -> list[dict]:
    """One refusal as three mappers (the first that matches wins): for gRPC and gRPC-web a grpc_refusal (codes[0]),
    then http_shapes. The reason is message, a format that may read the request's metadata, by default the body;
    gRPC's is grpc_message, else message, else body."""
    grpc_reason = grpc_message or (body if message == LOCAL_REPLY_BODY else message)
    return [grpc_refusal(filters, codes[0], grpc_reason), *http_shapes(filters, codes, status, body, message)]


def http_shapes(
    filters: list[dict], codes: tuple[str, str], status: int = 0, body: str = "", message: str = LOCAL_REPLY_BODY
) -> list[dict]:
    """One refusal as three mappers: OpenAI's error on /v1/ (codes[1]), a JSON-RPC error on /mcp and the REST API's
    elsewhere (codes[0])."""
    common: dict = {"status_code": status} if status else {}
    if body:
        common["body"] = {"inline_string": body}
    mappers = []
    shapes = (
        (OPENAI_PATH, _openai_reply(codes[1], message)),
        (MCP_PATH, mcp_reply(codes[0], message)),
        (None, json_reply(codes[0], message)),
    )
    for only, reply in shapes:
        shape = all_of([*filters, only] if only else filters)
        mappers.append({"filter": shape, **common, "body_format_override": reply})
    return mappers
