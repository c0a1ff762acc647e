"""Identity (LIKEOPT_AUTH=jwt): Envoy's jwt_authn verifies the bearer token on every API route and gRPC method,
forwards the verified payload to the services in PRINCIPAL_HEADER, and an RBAC filter lets gRPC writes through only
with the writer role or the API key; Envoy's own refusals are told in each client's shape."""

from __future__ import annotations

import itertools
import re
from urllib.parse import urlsplit

from likeopt.ops.envoy.ingress import GRPC_PREFIX, ingress_managers, insert_refusing_filters, rbac_filter
from likeopt.ops.envoy.keys import GRPC_WRITES, key_header
from likeopt.ops.envoy.replies import DENIED, UNAUTHENTICATED, grpc_refusal, in_every_shape, status_is
from likeopt.ops.envoy.tls import verified_tls
from likeopt.runtime.api_key import BLANKS
from likeopt.runtime.config import Config
from likeopt.runtime.principal import (
    LACKS_WRITER_ROLE,
    NOT_A_TOKEN,
    PRINCIPAL_HEADER,
    TOKEN_FAILURE_HEADER,
    WRITES_NEED,
    WRONG_KEY,
    token_write_refusal,
)
from likeopt.runtime.telemetry import GRPC_HEALTH_PREFIX, UNTRACED_PATHS

PROVIDER = "likeopt"
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "jwt_payload"
"""Where jwt_authn leaves a verified token's payload in the request's metadata (RBAC and the replies read it)."""
JWT_FAILURE = "jwt_failure"
"""Where jwt_authn leaves why it refused a token ({code, message}): on the write routes, where a token is optional,
nothing else tells it, and the refusal of the write names it."""
JWT_MISSED = 1
"""jwt_authn's code for a request that brought no token (google::jwt_verify::Status::JwtMissed)."""
TOKEN_FAILURE = f"%DYNAMIC_METADATA({JWT_FILTER}:{JWT_FAILURE}:message)%"
"""Envoy's command operator for that reason (empty when no token was refused)."""
CLIENT_PRINCIPAL = f"a client may not send {PRINCIPAL_HEADER}"
"""The refusal of a request that brings PRINCIPAL_HEADER itself (principal_refusal)."""
PUBLIC_PATHS = ("/", *sorted(UNTRACED_PATHS), "/api/v1/openapi.json", "/api/v1/docs", "/v1/openapi.json")
PUBLIC_PREFIXES = ("/static/", GRPC_HEALTH_PREFIX)
"""Served to anyone: the UI's page and scripts (it signs in itself), the probes of health, readiness and metrics
over HTTP and gRPC (they bring no token; gRPC clients' channels watch health to choose where calls go, before any
call carries one) and the API descriptions."""
GRPC_WRITE_METHODS = tuple(
    f"{GRPC_WRITES}{method}" for method in ("UpsertDocuments", "IngestDocuments", "DeleteDocuments")
)
KEYED_PATHS = (*GRPC_WRITE_METHODS, f"{GRPC_PREFIX}GenerationService/ListFeedback")
"""gRPC methods the API key may call without a token (writes also with a token holding the writer role)."""
BEARER_PREFIXES = tuple(
    sorted("".join(case) + blank for case in itertools.product(*({c, c.upper()} for c in "bearer")) for blank in BLANKS)
)
"""The Authorization scheme in each of its 64 spellings, each with each blank after it, as the gateway reads it
(api_key.BEARER_SCHEME): RFC 7235 makes the scheme case-insensitive, and jwt_authn looks for a prefix exactly, then
takes the token from the first base64url character after it, past any further blanks. A header holds one at most
(one blank follows the scheme, and a JWT holds none), so no request carries two tokens."""


def _method_rule(prefix: str, method: str, requires: dict | None) -> dict:
    rule: dict = {"match": {"prefix": prefix, "headers": [{"name": ":method", "string_match": {"exact": method}}]}}
    return {**rule, "requires": requires} if requires else rule


