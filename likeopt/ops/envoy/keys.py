"""The API key on gRPC (LIKEOPT_AUTH=apikey): REST is checked by the gateway, but gRPC goes straight to the
services, so Envoy checks it, with an RBAC filter whose 403 becomes a 401 in each client's shape.

RBAC rather than routes: the CORS filter passes a route's direct response by, so a browser could not read such a
refusal, and a preflight was refused like a call without the key.
"""

from __future__ import annotations

from likeopt.ops.envoy.ingress import GRPC_PREFIX, ingress_managers, insert_refusing_filters, path_prefix, rbac_filter
from likeopt.ops.envoy.replies import UNAUTHENTICATED, in_every_shape, status_is
from likeopt.runtime.api_key import KEY_REFUSED, key_pattern

GRPC_WRITES = f"{GRPC_PREFIX}RetrievalService/"
"""The route prefix of every RetrievalService method but the reads Search and SearchBatch (which have path routes of
their own, to every replica): writes, index status and watch, document listings, all sent to the writer."""
GRPC_OPEN_READS = tuple(f"{GRPC_WRITES}{method}" for method in ("Search", "SearchBatch"))
"""The RetrievalService methods that need the API key only when reads do (SearchBatch is a Search per query, as the
same caller); every other one needs it always."""
NO_KEY = "no API key is configured"


def key_header(api_key: str) -> dict:
    """A header matcher that takes the Authorization headers holding the API key as the gateway reads them (the
    scheme in any case, any blanks before and after the key)."""
    return {"name": "authorization", "string_match": {"safe_regex": {"regex": key_pattern(api_key)}}}


def key_policy(api_key: str, reads_too: bool) -> dict:
    """RBAC: the gRPC methods behind the API key (all of them with reads_too, else RetrievalService's but its open
    reads) pass only with the key, and with no key configured never; everything else passes."""
    if reads_too:
        keyed = path_prefix(GRPC_PREFIX)
    else:
        reads = {"or_rules": {"rules": [{"url_path": {"path": {"exact": path}}} for path in GRPC_OPEN_READS]}}
        keyed = {"and_rules": {"rules": [path_prefix(GRPC_WRITES), {"not_rule": reads}]}}
    key_holders = [{"header": key_header(api_key)}] if api_key else [{"not_id": {"any": True}}]
    return {
        "action": "ALLOW",
        "policies": {
            "everything-but-keyed-grpc": {"permissions": [{"not_rule": keyed}], "principals": [{"any": True}]},
            "key-holders": {"permissions": [{"any": True}], "principals": key_holders},
        },
    }


def require_grpc_key(doc: dict, api_key: str, reads_too: bool) -> None:
    """gRPC and gRPC-web writes (and reads too, if asked) refused (401) unless they carry the API key; with no key
    configured they are refused outright, as the gateway refuses REST writes."""
    reason = KEY_REFUSED if api_key else NO_KEY
    for manager in ingress_managers(doc):
        insert_refusing_filters(manager, [rbac_filter(key_policy(api_key, reads_too))])
        # RBAC's 403 is Envoy's only one here: a 401 with the reason, in each client's shape (gRPC-web's as gRPC's).
        refusals = in_every_shape([status_is(403)], UNAUTHENTICATED, status=401, body=reason)
        manager["local_reply_config"]["mappers"][:0] = refusals


RE2_LIMIT = "re2.max_program_size.error_level"
"""Envoy's runtime key for the largest RE2 program a regex may compile to: 100 instructions unless set, and a config
holding a larger one does not load (Envoy's error prints the regex)."""
RE2_DEFAULT_LIMIT = 100


def make_room_for(doc: dict, pattern: str) -> None:
    """Envoy's regex limit raised, if need be, to the length of pattern in bytes, which the API key's (key_pattern:
    literal bytes, two classes, one case-folded word) never compiles to more than: the key is in the pattern, and a
    key of about 90 bytes or more would stop Envoy from starting, printing the key."""
    needed = len(pattern.encode())
    if needed <= RE2_DEFAULT_LIMIT:
        return
    layer = next(layer["static_layer"] for layer in doc["layered_runtime"]["layers"] if "static_layer" in layer)
    layer[RE2_LIMIT] = needed
