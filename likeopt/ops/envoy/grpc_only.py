"""The refusal (415) of a request on a gRPC method's path that is neither gRPC nor gRPC-web: the services read any
body as gRPC frames, so a Connect call's bare message was misread: it hung, or was reset and reported as "the
service cannot be reached"."""

from __future__ import annotations

import re

from likeopt.ops.envoy.ingress import GRPC_PREFIX, ingress_managers, insert_refusing_filters, path_prefix, rbac_filter
from likeopt.ops.envoy.replies import LOCAL_REPLY_BODY, all_of, status_is
from likeopt.runtime.telemetry import GRPC_HEALTH_PREFIX

GRPC_PATHS = (GRPC_PREFIX, "/grpc.reflection.", GRPC_HEALTH_PREFIX)
"""The path prefixes of the routes that go straight to the gRPC services."""
GRPC_ONLY_FILTER = "likeopt.grpc_only"
NOT_GRPC_WORDS = (
    "this path is a gRPC method: call it with gRPC or gRPC-web (content-type application/grpc or"
    " application/grpc-web); the REST API is under /api/v1/"
)
"""Why a request on a gRPC method's path in another protocol (Connect, plain JSON) is refused."""
NOT_GRPC_CONTENT = {
    "header_filter": {
        "header": {
            "name": "content-type",
            "string_match": {"prefix": "application/grpc"},
            "invert_match": True,
            "treat_missing_header_as_empty": True,
        }
    }
}
"""A local reply's filter: the request has no gRPC content type."""


def _not_grpc() -> dict:
    """An RBAC permission: a request without a gRPC content type (grpc_web has made a gRPC-web call's
    application/grpc)."""
    grpc_type = {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
    return {"not_rule": {"header": grpc_type}}


def _on_grpc_path() -> dict:
    """A local reply's filter: the request's path is on a gRPC route."""
    regex = "(" + "|".join(re.escape(prefix) for prefix in GRPC_PATHS) + ").*"
    return {"header_filter": {"header": {"name": ":path", "string_match": {"safe_regex": {"regex": regex}}}}}


def refuse_other_protocols(doc: dict) -> None:
    """RBAC, not a route, refuses them, ahead of the other refusing filters (so call this after adding those): the
    CORS filter passes a route's direct response by, so a browser could not read it; preflights are answered
    before it."""
    grpc_paths = {"or_rules": {"rules": [path_prefix(prefix) for prefix in GRPC_PATHS]}}
    rules = {
        "action": "DENY",
        "policies": {
            "grpc-paths-speak-grpc": {
                "permissions": [{"and_rules": {"rules": [grpc_paths, _not_grpc()]}}],
                "principals": [{"any": True}],
            },
        },
    }
    refusal = {
        "filter": all_of([status_is(403), _on_grpc_path(), NOT_GRPC_CONTENT]),
        "status_code": 415,
        "body": {"inline_string": NOT_GRPC_WORDS},
        # Connect's error shape: its clients, the likeliest to meet this, show the code and the words.
        "body_format_override": {
            "json_format": {"code": "unimplemented", "message": LOCAL_REPLY_BODY},
            "content_type": "application/json",
        },
    }
    for manager in ingress_managers(doc):
        insert_refusing_filters(manager, [{**rbac_filter(rules), "name": GRPC_ONLY_FILTER}])
        manager["local_reply_config"]["mappers"].insert(0, refusal)
