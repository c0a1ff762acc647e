"""Envoy's configuration: one template, filled from the settings.

``likeopt/ops/envoy/envoy.tmpl.yaml`` holds ``${NAME}`` placeholders only, so the same file is rendered
here (``string.Template``) for ``likeopt up`` and by ``envsubst`` in docker-compose.
:func:`envoy_values` is the single mapping from :class:`~likeopt.runtime.config.Config` to those
placeholders.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
import math
import os
import re
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import grpc
import yaml

from likeopt.ops.envoy_drain import SPAN_FLUSH_MS
from likeopt.ops.open_files import downstream_connection_cap, open_file_limit
from likeopt.runtime.addresses import address_list, ca_file, otlp_collector, split_host_port
from likeopt.runtime.api_key import BLANKS, KEY_REFUSED, key_pattern
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
from likeopt.runtime.telemetry import GRPC_HEALTH_PREFIX, UNTRACED_PATHS, effective_sample_ratio

# Package data (pyproject's [tool.setuptools.package-data]), not a folder of the checkout: an installed wheel,
# such as an image's, renders the same file.
TEMPLATE_PATH = Path(__file__).resolve().parent / "envoy.tmpl.yaml"

PLACEHOLDERS: tuple[str, ...] = (
    "ENVOY_LISTEN_ADDRESS",
    "ENVOY_PORT",
    "ENVOY_ADMIN_PORT",
    "ENVOY_METRICS_PORT",
    "GATEWAY_HOST",
    "GATEWAY_PORT",
    "RETRIEVAL_HOST",
    "RETRIEVAL_PORT",
    "GENERATION_HOST",
    "GENERATION_PORT",
    "RATE_LIMIT_TOKENS",
    "MAX_REQUEST_BYTES",
    "CORS_ALLOWED_ORIGIN",
    "ACCESS_LOG_PATH",
    "TRACE_SAMPLE_PERCENT",
    "OTLP_HOST",
    "OTLP_PORT",
    "SPAN_FLUSH_MS",
    "MAX_CLIENT_CONNECTIONS",
    "ANSWER_IDLE_TIMEOUT_S",
)

RENDERED_NAME = "envoy.yaml"
ACCESS_LOG_NAME = "envoy-access.log"
STATS_LISTENER = "prometheus_stats"
"""The template's listener that passes GET /stats/prometheus, and nothing else, to the admin interface."""
ADMIN_CLUSTER = "envoy_admin"


def envoy_values(config: Config, access_log_path: str) -> dict[str, str]:
    """Every placeholder of the template, as text, from the settings."""
    gateway_host, gateway_port = split_host_port(config.gateway_addr, "LIKEOPT_GATEWAY_ADDR")
    retrieval_host, retrieval_port = split_host_port(address_list(config.retrieval_addr)[0], "LIKEOPT_RETRIEVAL_ADDR")
    generation_host, generation_port = split_host_port(
        address_list(config.generation_addr)[0], "LIKEOPT_GENERATION_ADDR"
    )
    collector = otlp_collector(config.otlp_endpoint)
    sample_ratio = effective_sample_ratio(config.otlp_endpoint, config.trace_sample_ratio)
    values = {
        "ENVOY_LISTEN_ADDRESS": config.host,
        "ENVOY_PORT": str(config.envoy_port),
        "ENVOY_ADMIN_PORT": str(config.envoy_admin_port),
        "ENVOY_METRICS_PORT": str(config.envoy_metrics_port),
        "GATEWAY_HOST": gateway_host,
        "GATEWAY_PORT": gateway_port,
        "RETRIEVAL_HOST": retrieval_host,
        "RETRIEVAL_PORT": retrieval_port,
        "GENERATION_HOST": generation_host,
        "GENERATION_PORT": generation_port,
        "RATE_LIMIT_TOKENS": str(config.rate_limit_rps),
        "MAX_REQUEST_BYTES": str(config.max_request_bytes),
        "CORS_ALLOWED_ORIGIN": config.cors_origins,
        "ACCESS_LOG_PATH": access_log_path,
        "TRACE_SAMPLE_PERCENT": f"{sample_ratio * 100:.4f}",
        "OTLP_HOST": collector.host,
        "OTLP_PORT": collector.port,
        "SPAN_FLUSH_MS": str(SPAN_FLUSH_MS),
        "MAX_CLIENT_CONNECTIONS": str(downstream_connection_cap(open_file_limit())),
        "ANSWER_IDLE_TIMEOUT_S": str(answer_idle_timeout_s(config.answer_timeout_s)),
    }
    return values


