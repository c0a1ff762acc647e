"""docker-compose.yml runs the same system as ``likeopt up`` (no Docker engine runs here, so we compare)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from likeopt.config import SETTINGS, Config, address_list, split_host_port
from likeopt.envoy_config import envoy_values
from likeopt.processes import CHILD_ENV, REDIS_BOUNDS, service_processes
from likeopt.protos import ROOT

DEFAULTS = Config.from_env({})
LAUNCHED = {spec.name: spec for spec in service_processes(DEFAULTS, Path("/bin/envoy"), Path("/run/envoy.yaml"))}
PYTHON_SERVICES = ["cache_svc", "retrieval_svc", "generation_svc", "gateway"]
DECLARED = {s.name for s in SETTINGS}
README = (ROOT / "README.md").read_text()

# --- docker-compose.yml, read as compose reads it -------------------------------------------------------------

RAW_COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
MILVUS_ENV_FILE = ROOT / "deploy" / "compose" / "milvus.env"
SHELL = {"LIKEOPT_API_KEY": "a-long-random-key"}
"""What the user's shell gives compose (the file demands LIKEOPT_API_KEY)."""

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?error}`` in every string."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if present:
            return env[name]
        if op and op.endswith("?"):
            raise ValueError(f"compose would refuse to start: {name}: {arg}")
        return arg or ""

    return _VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def env_file(path: Path) -> dict[str, str]:
    """A compose env file: NAME=value lines; blank lines and # comments skipped."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def compose_services(env: dict[str, str]) -> dict[str, dict]:
    """The services compose starts with env as its variables (COMPOSE_PROFILES chooses the profiles)."""
    project = interpolate(RAW_COMPOSE, {**SHELL, **env})
    profiles = set(filter(None, env.get("COMPOSE_PROFILES", "").split(",")))
    return {
        name: service
        for name, service in project["services"].items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


MILVUS_ENV = env_file(MILVUS_ENV_FILE)
SERVICES = compose_services({})
"""The default: no env file, no profile."""
MILVUS_SERVICES = compose_services(MILVUS_ENV)
PROFILE_SERVICES = sorted(set(MILVUS_SERVICES) - set(SERVICES))


def compose_env(name: str, services: dict[str, dict] = SERVICES) -> dict[str, str]:
    return {k: str(v) for k, v in (services[name].get("environment") or {}).items()}


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


@pytest.mark.parametrize("name", [*PYTHON_SERVICES, "envoy-config", "demo-ingest", *PROFILE_SERVICES])
def test_every_likeopt_variable_is_a_documented_setting(name: str) -> None:
    for variable in compose_env(name, MILVUS_SERVICES):
        if name in PROFILE_SERVICES and not variable.startswith("LIKEOPT_"):
            continue  # Milvus's, etcd's and MinIO's own settings
        assert variable.startswith("LIKEOPT_"), variable
        assert variable in DECLARED, f"{variable} is not in likeopt.config.SETTINGS"
        assert f"`{variable}`" in README, f"{variable} is missing from the README's table"


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
    k8s_redis = base_object("StatefulSet", "redis")
    assert " ".join(REDIS_BOUNDS) in " ".join(k8s_redis["spec"]["template"]["spec"]["containers"][0]["command"])


def test_retrieval_data_is_a_volume() -> None:
    data_dir = compose_env("retrieval_svc")["LIKEOPT_DATA_DIR"]
    assert any(v.endswith(f":{data_dir}") for v in SERVICES["retrieval_svc"]["volumes"])


VOLUME_KEYS = {"driver", "driver_opts", "external", "labels", "name"}


def test_named_volumes_are_declared_as_volumes() -> None:
    """The top-level ``volumes`` holds volume definitions only, and declares every named volume a service mounts."""
    declared = RAW_COMPOSE["volumes"]
    for name, definition in declared.items():
        assert definition is None or set(definition) <= VOLUME_KEYS, f"volumes.{name} is not a volume: {definition}"
    for name, service in RAW_COMPOSE["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith(("/", ".", "~", "$")):
                assert source in declared, f"{name} mounts volume {source!r}, which is not declared"


def test_the_default_is_what_it_was_without_the_milvus_env_file() -> None:
    """No profile service starts by default, and every variable the file reads falls back to today's value."""
    assert set(SERVICES) == {
        "redis", "jaeger", "cache_svc", "retrieval_svc", "generation_svc", "gateway", "demo-ingest",
        "envoy-config", "envoy",
    }  # fmt: skip
    for name in SERVICES:
        env = compose_env(name)
        assert env.get("LIKEOPT_RETRIEVAL_ADDR", "retrieval_svc:50051") == "retrieval_svc:50051"
        assert "LIKEOPT_RETRIEVAL_BACKEND" not in env and "LIKEOPT_MILVUS_URI" not in env


