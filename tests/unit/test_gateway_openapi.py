"""Every API route the gateway serves is described in its OpenAPI document, and nothing else is."""

from __future__ import annotations

from starlette.routing import Route

from gateway.app import build_app
from gateway.openapi import openapi_spec
from likeopt.config import Config

UNDOCUMENTED = {"/", "/static/config.js", "/api/v1/healthz", "/api/v1/metrics", "/api/v1/openapi.json", "/api/v1/docs"}


def served_operations() -> set[tuple[str, str]]:
    app = build_app(Config.from_env({}))
    operations = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path not in UNDOCUMENTED:
            path = route.path.replace("{doc_id:path}", "{doc_id}")
            operations |= {(path, m.lower()) for m in route.methods or () if m != "HEAD"}
    return operations


def test_spec_describes_exactly_the_served_routes() -> None:
    spec = openapi_spec()
    documented = {(path, method) for path, methods in spec["paths"].items() for method in methods}
    assert documented == served_operations()


def test_every_reference_resolves() -> None:
    spec = openapi_spec()
    schemas = spec["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for item in node for r in refs(item)]
        return []

    missing = {r for r in refs(spec) if r.rsplit("/", 1)[-1] not in schemas}
    assert not missing