ROUTE_IDLE_TIMEOUT_S = 120
"""How long the template lets a request go without a byte either way before Envoy ends it."""
ANSWER_IDLE_MARGIN_S = 30


def answer_idle_timeout_s(answer_timeout_s: float) -> int:
    """The idle timeout of the routes whose reply may wait for a whole answer (a completion without ``stream``, an
    MCP ``ask``, a gRPC Answer before its first event): past the answer's own deadline, so the gateway's or the
    service's error reaches the client rather than Envoy's cut."""
    return max(ROUTE_IDLE_TIMEOUT_S, math.ceil(answer_timeout_s) + ANSWER_IDLE_MARGIN_S)


def render_envoy_config(values: dict[str, str]) -> str:
    """The template with every placeholder filled; a missing one raises ``KeyError``.

    Values are pasted into single-quoted YAML strings or bare numbers, so a single quote
    or a line break in a value is refused rather than producing a broken file.
    """
    for name, value in values.items():
        if "'" in value or "\n" in value or "\r" in value:
            raise ValueError(f"{name}={value!r}: quotes and line breaks are not allowed")
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(values)


def with_replicas(rendered: str, extra: dict[str, list[str]]) -> str:
    """The rendered config with more endpoints in the named clusters (replicas beyond the first)."""
    doc = yaml.safe_load(rendered)
    for cluster in doc["static_resources"]["clusters"]:
        for address in extra.get(cluster["name"], []):
            host, port = split_host_port(address, f"replica of {cluster['name']}")
            endpoint = {"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"].append(endpoint)
    return yaml.safe_dump(doc, sort_keys=False)


def without_stats_listener(rendered: str) -> str:
    """The rendered config without Envoy's metrics port (LIKEOPT_ENVOY_METRICS_PORT=0) and the admin cluster that
    only it uses; the template holds no conditionals, so the renderer takes them out."""
    doc = yaml.safe_load(rendered)
    resources = doc["static_resources"]
    resources["listeners"] = [x for x in resources["listeners"] if x["name"] != STATS_LISTENER]
    resources["clusters"] = [x for x in resources["clusters"] if x["name"] != ADMIN_CLUSTER]
    return yaml.safe_dump(doc, sort_keys=False)


UNTRACED = {"overall_sampling": {"numerator": 0}}
"""A route's tracing when none of its requests is traced, whatever the caller asks or the sampling says."""


def _serves(match: dict, path: str) -> bool:
    """Whether a route with this match takes any request for path (a match on headers takes only some)."""
    if "headers" in match:
        return False
    return match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"]))


def with_untraced_probes(rendered: str) -> str:
    """The rendered config with health, readiness and metrics requests never traced (Kubernetes and Prometheus
    ask every few seconds: each would be a trace of its own). Each such path gets a route of its own ahead of
    the one that served it, a copy of that one untraced; the route of gRPC health checks is untraced as well."""
    doc = yaml.safe_load(rendered)
    for host in _virtual_hosts(doc):
        routes = host["routes"]
        for path in sorted(UNTRACED_PATHS):
            at, serving = next((i, route) for i, route in enumerate(routes) if _serves(route["match"], path))
            routes.insert(at, {**copy.deepcopy(serving), "match": {"path": path}, "tracing": UNTRACED})
        for route in routes:
            if route["match"].get("prefix") == GRPC_HEALTH_PREFIX:
                route["tracing"] = UNTRACED
    return yaml.safe_dump(doc, sort_keys=False)


def _virtual_hosts(doc: dict) -> list[dict]:
    """Every virtual host of the clients' listener's HTTP connection managers (the metrics listener traces nothing
    and serves none of the probe paths)."""
    return [
        host
        for listener in doc["static_resources"]["listeners"]
        if listener["name"] != STATS_LISTENER
        for chain in listener["filter_chains"]
        for network_filter in chain["filters"]
        for host in network_filter["typed_config"].get("route_config", {}).get("virtual_hosts", [])
    ]


GRPC_PREFIX = "/likeopt.v1."


