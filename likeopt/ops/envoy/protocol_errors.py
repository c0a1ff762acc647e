"""Envoy's refusals of requests it could not read as HTTP (a malformed request line or header, headers too large or
too slow to arrive) in the REST API's error shape: Envoy's own are text/plain. Such a request may have no path yet
to tell an OpenAI client by, and a gRPC call keeps the status Envoy gives it, as with an upstream's 504."""

from __future__ import annotations

from likeopt.ops.envoy.grpc_only import NOT_GRPC_CONTENT
from likeopt.ops.envoy.ingress import ingress_managers
from likeopt.ops.envoy.replies import LOCAL_REPLY_BODY, all_of, json_reply, status_is

REQUEST_HEADERS_LIMIT_KIB = 60
"""How large a request's headers may be (Envoy's default, set so that its refusal can name it)."""
TOKEN_GROUPS_FITTING = 1_000
"""Groups a bearer token may name, as 36-character GUIDs (Entra ID's), with a long subject and tenant, and still fit
within REQUEST_HEADERS_LIMIT_KIB with the rest of a request: its payload is about 39 bytes a group, base64 makes
that 52, so 1,000 take 53 KB and 1,200 pass the limit. gRPC's metadata limit (likeopt/runtime/grpc_client.py)
is set above it, for the payload Envoy passes on."""
UNREADABLE_REQUESTS = {
    400: (
        "BAD_REQUEST",
        "the request is not well-formed HTTP (its request line or a header is malformed, or one it needs is missing,"
        " such as a QUERY request's Content-Type)",
    ),
    408: ("REQUEST_TIMEOUT", "the request's headers did not all arrive in time"),
    431: (
        "REQUEST_HEADERS_TOO_LARGE",
        f"the request's headers are over the limit of {REQUEST_HEADERS_LIMIT_KIB} KiB; a bearer token counts, and"
        f" one naming more than about {TOKEN_GROUPS_FITTING:,} groups is too large alone",
    ),
}
"""Envoy's status for each kind of request it cannot read: the error's code and words."""


def unreadable_request_mappers() -> list[dict]:
    """One mapper a status: the words as the body, in the REST API's shape, for every caller but gRPC's."""
    return [
        {
            "filter": all_of([status_is(status), NOT_GRPC_CONTENT]),
            "body": {"inline_string": words},
            "body_format_override": json_reply(code, LOCAL_REPLY_BODY),
        }
        for status, (code, words) in UNREADABLE_REQUESTS.items()
    ]


def shape_unreadable_requests(doc: dict) -> None:
    """Set the headers' limit on the clients' listener and answer what it cannot read in the error shape."""
    for manager in ingress_managers(doc):
        manager["max_request_headers_kb"] = REQUEST_HEADERS_LIMIT_KIB
        manager["local_reply_config"]["mappers"].extend(unreadable_request_mappers())
