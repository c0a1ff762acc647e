"""The template's placeholders filled from the settings.

``envoy.tmpl.yaml`` (beside this module, package data: an installed wheel, such as an image's, renders the same
file) holds ``${NAME}`` placeholders only, rendered here (``string.Template``) for ``likeopt up`` and for the
init step of docker-compose and Kubernetes (``python -m likeopt.ops.envoy_config``). :func:`envoy_values` is the
single mapping from :class:`~likeopt.runtime.config.Config` to those placeholders.
"""

from __future__ import annotations

import math
from pathlib import Path
from string import Template

from likeopt.ops.envoy_drain import SPAN_FLUSH_MS
from likeopt.ops.open_files import downstream_connection_cap, open_file_limit
from likeopt.runtime.addresses import address_list, otlp_collector, split_host_port
from likeopt.runtime.config import Config
from likeopt.runtime.mcp_refusal import MCP_REFUSED
from likeopt.runtime.telemetry import effective_sample_ratio

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
    "ROUTE_IDLE_TIMEOUT_S",
    "MCP_REFUSED",
)


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
        "ROUTE_IDLE_TIMEOUT_S": str(ROUTE_IDLE_TIMEOUT_S),
        "MCP_REFUSED": str(MCP_REFUSED),
    }
    return values


ROUTE_IDLE_TIMEOUT_S = 120
"""How long a route lets a request go without a byte either way before Envoy ends it (the answers' routes wait
longer: answer_idle_timeout_s)."""
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
