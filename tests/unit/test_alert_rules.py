"""deploy/prometheus checked by Prometheus's own promtool: the configuration and rules load, and each alert fires
when its series say it should (tests/promtool/alerts_test.yml), and not before its ``for`` has passed.

A parser sees that an expression is well formed; only evaluating it finds one that can never be true (a label value
no series has, a rate window too short for the scrape interval, a ``for`` that outlasts the condition).
promtool comes with Debian's prometheus package, which .ci/run installs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from likeopt.ops.protos import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_TESTS = ROOT / "tests" / "promtool" / "alerts_test.yml"
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool is not installed (Debian's prometheus package ships it; .ci/run installs it)"
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)


def promtool(*args: str | Path) -> str:
    """Run promtool; its own report is the failure message when it finds a fault."""
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rules_without_descriptions(directory: Path) -> Path:
    """alerts.yml as written but for its descriptions, in directory: promtool compares every annotation of a firing
    alert, and the descriptions are prose the alert tests need not repeat (their templates are checked by
    ``promtool check rules``)."""
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["annotations"].pop("description", None)
    path = directory / "alerts.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def alert_names() -> set[str]:
    return {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }


def test_every_alert_is_seen_firing_and_quiet_in_the_rule_tests() -> None:
    """An alert with no test that makes it fire could be one that never can."""
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fired == alert_names()
    assert quiet == alert_names()


@needs_promtool
def test_promtool_accepts_the_configuration_and_its_rules() -> None:
    promtool("check", "config", PROMETHEUS / "prometheus.yml")
    promtool("check", "rules", PROMETHEUS / "alerts.yml")


@needs_promtool
def test_each_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    rules_without_descriptions(tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    promtool("test", "rules", tmp_path / RULE_TESTS.name)