GRPC_WRITES = "/likeopt.v1.RetrievalService/"
"""The route prefix of every RetrievalService method but the reads Search and SearchBatch (which have path routes of
their own, to every replica): writes, index status and watch, document listings, all sent to the writer."""
GRPC_OPEN_READS = ("/likeopt.v1.RetrievalService/Search", "/likeopt.v1.RetrievalService/SearchBatch")
"""The RetrievalService methods that need the API key only when reads do (SearchBatch is a Search per query, as the
same caller); every other one needs it always."""
NO_KEY = "no API key is configured"
RBAC_FILTER = "envoy.filters.http.rbac"


def key_header(api_key: str) -> dict:
    """A header matcher that takes the Authorization headers holding the API key as the gateway reads them (the
    scheme in any case, any blanks before and after the key)."""
    return {"name": "authorization", "string_match": {"safe_regex": {"regex": key_pattern(api_key)}}}


def _path_prefix(prefix: str) -> dict:
    return {"url_path": {"path": {"prefix": prefix}}}


def key_policy(api_key: str, reads_too: bool) -> dict:
    """RBAC: the gRPC methods behind the API key (all of them with reads_too, else RetrievalService's but its open
    reads) pass only with the key, and with no key configured never; everything else passes."""
    if reads_too:
        keyed = _path_prefix(GRPC_PREFIX)
    else:
        reads = {"or_rules": {"rules": [{"url_path": {"path": {"exact": path}}} for path in GRPC_OPEN_READS]}}
        keyed = {"and_rules": {"rules": [_path_prefix(GRPC_WRITES), {"not_rule": reads}]}}
    key_holders = [{"header": key_header(api_key)}] if api_key else [{"not_id": {"any": True}}]
    return {
        "action": "ALLOW",
        "policies": {
            "everything-but-keyed-grpc": {"permissions": [{"not_rule": keyed}], "principals": [{"any": True}]},
            "key-holders": {"permissions": [{"any": True}], "principals": key_holders},
        },
    }


def rbac_filter(rules: dict) -> dict:
    return {
        "name": RBAC_FILTER,
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC", "rules": rules},
    }


def _ingress_managers(doc: dict) -> list[dict]:
    """The HTTP connection managers of the clients' listener."""
    listener = next(x for x in doc["static_resources"]["listeners"] if x["name"] == "ingress")
    return [chain["filters"][0]["typed_config"] for chain in listener["filter_chains"]]


