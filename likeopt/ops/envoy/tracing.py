"""Which requests Envoy never traces: health, readiness and metrics probes, which Kubernetes and Prometheus send
every few seconds (each would be a trace of its own)."""

from __future__ import annotations

import copy

from likeopt.ops.envoy.clusters import STATS_LISTENER
from likeopt.runtime.telemetry import GRPC_HEALTH_PREFIX, UNTRACED_PATHS

UNTRACED = {"overall_sampling": {"numerator": 0}}
"""A route's tracing when none of its requests is traced, whatever the caller asks or the sampling says."""


def _serves(match: dict, path: str) -> bool:
    """Whether a route with this match takes any request for path (a match on headers takes only some)."""
    if "headers" in match:
        return False
    return match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"]))


def untrace_probes(doc: dict) -> None:
    """Each probe path gets a route of its own ahead of the one that served it, a copy of that one untraced; the
    route of gRPC health checks is untraced as well."""
    for host in _virtual_hosts(doc):
        routes = host["routes"]
        for path in sorted(UNTRACED_PATHS):
            at, serving = next((i, route) for i, route in enumerate(routes) if _serves(route["match"], path))
            routes.insert(at, {**copy.deepcopy(serving), "match": {"path": path}, "tracing": UNTRACED})
        for route in routes:
            if route["match"].get("prefix") == GRPC_HEALTH_PREFIX:
                route["tracing"] = UNTRACED


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
