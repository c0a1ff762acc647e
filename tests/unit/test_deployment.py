"""docker-compose.yml runs the same system as ``likeopt up`` (no Docker engine runs here, so we compare)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from likeopt.config import SETTINGS, Config
from likeopt.processes import CHILD_ENV, REDIS_BOUNDS, service_processes
from likeopt.protos import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEFAULTS = Config.from_env({})
LAUNCHED = {spec.name: spec for spec in service_processes(DEFAULTS, Path("/bin/envoy"), Path("/run/envoy.yaml"))}
PYTHON_SERVICES = ["cache_svc", "retrieval_svc", "generation_svc", "gateway"]


def compose_env(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[name].get("environment") or {}).items()}


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_services_run_the_same_command(name: str) -> None:
    launched = LAUNCHED[name].argv
    assert SERVICES[name]["command"] == ["python", *launched[1:]]


def test_envoy_runs_with_the_same_arguments_and_the_same_template() -> None:
    launched = LAUNCHED["envoy"].argv[1:]
    composed = SERVICES["envoy"]["command"][1:]
    config_at = launched.index("-c") + 1
    assert composed[:config_at] + composed[config_at + 1 :] == launched[:config_at] + launched[config_at + 1 :]
    rendered_dir = Path(composed[config_at]).parent
    render = SERVICES["envoy-config"]["command"]
    assert render[:3] == ["python", "-m", "likeopt.envoy_config"] and Path(render[3]) == rendered_dir
    assert SERVICES["envoy"]["depends_on"]["envoy-config"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", [*PYTHON_SERVICES, "envoy-config", "demo-ingest"])
def test_every_likeopt_variable_is_a_documented_setting(name: str) -> None:
    declared = {s.name for s in SETTINGS}
    readme = (ROOT / "README.md").read_text()
    for variable in compose_env(name):
        assert variable.startswith("LIKEOPT_"), variable
        assert variable in declared, f"{variable} is not in likeopt.config.SETTINGS"
        assert f"`{variable}`" in readme, f"{variable} is missing from the README's table"


def test_addresses_use_the_default_ports() -> None:
    env = compose_env("gateway")
    for service in ("retrieval", "generation", "cache", "gateway"):
        host, port = env[f"LIKEOPT_{service.upper()}_ADDR"].split(":")
        assert int(port) == getattr(DEFAULTS, f"{service}_port")
        assert host in SERVICES
    published = SERVICES["envoy"]["ports"][0].rsplit(":", 2)
    assert int(published[-1]) == int(published[-2]) == DEFAULTS.envoy_port


def test_health_checks_ask_what_the_launcher_asks() -> None:
    for name in PYTHON_SERVICES:
        spec = LAUNCHED[name]
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[1:4] == ["python", "-m", "likeopt.healthcheck"]
        if spec.probe == "grpc":
            assert test[4:] == ["grpc", f"127.0.0.1:{spec.port}"]
        else:
            assert test[4] == "http" and test[5].endswith(re.sub(r"^http://[^/]+", "", spec.probe))
    assert "healthcheck" in SERVICES["envoy"] and "healthcheck" in SERVICES["redis"]


def test_services_start_after_what_they_call_is_healthy() -> None:
    needs = {
        "cache_svc": {"redis"},
        "retrieval_svc": {"cache_svc"},
        "generation_svc": {"retrieval_svc", "cache_svc"},
        "gateway": {"retrieval_svc", "generation_svc", "cache_svc"},
    }
    for name, upstreams in needs.items():
        depends = SERVICES[name]["depends_on"]
        assert set(depends) == upstreams
        assert all(d["condition"] == "service_healthy" for d in depends.values())


def test_image_sets_the_environment_the_launcher_gives_children() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, value in CHILD_ENV.items():
        assert f"{name}={value}" in dockerfile, name
    assert "USER likeopt" in dockerfile


def test_redis_persists_and_is_bounded_as_the_launcher_bounds_it() -> None:
    command = SERVICES["redis"]["command"]
    assert "--appendonly" in command
    assert " ".join(REDIS_BOUNDS) in " ".join(command)
    k8s_redis = next(d for d in K8S if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis")
    assert " ".join(REDIS_BOUNDS) in " ".join(k8s_redis["spec"]["template"]["spec"]["containers"][0]["command"])


def test_retrieval_data_is_a_volume() -> None:
    data_dir = compose_env("retrieval_svc")["LIKEOPT_DATA_DIR"]
    assert any(v.endswith(f":{data_dir}") for v in SERVICES["retrieval_svc"]["volumes"])


K8S = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "likeopt.yaml").read_text()))


def k8s_containers() -> dict[str, dict]:
    containers = {}
    for doc in K8S:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            spec = doc["spec"]["template"]["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                containers[container["name"]] = container
    return containers


def test_kubernetes_runs_the_same_commands_and_settings() -> None:
    containers = k8s_containers()
    for name in PYTHON_SERVICES:
        container = containers[name.replace("_", "-")]
        assert container["command"] == SERVICES[name]["command"]
    assert containers["envoy"]["command"] == SERVICES["envoy"]["command"]
    assert containers["envoy-config"]["command"] == SERVICES["envoy-config"]["command"]
    config_map = next(d for d in K8S if d["kind"] == "ConfigMap")["data"]
    declared = {s.name for s in SETTINGS}
    assert set(config_map) <= declared
    assert set(config_map) <= set(compose_env("gateway"))