def _refusing_filters_after_grpc_web(manager: dict, refusing: list[dict]) -> None:
    """Filters that refuse requests go right after grpc_web, which reads a gRPC-web call as gRPC first (so that its
    refusal is a gRPC-web reply), and after CORS, which answers preflights before them (a preflight carries no
    credentials) and lets a browser read their refusals."""
    filters = manager["http_filters"]
    at = next(i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.grpc_web") + 1
    filters[at:at] = refusing


def with_grpc_key(rendered: str, api_key: str, reads_too: bool) -> str:
    """The rendered config with gRPC and gRPC-web writes (and reads too, if asked) refused (401) unless they
    carry the API key; with no key configured they are refused outright, as the gateway refuses REST writes.

    REST is checked by the gateway; gRPC goes straight to the services, so Envoy checks it, with RBAC rather than
    routes: the CORS filter passes a route's direct response by, so a browser could not read such a refusal, and a
    preflight was refused like a call without the key.
    """
    doc = yaml.safe_load(rendered)
    reason = KEY_REFUSED if api_key else NO_KEY
    for manager in _ingress_managers(doc):
        _refusing_filters_after_grpc_web(manager, [rbac_filter(key_policy(api_key, reads_too))])
        # RBAC's 403 is Envoy's only one here: a 401 with the reason, in each client's shape (gRPC-web's as gRPC's).
        refusals = in_every_shape([_status_is(403)], UNAUTHENTICATED, status=401, body=reason)
        manager["local_reply_config"]["mappers"][:0] = refusals
    return yaml.safe_dump(doc, sort_keys=False)


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
LOCAL_REPLY_BODY = "%LOCAL_REPLY_BODY%"
CLIENT_PRINCIPAL = f"a client may not send {PRINCIPAL_HEADER}"
"""The refusal of a request that brings PRINCIPAL_HEADER itself (principal_refusal)."""
PUBLIC_PATHS = ("/", "/healthz", "/metrics", "/api/v1/healthz", "/api/v1/readyz", "/api/v1/metrics")
PUBLIC_PATHS += ("/api/v1/openapi.json", "/api/v1/docs", "/v1/openapi.json")
PUBLIC_PREFIXES = ("/static/", "/grpc.health.v1.Health/")
"""Served to anyone: the UI's page and scripts (it signs in itself), health over HTTP and gRPC (gRPC clients'
channels watch it to choose where calls go, before any call carries a token), metrics and the API descriptions."""
GRPC_WRITE_METHODS = tuple(
    f"/likeopt.v1.RetrievalService/{method}" for method in ("UpsertDocuments", "IngestDocuments", "DeleteDocuments")
)
KEYED_PATHS = (*GRPC_WRITE_METHODS, "/likeopt.v1.GenerationService/ListFeedback")
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


def _json_reply(code: str, message: str) -> dict:
    return {"json_format": {"error": {"code": code, "message": message}}, "content_type": "application/json"}


def _openai_reply(code: str, message: str) -> dict:
    """OpenAI's error shape, as the gateway's own refusals on /v1/ have it (its SDKs read type and code)."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return {"json_format": {"error": error}, "content_type": "application/json"}


def _status_is(status: int) -> dict:
    value = {"default_value": status, "runtime_key": f"likeopt.local_reply_{status}"}
    return {"status_code_filter": {"comparison": {"op": "EQ", "value": value}}}


def _header_starts(name: str, prefix: str) -> dict:
    return {"header_filter": {"header": {"name": name, "string_match": {"prefix": prefix}}}}


IS_GRPC = _header_starts("content-type", "application/grpc")
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
OPENAI_PATH = _header_starts(":path", "/v1/")


def _all_of(filters: list[dict]) -> dict:
    return filters[0] if len(filters) == 1 else {"and_filter": {"filters": filters}}


UNAUTHENTICATED = ("UNAUTHENTICATED", "invalid_api_key")
"""A refusal's codes: the REST API's (also the gRPC status's name) and OpenAI's."""
DENIED = ("PERMISSION_DENIED", "permission_denied")


def grpc_refusal(filters: list[dict], code: str, message: str) -> dict:
    """A mapper answering gRPC and gRPC-web clients "trailers-only": HTTP 200 without a body, the status named code
    in grpc-status and the reason (a format, which may read the metadata) in grpc-message. Envoy makes that of a
    plain gRPC request's local reply by itself; a gRPC-web one would be an HTTP 401 or 403, which gRPC-web clients
    report as an HTTP error, without its status or reason. A header's format cannot read the body: words only."""
    if not message or message == LOCAL_REPLY_BODY or not (message.isascii() and message.isprintable()):
        raise ValueError(f"a gRPC refusal needs its reason in printable ASCII words, not {message!r}")
    headers = {"grpc-status": str(grpc.StatusCode[code].value[0]), "grpc-message": message}
    return {
        "filter": _all_of([*filters, IS_GRPC]),
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
    OpenAI's error on /v1/ (codes[1]), the REST API's elsewhere (codes[0]). The reason is message, a format that may
    read the request's metadata, by default the body; gRPC's is grpc_message, else message, else body."""
    common: dict = {"status_code": status} if status else {}
    if body:
        common["body"] = {"inline_string": body}
    mappers = [grpc_refusal(filters, codes[0], grpc_message or (body if message == LOCAL_REPLY_BODY else message))]
    for only, reply in ((OPENAI_PATH, _openai_reply(codes[1], message)), (None, _json_reply(codes[0], message))):
        shape = _all_of([*filters, only] if only else filters)
        mappers.append({"filter": shape, **common, "body_format_override": reply})
    return mappers


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
    unauthorised = [_status_is(403), denied_by_rbac, unverified]
    not_a_token = {
        "header_filter": {"header": {"name": "authorization", "string_match": {"safe_regex": {"regex": NOT_A_TOKEN}}}}
    }
    return [
        *in_every_shape([*unauthorised, token_refused, not_a_token], UNAUTHENTICATED, status=401, message=WRONG_KEY),
        *in_every_shape(
            [*unauthorised, token_refused], UNAUTHENTICATED, status=401, message=token_write_refusal(TOKEN_FAILURE)
        ),
        *in_every_shape(unauthorised, UNAUTHENTICATED, status=401, body=WRITES_NEED),
        *in_every_shape([_status_is(403), denied_by_rbac], DENIED, message=LACKS_WRITER_ROLE),
        *in_every_shape([_status_is(403)], UNAUTHENTICATED, status=401, grpc_message=TOKEN_FAILURE),
        grpc_refusal([_status_is(401), failed], UNAUTHENTICATED[0], TOKEN_FAILURE),
        *in_every_shape([_status_is(401)], UNAUTHENTICATED, grpc_message=CLIENT_PRINCIPAL),
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


GRPC_PATHS = (GRPC_PREFIX, "/grpc.reflection.", GRPC_HEALTH_PREFIX)
"""The path prefixes of the routes that go straight to the gRPC services."""
GRPC_ONLY_FILTER = "likeopt.grpc_only"
NOT_GRPC_WORDS = (
    "this path is a gRPC method: call it with gRPC or gRPC-web (content-type application/grpc or"
    " application/grpc-web); the REST API is under /api/v1/"
)
"""Why a request on a gRPC method's path in another protocol (Connect, plain JSON) is refused."""


def _not_grpc() -> dict:
    """An RBAC permission: a request without a gRPC content type (grpc_web has made a gRPC-web call's
    application/grpc)."""
    grpc_type = {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
    return {"not_rule": {"header": grpc_type}}


def _on_grpc_path() -> dict:
    """A local reply's filter: the request's path is on a gRPC route."""
    regex = "(" + "|".join(re.escape(prefix) for prefix in GRPC_PATHS) + ").*"
    return {"header_filter": {"header": {"name": ":path", "string_match": {"safe_regex": {"regex": regex}}}}}


def with_grpc_only(rendered: str) -> str:
    """The rendered config refusing (415) a request on a gRPC path that is not gRPC or gRPC-web: the services read
    any body as gRPC frames, so a Connect call's bare message was misread: it hung, or was reset and reported as "the
    service cannot be reached". RBAC, not a route,
    refuses it, ahead of the other refusing filters: the CORS filter passes a route's direct response by, so a
    browser could not read it; preflights are answered before it."""
    doc = yaml.safe_load(rendered)
    grpc_paths = {"or_rules": {"rules": [_path_prefix(prefix) for prefix in GRPC_PATHS]}}
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
        "filter": _all_of([_status_is(403), _on_grpc_path(), NOT_GRPC_CONTENT]),
        "status_code": 415,
        "body": {"inline_string": NOT_GRPC_WORDS},
        # Connect's error shape: its clients, the likeliest to meet this, show the code and the words.
        "body_format_override": {
            "json_format": {"code": "unimplemented", "message": LOCAL_REPLY_BODY},
            "content_type": "application/json",
        },
    }
    for manager in _ingress_managers(doc):
        _refusing_filters_after_grpc_web(manager, [{**rbac_filter(rules), "name": GRPC_ONLY_FILTER}])
        manager["local_reply_config"]["mappers"].insert(0, refusal)
    return yaml.safe_dump(doc, sort_keys=False)


def with_jwt(rendered: str, config: Config) -> str:
    """The rendered config with identity (LIKEOPT_AUTH=jwt): jwt_authn verifies the bearer token on every API
    route and gRPC method (jwt_rules) and forwards the payload in PRINCIPAL_HEADER; a request that brings that
    header itself is refused (401) by a route ahead of all others, matched on the headers the client sent; RBAC
    guards gRPC writes; Envoy's own refusals are in each client's shape (jwt_refusal_mappers), after grpc_web has
    read a gRPC-web request; the reason a token was refused reaches the gateway."""
    doc = yaml.safe_load(rendered)
    for manager in _ingress_managers(doc):
        jwt_filter = {
            "name": JWT_FILTER,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {PROVIDER: jwt_provider(config)},
                "rules": jwt_rules(),
                "bypass_cors_preflight": True,
            },
        }
        _refusing_filters_after_grpc_web(manager, [jwt_filter, rbac_filter(writer_policy(config))])
        manager["local_reply_config"]["mappers"][:0] = jwt_refusal_mappers()
        manager["route_config"].update(token_failure_headers())
        for host in manager["route_config"]["virtual_hosts"]:
            host["routes"].insert(0, principal_refusal())
    if config.jwt_jwks_uri:
        doc["static_resources"]["clusters"].append(jwks_cluster(config.jwt_jwks_uri))
    return yaml.safe_dump(doc, sort_keys=False)


def with_tls(rendered: str, cert_file: str, key_file: str) -> str:
    """The rendered config with TLS on the ingress listener, HTTP/2 and HTTP/1.1 chosen by ALPN.

    Added to the parsed document rather than templated, so the one template stays free of
    conditionals; docker-compose and Kubernetes render through this module too.
    """
    doc = yaml.safe_load(rendered)
    listener = next(x for x in doc["static_resources"]["listeners"] if x["name"] == "ingress")
    for chain in listener["filter_chains"]:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "tls_certificates": [
                        {"certificate_chain": {"filename": cert_file}, "private_key": {"filename": key_file}}
                    ],
                },
            },
        }
    return yaml.safe_dump(doc, sort_keys=False)


