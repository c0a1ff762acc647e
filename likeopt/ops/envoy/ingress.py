"""The clients' listener ("ingress") in the parsed configuration: its HTTP connection managers, and the RBAC
filters that refuse requests there and where they go, shared by the API key, the token mode and the gRPC-only
check."""

from __future__ import annotations

INGRESS = "ingress"
GRPC_PREFIX = "/likeopt.v1."
"""The path prefix of Like-Opt's gRPC methods."""
RBAC_FILTER = "envoy.filters.http.rbac"


def ingress_listener(doc: dict) -> dict:
    return next(x for x in doc["static_resources"]["listeners"] if x["name"] == INGRESS)


def ingress_managers(doc: dict) -> list[dict]:
    """The HTTP connection managers of the clients' listener."""
    return [chain["filters"][0]["typed_config"] for chain in ingress_listener(doc)["filter_chains"]]


def insert_refusing_filters(manager: dict, refusing: list[dict]) -> None:
    """Filters that refuse requests go right after grpc_web, which reads a gRPC-web call as gRPC first (so that its
    refusal is a gRPC-web reply), and after CORS, which answers preflights before them (a preflight carries no
    credentials) and lets a browser read their refusals."""
    filters = manager["http_filters"]
    at = next(i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.grpc_web") + 1
    filters[at:at] = refusing


def path_prefix(prefix: str) -> dict:
    """An RBAC permission: the request's path starts with prefix."""
    return {"url_path": {"path": {"prefix": prefix}}}


def rbac_filter(rules: dict) -> dict:
    return {
        "name": RBAC_FILTER,
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC", "rules": rules},
    }