# --- the `milvus` profile ---------------------------------------------------------------------------------------

RETRIEVAL_REPLICAS = "retrieval_svc_milvus"


def test_milvus_profile_runs_milvus_standalone_from_the_official_images() -> None:
    assert MILVUS_ENV["COMPOSE_PROFILES"] == "milvus"
    images = {name: MILVUS_SERVICES[name]["image"].rsplit(":", 1)[0] for name in PROFILE_SERVICES}
    assert {"milvusdb/milvus", "quay.io/coreos/etcd", "minio/minio"} <= set(images.values())
    milvus = next(name for name, image in images.items() if image == "milvusdb/milvus")
    assert MILVUS_SERVICES[milvus]["command"] == ["milvus", "run", "standalone"]
    env = compose_env(milvus, MILVUS_SERVICES)
    etcd, minio = env["ETCD_ENDPOINTS"].split(":")[0], env["MINIO_ADDRESS"].split(":")[0]
    assert MILVUS_SERVICES[etcd]["image"].startswith("quay.io/coreos/etcd:")
    assert MILVUS_SERVICES[minio]["image"].startswith("minio/minio:")
    assert all(MILVUS_SERVICES[milvus]["depends_on"][d]["condition"] == "service_healthy" for d in (etcd, minio))
    for name in (milvus, etcd, minio):
        assert "healthcheck" in MILVUS_SERVICES[name] and "ports" not in MILVUS_SERVICES[name]


def test_milvus_profile_retrieval_replicas_are_stateless_on_milvus() -> None:
    replicas = MILVUS_SERVICES[RETRIEVAL_REPLICAS]
    assert replicas["deploy"]["replicas"] == 3
    assert replicas["command"] == SERVICES["retrieval_svc"]["command"]
    assert replicas["healthcheck"]["test"] == SERVICES["retrieval_svc"]["healthcheck"]["test"]
    assert "volumes" not in replicas, "the milvus backend keeps no data in the replica"
    env = compose_env(RETRIEVAL_REPLICAS, MILVUS_SERVICES)
    assert env["LIKEOPT_RETRIEVAL_BACKEND"] == "milvus"
    assert "LIKEOPT_RETRIEVAL_READ_ONLY" not in env, "every Milvus-backed replica takes writes"
    config = Config.from_env(env)
    assert config.retrieval_backend == "milvus" and not config.retrieval_read_only
    milvus = urlsplit(config.milvus_uri)
    assert milvus.hostname in MILVUS_SERVICES and milvus.port == 19530
    assert MILVUS_SERVICES[milvus.hostname]["image"].startswith("milvusdb/milvus:")
    depends = replicas["depends_on"]
    assert depends[milvus.hostname]["condition"] == depends["cache_svc"]["condition"] == "service_healthy"


def test_milvus_profile_sends_the_whole_mesh_to_the_replicas() -> None:
    """Envoy, the gateway, generation_svc and the ingest reach the replicas through their one DNS name."""
    target = f"{RETRIEVAL_REPLICAS}:{DEFAULTS.retrieval_port}"
    for name in ("generation_svc", "gateway", "envoy-config", "demo-ingest", "demo-ingest-milvus"):
        env = compose_env(name, MILVUS_SERVICES)
        assert env["LIKEOPT_RETRIEVAL_ADDR"] == target, name
        assert address_list(Config.from_env(env).retrieval_addr) == [target]
    rendered = envoy_values(Config.from_env(compose_env("envoy-config", MILVUS_SERVICES)), "/dev/stdout")
    assert (rendered["RETRIEVAL_HOST"], rendered["RETRIEVAL_PORT"]) == split_host_port(target, "retrieval")
    depends = MILVUS_SERVICES["demo-ingest-milvus"]["depends_on"]
    assert depends == {RETRIEVAL_REPLICAS: {"condition": "service_healthy"}}


K8S = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "likeopt.yaml").read_text()))


def base_object(kind: str, name: str) -> dict:
    return next(d for d in K8S if d["kind"] == kind and d["metadata"]["name"] == name)


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
    assert set(config_map) <= DECLARED
    assert set(config_map) <= set(compose_env("gateway"))