def verified_tls(host: str, alpn: tuple[str, ...] = ()) -> dict:
    """TLS to an upstream with its certificate checked against the CA bundle and for ``host``, which a name also
    sends as SNI (an IP address is never SNI); alpn, the protocols offered (Envoy checks nothing by default)."""
    try:
        ipaddress.ip_address(host)
        san_type, name = "IP_ADDRESS", {}
    except ValueError:
        san_type, name = "DNS", {"sni": host}
    validation = {
        "trusted_ca": {"filename": ca_file()},
        "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": host}}],
    }
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            **name,
            "common_tls_context": {
                **({"alpn_protocols": list(alpn)} if alpn else {}),
                "validation_context": validation,
            },
        },
    }


COLLECTOR_ALPN = ("h2",)
"""What Envoy offers a TLS collector, as the services' exporters speak it: gRPC servers refuse TLS without h2."""


def with_collector_tls(rendered: str, host: str) -> str:
    """The rendered config with TLS to the collector (an ``https://`` LIKEOPT_OTLP_ENDPOINT)."""
    doc = yaml.safe_load(rendered)
    cluster = next(x for x in doc["static_resources"]["clusters"] if x["name"] == "otel_collector")
    cluster["transport_socket"] = verified_tls(host, COLLECTOR_ALPN)
    return yaml.safe_dump(doc, sort_keys=False)


