"""A real Prometheus scrapes a real mesh with deploy/prometheus's jobs and rules, after searches, a chat, an OpenAI
chat completion and an upload: every target answers, every series an alert reads is there with the labels and
values it matches, and every rule evaluates without error.

Skipped, with the reason, where Debian's prometheus package is not installed (.ci/run installs it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import promql_parser
import pytest
import yaml

from tests.prometheus_server import DEPLOYED, NO_PROMETHEUS, PROMETHEUS_BINARY, PrometheusServer
from tests.support import MeshProcess
from tests.unit.test_monitoring import RULES, grouping_labels, selectors

pytestmark = pytest.mark.skipif(PROMETHEUS_BINARY is None, reason=NO_PROMETHEUS)

EXPORTED_ONCE_USED = {
    "likeopt_http_stream_errors_total": "a series per route and code once an answer fails midway",
    "likeopt_generation_rejected_total": "only by generation_svc with the local model, whose queue it counts",
}
"""Series an alert reads that a healthy mesh answering with the extractive backend has no reason to export yet."""


def send_traffic(mesh: MeshProcess) -> None:
    """What the alerts' routes and RPCs see: searches, a streamed chat, an OpenAI chat completion, an upload."""
    with httpx.Client(base_url=mesh.base_url, timeout=60) as client:
        for query in ("How does Like-Opt cache answers in Redis?", "Which port does Envoy listen on?"):
            assert client.post("/api/v1/search", json={"query": query}).status_code == 200
        assert client.post("/api/v1/chat", json={"query": "What does the gateway do?"}).status_code == 200
        completion = {"model": "like-opt", "messages": [{"role": "user", "content": "What does cache_svc hold?"}]}
        assert client.post("/v1/chat/completions", json=completion).status_code == 200
        files = {"files": ("notes.md", b"# Notes\n\nPrometheus scrapes every service of the mesh.\n")}
        auth = {"Authorization": f"Bearer {mesh.api_key}"}
        assert client.post("/api/v1/documents", files=files, headers=auth).status_code == 200


@pytest.fixture(scope="module")
def prometheus(mesh: MeshProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus on the mesh, once every target has been scraped after the traffic."""
    send_traffic(mesh)
    sent = time.time()
    server = PrometheusServer(mesh, tmp_path_factory.mktemp("prometheus"))
    server.start()
    try:
        server.wait_for(lambda: scraped_since(server, sent), "not every target was scraped after the traffic")
        yield server
    finally:
        server.stop()


def scraped_since(server: PrometheusServer, moment: float) -> bool:
    """Whether every target's last scrape came after moment (seconds since the epoch)."""
    return len(server.get("query", query=f"timestamp(up) > {moment}")["result"]) == len(server.targets)


def test_every_job_has_its_targets_up(prometheus: PrometheusServer) -> None:
    targets = prometheus.get("targets", state="active")["activeTargets"]
    jobs = {job["job_name"] for job in yaml.safe_load((DEPLOYED / "prometheus.yml").read_text())["scrape_configs"]}
    assert {target["labels"]["job"] for target in targets} == jobs
    assert {target["scrapeUrl"] for target in targets} == set(prometheus.targets)
    down = [(t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
    assert not down


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_every_series_an_alert_reads_is_scraped_with_its_labels(prometheus: PrometheusServer, rule: Any) -> None:
    expression = promql_parser.parse(rule["expr"])
    grouped = set(grouping_labels(expression))
    for selector in selectors(expression):
        if selector.name in EXPORTED_ONCE_USED:
            continue
        exact = [m for m in selector.matchers.matchers if str(m.op) == "MatchOp.Equal"]
        match = selector.name + "{" + ",".join(f"{m.name}={json.dumps(m.value)}" for m in exact) + "}"
        found = prometheus.get("series", **{"match[]": match})
        assert found, f"no series {match}"
        labels = set().union(*found)
        assert {m.name for m in selector.matchers.matchers} | grouped <= labels, match


def test_every_rule_evaluates_without_error(prometheus: PrometheusServer) -> None:
    def evaluated() -> list[dict[str, Any]]:
        rules = [rule for group in prometheus.get("rules")["groups"] for rule in group["rules"]]
        return rules if all(rule["health"] != "unknown" for rule in rules) else []

    rules = prometheus.wait_for(evaluated, "not every rule was evaluated")
    assert {rule["name"] for rule in rules} == {rule["alert"] for rule in RULES}
    assert [(rule["name"], rule["lastError"]) for rule in rules if rule["health"] != "ok"] == []
    for rule in RULES:
        prometheus.get("query", query=rule["expr"])
