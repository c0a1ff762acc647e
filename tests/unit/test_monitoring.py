"""deploy/prometheus: every alert parses as PromQL and names only metrics, labels and values the services export.

The rules are checked against the services' own collectors (test_alert_rules.py evaluates them with promtool): every
module of the four services is imported (each registers its metrics as it loads) and cache_svc's scrape-time
collector is asked directly. Envoy's metrics are its own: a real Envoy runs the rendered config and its metrics port
is scraped, as Prometheus would. A metric renamed in the code, a label dropped, or an Envoy counter its stats matcher
leaves out fails here before an alert silently never fires.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

from cache_svc.l1 import L1Cache
from cache_svc.l2 import RedisLayer
from cache_svc.metrics import CacheCollector
from cache_svc.two_layer import TwoLayerCache
from gateway.app import build_app
from likeopt.ops.envoy.clusters import ADMIN_CLUSTER, STATS_LISTENER
from likeopt.ops.envoy.values import envoy_values, render_envoy_config
from likeopt.ops.protos import ROOT
from likeopt.runtime.config import Config
from likeopt.runtime.contract import RATINGS
from likeopt.v1 import cache_pb2, generation_pb2, retrieval_pb2
from tests.support import distinct_free_ports
from tests.unit.test_envoy_config import ENVOY, NO_ENVOY, envoy_environment, scraped, start_envoy

PROMETHEUS = ROOT / "deploy" / "prometheus"
CONFIG = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
RULES = [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for rule in group["rules"]]
SERVICE_PACKAGES = ("gateway", "generation_svc", "retrieval_svc", "cache_svc", "likeopt")
TARGET_LABELS = {"job", "instance"}
"""What Prometheus adds to every series it scrapes."""
SEVERITIES = {"critical", "warning", "info"}
ENVOY_NAMESPACE = "envoy_"
"""How Envoy names every series it serves Prometheus."""


@functools.cache
def exported() -> dict[str, set[str]]:
    """Every series name the services export, with its label names."""
    for package in SERVICE_PACKAGES:
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    series = {name: set(getattr(c, "_labelnames", ())) for name, c in REGISTRY._names_to_collectors.items()}
    # A Redis that is named (never called here): its health gauge is exported only then.
    with_redis = RedisLayer("redis://127.0.0.1:1", timeout_s=0.05)
    cache = TwoLayerCache(L1Cache(10, 10_000), with_redis, default_ttl_s=60)
    for family in CacheCollector(cache).collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    for name in series:
        if name.endswith("_bucket"):
            series[name].add("le")
    envoy = {name: set(labels) for name, labels in envoy_exported().items()}
    return {**series, **envoy, "up": set()}


@functools.cache
def envoy_exported() -> dict[str, dict[str, set[str]]]:
    """Every series Envoy serves on its metrics port, by name, with each label's values (none without Envoy)."""
    if ENVOY is None:
        return {}
    with tempfile.TemporaryDirectory() as work:
        nowhere = distinct_free_ports(1)[0]  # no gateway: its counters exist all the same
        envoy = start_envoy(Config.from_env(envoy_environment(nowhere)), Path(work))
        try:
            samples = scraped(envoy)
        finally:
            envoy.stop()
    series: dict[str, dict[str, set[str]]] = {}
    for name, labels in samples:
        values = series.setdefault(name, {})
        for label, value in labels:
            values.setdefault(label, set()).add(value)
    return series


