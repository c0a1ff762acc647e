"""The template's listeners and clusters fitted to the settings: replicas beyond the first as more endpoints, and no
metrics listener when LIKEOPT_ENVOY_METRICS_PORT=0 (the template holds no conditionals, so the code adds and
removes what varies)."""

from __future__ import annotations

from likeopt.runtime.addresses import split_host_port

STATS_LISTENER = "prometheus_stats"
"""The template's listener that passes GET /stats/prometheus, and nothing else, to the admin interface."""
ADMIN_CLUSTER = "envoy_admin"


def add_replicas(doc: dict, extra: dict[str, list[str]]) -> None:
    """More endpoints in the named clusters (replicas beyond the first)."""
    for cluster in doc["static_resources"]["clusters"]:
        for address in extra.get(cluster["name"], []):
            host, port = split_host_port(address, f"replica of {cluster['name']}")
            endpoint = {"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"].append(endpoint)


def remove_stats_listener(doc: dict) -> None:
    """No metrics port for Envoy (LIKEOPT_ENVOY_METRICS_PORT=0), nor the admin cluster that only it uses."""
    resources = doc["static_resources"]
    resources["listeners"] = [x for x in resources["listeners"] if x["name"] != STATS_LISTENER]
    resources["clusters"] = [x for x in resources["clusters"] if x["name"] != ADMIN_CLUSTER]