def jwt_rules() -> list[dict]:
    """Which requests need a verified token, first match wins, and everything not named needs one.

    Writes and administration accept a token or none (``allow_missing_or_failed``: the API key rides in the
    same Authorization header and is no JWT), and then need the key or the writer role: the gateway checks REST,
    the RBAC filter gRPC, generation_svc ListFeedback.
    """
    token = {"provider_name": PROVIDER}
    token_or_key = {"requires_any": {"requirements": [token, {"allow_missing_or_failed": {}}]}}
    rules: list[dict] = [{"match": {"path": path}} for path in PUBLIC_PATHS]
    rules += [{"match": {"prefix": prefix}} for prefix in PUBLIC_PREFIXES]
    rules.append(_method_rule("/api/v1/documents", "POST", token_or_key))
    rules.append(_method_rule("/api/v1/documents/", "DELETE", token_or_key))
    rules.append(_method_rule("/api/v1/feedback", "GET", token_or_key))
    rules += [{"match": {"path": path}, "requires": token_or_key} for path in KEYED_PATHS]
    rules.append({"match": {"prefix": "/"}, "requires": token})
    return rules


def jwt_provider(config: Config) -> dict:
    """The one identity provider: its issuer, audiences and keys; the payload goes on to the services."""
    provider: dict = {
        "issuer": config.jwt_issuer,
        "audiences": list(config.jwt_audiences),
        "from_headers": [{"name": "authorization", "value_prefix": prefix} for prefix in BEARER_PREFIXES],
        "forward": False,  # the token itself stops here; the services read the verified payload
        "forward_payload_header": PRINCIPAL_HEADER,
        "payload_in_metadata": JWT_PAYLOAD,  # for the RBAC filter's writer-role check
        "failed_status_in_metadata": JWT_FAILURE,  # for the refusal of a write with a bad token
        "clock_skew_seconds": 60,
        "require_expiration": True,  # a token that never expires cannot be taken back ("Jwt verification fails")
    }
    if config.jwt_jwks_file:
        provider["local_jwks"] = {"filename": config.jwt_jwks_file}
    else:
        provider["remote_jwks"] = {
            "http_uri": {"uri": config.jwt_jwks_uri, "cluster": "jwks", "timeout": "5s"},
            "cache_duration": "600s",
            "async_fetch": {},
            "retry_policy": {"num_retries": 3},
        }
    return provider


