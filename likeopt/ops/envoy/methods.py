"""A request whose method this server does not recognize (``FOO``) is a 501 Not Implemented in the error shape
(RFC 9110 §15.6.2). Envoy's HTTP/1 parser refused such a method as a malformed request (400), and over HTTP/2, which
takes any method, it reached the gateway, whose HTTP/1 parser refused it in plain text. A method it recognizes but a
path does not serve (PUT on a search) still reaches the gateway, which answers 405 with Allow."""

from __future__ import annotations

import re

from likeopt.ops.envoy.ingress import ingress_managers, insert_refusing_filters, rbac_filter
from likeopt.ops.envoy.replies import http_shapes, status_is

RECOGNIZED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
"""HTTP's methods (RFC 9110), PATCH (RFC 5789) and QUERY, which Envoy reads as a safe method with a body."""
METHODS_FILTER = "likeopt.recognized_methods"
UNRECOGNIZED_WORDS = "the request's method is not one this server recognizes; its API uses GET, HEAD, POST and DELETE"
UNRECOGNIZED = {
    "header": {
        "name": ":method",
        "string_match": {"safe_regex": {"regex": "|".join(re.escape(m) for m in RECOGNIZED_METHODS)}},
        "invert_match": True,
    }
}
"""A request whose method is none of RECOGNIZED_METHODS (an RBAC permission, and a local reply's filter)."""


def refuse_unrecognized_methods(doc: dict) -> None:
    """Let Envoy's HTTP/1 parser read any method token, then refuse those not recognized: RBAC denies them (a 403)
    and mappers, ahead of the others, make that a 501 in the REST API's shape, or OpenAI's on /v1/."""
    rules = {
        "action": "DENY",
        "policies": {"recognized-methods": {"permissions": [UNRECOGNIZED], "principals": [{"any": True}]}},
    }
    mappers = http_shapes(  # no gRPC shape: a gRPC call is always a POST
        [status_is(403), {"header_filter": UNRECOGNIZED}],
        ("UNIMPLEMENTED", "method_not_implemented"),
        status=501,
        body=UNRECOGNIZED_WORDS,
    )
    for manager in ingress_managers(doc):
        manager["http_protocol_options"]["allow_custom_methods"] = True
        insert_refusing_filters(manager, [{**rbac_filter(rules), "name": METHODS_FILTER}])
        manager["local_reply_config"]["mappers"][:0] = mappers