@functools.cache
def known_values() -> dict[str, set[str]]:
    """The values a label may be matched against exactly: jobs of prometheus.yml, the gateway's routes, RPC names,
    ratings."""
    rpcs = {
        method.name
        for module in (retrieval_pb2, generation_pb2, cache_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    app = build_app(Config.from_env({}))
    routes = set(app.openapi()["paths"]) | {route.path for route in app.routes if hasattr(route, "path")}
    jobs = {job["job_name"] for job in CONFIG["scrape_configs"]}
    return {"job": jobs, "route": routes, "method": rpcs, "rating": set(RATINGS)}


def selectors(node: Any) -> Iterator[Any]:
    """The vector selectors of an expression, wherever they sit."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
        return
    for part in ("lhs", "rhs", "expr", "vector_selector", "param"):
        if (child := getattr(node, part, None)) is not None:
            yield from selectors(child)
    for argument in getattr(node, "args", None) or []:
        yield from selectors(argument)


def grouping_labels(node: Any) -> Iterator[str]:
    """The labels of every ``by (...)`` in an expression."""
    if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
        yield from node.modifier.labels
    for part in ("lhs", "rhs", "expr", "param"):
        if (child := getattr(node, part, None)) is not None:
            yield from grouping_labels(child)
    for argument in getattr(node, "args", None) or []:
        yield from grouping_labels(argument)


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_every_alert_parses_and_names_only_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    expression = promql_parser.parse(rule["expr"])
    found = list(selectors(expression))
    assert found, "an alert on no metric"
    if ENVOY is None and any(selector.name.startswith(ENVOY_NAMESPACE) for selector in found):
        pytest.skip(NO_ENVOY)
    labels = set(TARGET_LABELS)
    for selector in found:
        assert selector.name in exported(), f"{selector.name} is not exported by any service"
        labels |= exported()[selector.name]
        for matcher in selector.matchers.matchers:
            assert matcher.name in labels, f"{selector.name} has no label {matcher.name!r}"
            assert_known_value(matcher, envoy_exported().get(selector.name, {}).get(matcher.name))
    assert set(grouping_labels(expression)) <= labels


def assert_known_value(matcher: Any, scraped_values: set[str] | None = None) -> None:
    """An exact value must be one the label takes (for Envoy's series, one it was scraped with); a job regex may
    name only jobs."""
    values = known_values().get(matcher.name, scraped_values)
    if values is None:
        return
    if str(matcher.op) == "MatchOp.Equal":
        assert matcher.value in values, f"{matcher.name}={matcher.value!r} never occurs"
    elif matcher.name == "job" and str(matcher.op) == "MatchOp.Re":
        assert set(matcher.value.split("|")) <= values


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_every_alert_says_how_bad_what_and_what_to_do(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"LikeOpt[A-Z]\w+", rule["alert"])
    assert rule["labels"]["severity"] in SEVERITIES
    assert re.fullmatch(r"\d+[smhd]", rule["for"])
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    """Every replica (each address compose's service name resolves to), on the port it listens on by default; the
    Milvus profile's retrieval replicas, which serve instead of retrieval_svc, in retrieval_svc's job."""
    targets = {
        job["job_name"]: [(name, found["port"]) for found in job["dns_sd_configs"] for name in found["names"]]
        for job in CONFIG["scrape_configs"]
        if all(found["type"] == "A" for found in job["dns_sd_configs"])
    }
    defaults = Config.from_env({})
    assert targets == {
        "gateway": [("gateway", defaults.gateway_port)],
        "retrieval_svc": [
            ("retrieval_svc", defaults.retrieval_metrics_port),
            ("retrieval_svc_milvus", defaults.retrieval_metrics_port),
        ],
        "generation_svc": [("generation_svc", defaults.generation_metrics_port)],
        "cache_svc": [("cache_svc", defaults.cache_metrics_port)],
        "envoy": [("envoy", defaults.envoy_metrics_port)],
    }
    paths = {job["job_name"]: job.get("metrics_path", "/metrics") for job in CONFIG["scrape_configs"]}
    assert paths == {**dict.fromkeys(targets, "/metrics"), "envoy": envoy_metrics_path(defaults)}
    assert CONFIG["rule_files"] == ["alerts.yml"]
    assert len({rule["alert"] for rule in RULES}) == len(RULES)


def envoy_metrics_path(config: Config) -> str:
    """The one path Envoy's metrics port passes to its admin interface."""
    doc = yaml.safe_load(render_envoy_config(envoy_values(config, "/dev/stdout")))
    listener = next(x for x in doc["static_resources"]["listeners"] if x["name"] == STATS_LISTENER)
    routes = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    (path,) = [route["match"]["path"] for route in routes if route.get("route", {}).get("cluster") == ADMIN_CLUSTER]
    return path


def test_every_rating_is_exported_before_the_first_is_stored() -> None:
    """LikeOptThumbsDown reads increase() of likeopt_feedback_total by rating: a series first scraped at 1 has no
    earlier sample to rise from, so each process's first rating of a kind would go uncounted."""
    importlib.import_module("generation_svc.feedback")
    for rating in RATINGS:
        assert REGISTRY.get_sample_value("likeopt_feedback_total", {"rating": rating}) is not None, rating