def jwks_cluster(uri: str) -> dict:
    """The cluster Envoy fetches a remote JWKS through: for https, TLS with the identity provider's certificate
    checked (verified_tls), as whoever could answer in its place would hand Envoy the keys tokens are signed with."""
    parts = urlsplit(uri)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    cluster: dict = {
        "name": "jwks",
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": "jwks",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": host,
                                        "port_value": parts.port or (443 if tls else 80),
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    if tls:
        cluster["transport_socket"] = verified_tls(host)
    return cluster


def writer_policy(config: Config) -> dict:
    """RBAC: gRPC writes need the writer role in the token's roles or groups, or the API key; all else passes."""
    writers: list[dict] = []
    if config.jwt_writer_role:
        for claim in ("roles", config.jwt_groups_claim):
            path = [{"key": JWT_PAYLOAD}, {"key": claim}]
            for value in (
                {"list_match": {"one_of": {"string_match": {"exact": config.jwt_writer_role}}}},
                {"string_match": {"exact": config.jwt_writer_role}},
            ):
                writers.append({"metadata": {"filter": JWT_FILTER, "path": path, "value": value}})
    if key := config.api_key.get_secret_value():
        writers.append({"header": key_header(key)})
    writes = [{"url_path": {"path": {"exact": path}}} for path in GRPC_WRITE_METHODS]
    return {
        "action": "ALLOW",
        "policies": {
            "everything-but-grpc-writes": {
                "permissions": [{"not_rule": {"or_rules": {"rules": writes}}}],
                "principals": [{"any": True}],
            },
            "writers": {
                "permissions": [{"any": True}],
                "principals": [{"or_ids": {"ids": writers}}] if writers else [{"not_id": {"any": True}}],
            },
        },
    }


def jwt_refusal_mappers() -> list[dict]:
    """Envoy's identity refusals in each client's shape, with the statuses the gateway gives REST. A gRPC write
    (refused only by RBAC: its token is optional) is 403 for a verified token without the writer role, else
    401: no token, a wrong key (a bearer value that is no token, NOT_A_TOKEN: called so, as by the gateway), or a
    token jwt_authn did not accept (expired, forged: it passed on as "failed"), whose reason the refusal names.
    jwt_authn answers a wrong audience with 403; it is a bad token like the rest, so any other 403 becomes 401.
    gRPC's reason for jwt_authn's own refusals is the one it left in the metadata; a 401 without one is the
    principal refusal's."""
    writes = "|".join(re.escape(path) for path in GRPC_WRITE_METHODS)
    denied_by_rbac = {"header_filter": {"header": {"name": ":path", "string_match": {"safe_regex": {"regex": writes}}}}}
    # No payload in the metadata: no token was verified. A payload (a struct) never matches null_match.
    unverified = {
        "metadata_filter": {
            "matcher": {"filter": JWT_FILTER, "path": [{"key": JWT_PAYLOAD}], "value": {"null_match": {}}},
            "match_if_key_not_found": True,
        }
    }
    failure = [{"key": JWT_FAILURE}, {"key": "code"}]
    # A token was brought and refused: a code past JWT_MISSED (a filter here has no "not", nor honours "invert").
    after_missed = {"double_match": {"range": {"start": JWT_MISSED + 1, "end": 2**31}}}
    token_refused = {"metadata_filter": {"matcher": {"filter": JWT_FILTER, "path": failure, "value": after_missed}}}
    # jwt_authn left why it refused a token (a filter on metadata matches a missing key, unless told otherwise).
    present = {"filter": JWT_FILTER, "path": failure, "value": {"present_match": True}}
    failed = {"metadata_filter": {"matcher": present, "match_if_key_not_found": False}}
    unauthorised = [status_is(403), denied_by_rbac, unverified]
    not_a_token = {
        "header_filter": {"header": {"name": "authorization", "string_match": {"safe_regex": {"regex": NOT_A_TOKEN}}}}
    }
    return [
        *in_every_shape([*unauthorised, token_refused, not_a_token], UNAUTHENTICATED, status=401, message=WRONG_KEY),
        *in_every_shape(
            [*unauthorised, token_refused], UNAUTHENTICATED, status=401, message=token_write_refusal(TOKEN_FAILURE)
        ),
        *in_every_shape(unauthorised, UNAUTHENTICATED, status=401, body=WRITES_NEED),
        *in_every_shape([status_is(403), denied_by_rbac], DENIED, message=LACKS_WRITER_ROLE),
        *in_every_shape([status_is(403)], UNAUTHENTICATED, status=401, grpc_message=TOKEN_FAILURE),
        grpc_refusal([status_is(401), failed], UNAUTHENTICATED[0], TOKEN_FAILURE),
        *in_every_shape([status_is(401)], UNAUTHENTICATED, grpc_message=CLIENT_PRINCIPAL),
    ]


def principal_refusal() -> dict:
    """The first route: any request that brings PRINCIPAL_HEADER itself gets 401 (as JSON, by the local reply
    mappers). Routes are chosen on the headers the client sent (before jwt_authn adds its own, which never clears
    the route), so a client can neither spoof a principal nor, with a valid token, smuggle a second one in."""
    return {
        "match": {"prefix": "/", "headers": [{"name": PRINCIPAL_HEADER, "present_match": True}]},
        "direct_response": {"status": 401, "body": {"inline_string": CLIENT_PRINCIPAL}},
    }


def token_failure_headers() -> dict:
    """Route configuration giving every request that got so far the reason jwt_authn refused its token (on write
    routes only, where a token is optional, does one get so far), for the gateway's refusal of the write. Envoy
    removes a header before adding it, so a client's copy never reaches the gateway; with no reason none is added."""
    return {
        "request_headers_to_remove": [TOKEN_FAILURE_HEADER],
        "request_headers_to_add": [{"header": {"key": TOKEN_FAILURE_HEADER, "value": TOKEN_FAILURE}}],
    }


def add_jwt(doc: dict, config: Config) -> None:
    """jwt_authn on every API route and gRPC method (jwt_rules), the writer policy after it; a route ahead of all
    others refuses (401) a request that brings PRINCIPAL_HEADER itself, matched on the headers the client sent;
    Envoy's own refusals in each client's shape (jwt_refusal_mappers), after grpc_web has read a gRPC-web request;
    the reason a token was refused reaches the gateway."""
    for manager in ingress_managers(doc):
        jwt_filter = {
            "name": JWT_FILTER,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {PROVIDER: jwt_provider(config)},
                "rules": jwt_rules(),
                "bypass_cors_preflight": True,
            },
        }
        insert_refusing_filters(manager, [jwt_filter, rbac_filter(writer_policy(config))])
        manager["local_reply_config"]["mappers"][:0] = jwt_refusal_mappers()
        manager["route_config"].update(token_failure_headers())
        for host in manager["route_config"]["virtual_hosts"]:
            host["routes"].insert(0, principal_refusal())
    if config.jwt_jwks_uri:
        doc["static_resources"]["clusters"].append(jwks_cluster(config.jwt_jwks_uri))