RE2_LIMIT = "re2.max_program_size.error_level"
"""Envoy's runtime key for the largest RE2 program a regex may compile to: 100 instructions unless set, and a config
holding a larger one does not load (Envoy's error prints the regex)."""
RE2_DEFAULT_LIMIT = 100


def with_room_for(rendered: str, pattern: str) -> str:
    """The rendered config with Envoy's regex limit raised, if need be, to the length of pattern in bytes, which the
    API key's (key_pattern: literal bytes, two classes, one case-folded word) never compiles to more than: the key is
    in the pattern, and a key of about 90 bytes or more would stop Envoy from starting, printing the key."""
    needed = len(pattern.encode())
    if needed <= RE2_DEFAULT_LIMIT:
        return rendered
    doc = yaml.safe_load(rendered)
    layer = next(layer["static_layer"] for layer in doc["layered_runtime"]["layers"] if "static_layer" in layer)
    layer[RE2_LIMIT] = needed
    return yaml.safe_dump(doc, sort_keys=False)


def write_envoy_config(config: Config, run_dir: Path, access_log_path: str | None = None) -> Path:
    """Render the template into ``run_dir/envoy.yaml`` and return that path.

    The access log goes to ``access_log_path`` (e.g. ``/dev/stdout``), by default
    ``run_dir/envoy-access.log``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if access_log_path is None:
        access_log_path = str((run_dir / ACCESS_LOG_NAME).resolve())
    text = with_untraced_probes(render_envoy_config(envoy_values(config, access_log_path)))
    replicas = {
        "retrieval": address_list(config.retrieval_addr)[1:],
        "generation": address_list(config.generation_addr)[1:],
    }
    if any(replicas.values()):
        text = with_replicas(text, replicas)
    if not config.envoy_metrics_port:
        text = without_stats_listener(text)
    if config.jwt:
        text = with_jwt(text, config)
    else:
        text = with_grpc_key(text, config.api_key.get_secret_value(), reads_too=config.reads_need_key)
    text = with_grpc_only(text)  # after them: its refusal and its mapper go ahead of theirs
    if key := config.api_key.get_secret_value():
        text = with_room_for(text, key_pattern(key))
    if config.tls_cert_file:
        text = with_tls(text, config.tls_cert_file, config.tls_key_file)
    if (collector := otlp_collector(config.otlp_endpoint)).tls:
        text = with_collector_tls(text, collector.host)
    target = run_dir / RENDERED_NAME
    tmp = target.with_name(target.name + ".tmp")
    tmp.touch(mode=0o600)  # it may hold the API key
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
