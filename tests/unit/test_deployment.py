"""docker-compose.yml and the Kubernetes manifests run the same system as ``likeopt up`` (no Docker engine and
no cluster run here, so we compare).

The Kubernetes manifests are kustomizations (deploy/k8s/base and its overlays): they are built with a real
kustomize (``kustomize build`` or ``kubectl kustomize``) and every object is validated against the Kubernetes
JSON schemas shipped by the kubernetes-validate package, both offline. Without either tool those tests are
skipped with the reason; the checks of the base's plain files run regardless.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import itertools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from likeopt.ops import envoy_drain
from likeopt.ops.envoy.values import TEMPLATE_PATH, envoy_values
from likeopt.ops.healthcheck import envoy_ready_script
from likeopt.ops.processes import (
    CHILD_ENV,
    CHILD_ENV_DEFAULTS,
    REDIS_BOUNDS,
    REDIS_PERSISTENCE,
    redis_process,
    service_processes,
)
from likeopt.ops.protos import ROOT
from likeopt.ops.supervisor import START_DEADLINE_S
from likeopt.runtime.addresses import address_list, split_host_port
from likeopt.runtime.config import (
    CACHE,
    ENVOY,
    GATEWAY,
    GENERATION,
    RETRIEVAL,
    STOP_GRACE_S,
    Config,
    SettingsError,
    env_name,
    env_names,
    read_by,
)
from tests.packaging import IMAGES, LIGHT_IMAGES

DEFAULTS = Config.from_env({})
LAUNCHED = {spec.name: spec for spec in service_processes(DEFAULTS, Path("/bin/envoy"), Path("/run/envoy.yaml"))}
PYTHON_SERVICES = ["cache_svc", "retrieval_svc", "generation_svc", "gateway"]
DECLARED = set(env_names())
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
    assert render[:3] == ["python", "-m", "likeopt.ops.envoy_config"] and Path(render[3]) == rendered_dir
    assert SERVICES["envoy"]["depends_on"]["envoy-config"]["condition"] == "service_completed_successfully"


def test_the_template_s_header_names_the_renderer_compose_runs() -> None:
    """The template's first comment tells a reader what fills it in a deployment, so it names that command."""
    lines = TEMPLATE_PATH.read_text(encoding="utf-8").splitlines()
    header = " ".join(line.lstrip("# ") for line in itertools.takewhile(lambda line: line.startswith("#"), lines))
    render = " ".join(SERVICES["envoy-config"]["command"][:3])
    assert render in header and "envsubst" not in header


def envoy_workers(argv: list[str]) -> str:
    return argv[argv.index("--concurrency") + 1]


def test_envoy_workers_are_a_setting_of_the_launcher_and_of_compose() -> None:
    assert envoy_workers(LAUNCHED["envoy"].argv) == envoy_workers(SERVICES["envoy"]["command"])
    assert envoy_workers(LAUNCHED["envoy"].argv) == str(DEFAULTS.envoy_workers)
    three = Config.from_env({"LIKEOPT_ENVOY_WORKERS": "3"})
    launched = {spec.name: spec for spec in service_processes(three, Path("/bin/envoy"), Path("/run/envoy.yaml"))}
    assert envoy_workers(launched["envoy"].argv) == "3"
    assert envoy_workers(compose_services({"LIKEOPT_ENVOY_WORKERS": "3"})["envoy"]["command"]) == "3"
    with pytest.raises(SettingsError, match="LIKEOPT_ENVOY_WORKERS"):
        Config.from_env({"LIKEOPT_ENVOY_WORKERS": "0"})


@pytest.mark.parametrize("name", [*PYTHON_SERVICES, "envoy-config", "demo-ingest", *PROFILE_SERVICES])
def test_every_likeopt_variable_is_a_documented_setting(name: str) -> None:
    for variable in compose_env(name, MILVUS_SERVICES):
        if name in PROFILE_SERVICES and not variable.startswith("LIKEOPT_"):
            continue  # Milvus's, etcd's and MinIO's own settings
        assert variable.startswith("LIKEOPT_"), variable
        assert variable in DECLARED, f"{variable} is not a setting of likeopt.runtime.config.Config"
        assert f"`{variable}`" in README, f"{variable} is missing from the README's table"


def test_compose_and_kubernetes_answer_with_the_backend_likeopt_up_uses() -> None:
    """They ran the local model while `likeopt up` (and `make up`) ran the extractive backend."""
    config_map = base_object("ConfigMap", "likeopt-env")["data"]
    for backend in (
        compose_env("generation_svc")["LIKEOPT_GENERATION_BACKEND"],
        config_map["LIKEOPT_GENERATION_BACKEND"],
    ):
        assert backend == DEFAULTS.generation_backend
    chosen = compose_services({"LIKEOPT_GENERATION_BACKEND": "local"})
    assert compose_env("generation_svc", chosen)["LIKEOPT_GENERATION_BACKEND"] == "local"


def test_addresses_use_the_default_ports() -> None:
    env = compose_env("gateway")
    for service in ("retrieval", "generation", "cache", "gateway"):
        host, port = env[f"LIKEOPT_{service.upper()}_ADDR"].split(":")
        assert int(port) == getattr(DEFAULTS, f"{service}_port")
        assert host in SERVICES
    published = SERVICES["envoy"]["ports"][0].rsplit(":", 2)
    assert int(published[-1]) == int(published[-2]) == DEFAULTS.envoy_port


def test_compose_s_prometheus_reaches_envoy_s_metrics_port_and_the_host_does_not() -> None:
    """Prometheus scrapes it over compose's network; like the services' metrics ports it is published nowhere."""
    assert [int(port) for port in SERVICES["envoy"]["expose"]] == [DEFAULTS.envoy_metrics_port]
    assert len(SERVICES["envoy"]["ports"]) == 1


def test_health_checks_ask_what_the_launcher_asks() -> None:
    for name in PYTHON_SERVICES:
        spec = LAUNCHED[name]
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[1:4] == ["python", "-m", "likeopt.ops.healthcheck"]
        if spec.probe == "grpc":
            assert test[4:] == ["grpc", f"127.0.0.1:{spec.port}"]
        else:
            assert test[4] == "http" and test[5].endswith(re.sub(r"^http://[^/]+", "", spec.probe))
    assert "healthcheck" in SERVICES["redis"]
    # The launcher's question, LIVE at /ready, in Envoy's image (bash, no Python)
    assert LAUNCHED["envoy"].probe.endswith(f":{DEFAULTS.envoy_admin_port}/ready")
    assert SERVICES["envoy"]["healthcheck"]["test"] == [
        "CMD",
        "bash",
        "-c",
        envoy_ready_script(DEFAULTS.envoy_admin_port),
    ]


ENVOY_DRAIN = ["bash", "-c", envoy_drain.drain_script(DEFAULTS.envoy_admin_port)]
"""What stops Envoy as `likeopt up` does (likeopt.ops.envoy_drain) in Envoy's image."""


def compose_seconds(duration: str) -> float:
    """A compose duration (``30s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_drains_envoy_before_it_stops_it() -> None:
    """Compose stops Envoy before the services it depends on; its pre_stop hook lets the requests in flight end."""
    assert [hook["command"] for hook in SERVICES["envoy"]["pre_stop"]] == [ENVOY_DRAIN]
    assert compose_seconds(SERVICES["envoy"]["stop_grace_period"]) > envoy_drain.WAIT_S
    assert "gateway" in SERVICES["envoy"]["depends_on"]


@pytest.mark.parametrize("name", [*PYTHON_SERVICES, *PROFILE_SERVICES])
def test_compose_waits_for_each_process_to_finish_its_calls(name: str) -> None:
    """Docker's default of 10 s would kill a process still in its 20 s drain."""
    service = MILVUS_SERVICES[name]
    if service.get("image", "").startswith("like-opt"):
        assert compose_seconds(service.get("stop_grace_period", "10s")) > STOP_GRACE_S, name


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
    for name, value in {**CHILD_ENV_DEFAULTS, **CHILD_ENV}.items():
        assert f"{name}={value}" in dockerfile, name
    assert "USER likeopt" in dockerfile


def test_redis_persists_and_is_bounded_as_the_launcher_runs_it() -> None:
    launched = " ".join(redis_process(Path("redis-server"), 6379, "127.0.0.1", Path("/tmp")).argv)
    k8s_redis = base_object("StatefulSet", "redis")
    for command in (SERVICES["redis"]["command"], k8s_redis["spec"]["template"]["spec"]["containers"][0]["command"]):
        for arguments in (REDIS_PERSISTENCE, REDIS_BOUNDS):
            assert " ".join(arguments) in " ".join(command) and " ".join(arguments) in launched


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


# --- Kubernetes: deploy/k8s/base and its overlays ---------------------------------------------------------------

K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
SCALE_OUT = K8S / "overlays" / "scale-out"
KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
AUTOSCALED = {"retrieval-svc", "generation-svc", "gateway"}


def base_objects() -> list[dict]:
    """The base's objects straight from its files: it only lists resources (a test checks), so no tool is needed."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((BASE / name).read_text())]


def base_object(kind: str, name: str) -> dict:
    return next(d for d in base_objects() if d["kind"] == kind and d["metadata"]["name"] == name)


def find(objects: list[dict], kind: str, name: str) -> dict | None:
    return next((d for d in objects if d["kind"] == kind and d["metadata"]["name"] == name), None)


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(objects: list[dict], init: bool = True) -> dict[str, dict]:
    found = {}
    for doc in objects:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            spec = pod_spec(doc)
            for container in [*(spec.get("initContainers", []) if init else []), *spec["containers"]]:
                found[container["name"]] = container
    return found


def container_env(objects: list[dict], container: dict) -> dict[str, str]:
    """What the container's process sees of its ConfigMaps and literal env (Secrets and valueFrom excepted)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config_map = find(objects, "ConfigMap", source["configMapRef"]["name"])
            assert config_map is not None, f"{container['name']} reads a missing ConfigMap"
            env.update(config_map["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


K8S_VARIABLE = re.compile(r"\$\((\w+)\)")


def k8s_command(objects: list[dict], container: dict) -> list[str]:
    """The command as the kubelet runs it: each $(NAME) replaced from the container's environment, if it is there."""
    env = container_env(objects, container)
    return [K8S_VARIABLE.sub(lambda m: env.get(m[1], m[0]), argument) for argument in container["command"]]


def compose_variables() -> set[str]:
    """The variables docker-compose.yml reads from the shell (``${NAME...}``)."""
    return {match["name"] for match in _VARIABLE.finditer((ROOT / "docker-compose.yml").read_text())}


def test_base_only_lists_resources() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources"}
    kinds = {"ConfigMap", "StatefulSet", "Deployment", "Service", "PersistentVolumeClaim"}
    assert {d["kind"] for d in base_objects()} == kinds


def test_kubernetes_runs_the_same_commands_and_settings() -> None:
    objects = base_objects()
    found = containers(objects)
    for name in PYTHON_SERVICES:
        container = found[name.replace("_", "-")]
        assert container["command"] == SERVICES[name]["command"]
    assert k8s_command(objects, found["envoy"]) == SERVICES["envoy"]["command"]
    assert found["envoy-config"]["command"] == SERVICES["envoy-config"]["command"]
    config_map = next(d for d in objects if d["kind"] == "ConfigMap")["data"]
    assert set(config_map) <= DECLARED
    assert set(config_map) <= set(compose_env("gateway")) | compose_variables()


K8S_PORTS = {
    "retrieval-svc": (DEFAULTS.retrieval_port, DEFAULTS.retrieval_metrics_port),
    "generation-svc": (DEFAULTS.generation_port, DEFAULTS.generation_metrics_port),
    "cache-svc": (DEFAULTS.cache_port, DEFAULTS.cache_metrics_port),
    "gateway": (DEFAULTS.gateway_port, None),
    "envoy": (DEFAULTS.envoy_port, DEFAULTS.envoy_metrics_port),
}
"""Each workload's serving port and Prometheus port, as config.py's defaults give them to `likeopt up`."""


def probe_ports(container: dict) -> set[int]:
    """The ports a container's probes ask: httpGet's port, or the host:port a healthcheck command names."""
    ports = set()
    for kind in ("readinessProbe", "startupProbe", "livenessProbe"):
        probe = container.get(kind, {})
        if "httpGet" in probe:
            ports.add(int(probe["httpGet"]["port"]))
        for argument in probe.get("exec", {}).get("command", []):
            ports.update(int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", argument))
    return ports


@pytest.mark.parametrize("name", sorted(K8S_PORTS))
def test_kubernetes_ports_are_the_settings_defaults(name: str) -> None:
    """A port changed in config.py but not here would leave a Service, a probe or an address pointing nowhere."""
    objects = base_objects()
    serving, metrics = K8S_PORTS[name]
    container = containers(objects, init=False)[name]
    declared = {port["containerPort"]: port.get("name") for port in container["ports"]}
    assert declared == {serving: None, **({metrics: "metrics"} if metrics else {})}
    service = base_object("Service", name)
    assert [port["port"] for port in service["spec"]["ports"]] == [serving]
    assert all(port.get("targetPort", serving) == serving for port in service["spec"]["ports"])
    assert probe_ports(container) <= {serving, DEFAULTS.envoy_admin_port} and probe_ports(container)
    addresses = next(d for d in objects if d["kind"] == "ConfigMap")["data"]
    named = [value for key, value in addresses.items() if key.endswith("_ADDR") and value.startswith(f"{name}:")]
    assert [int(split_host_port(value)[1]) for value in named] == [serving] * (name != "envoy")


def test_the_milvus_profile_s_retrieval_replicas_prometheus_scrapes_are_several() -> None:
    """deploy/prometheus finds them by DNS under this name (tests/unit/test_monitoring.py)."""
    assert MILVUS_SERVICES["retrieval_svc_milvus"]["deploy"]["replicas"] > 1


def test_kubernetes_envoy_workers_follow_the_setting() -> None:
    """As `likeopt up` and compose: LIKEOPT_ENVOY_WORKERS in the ConfigMap is Envoy's --concurrency."""
    objects = base_objects()
    assert envoy_workers(k8s_command(objects, containers(objects)["envoy"])) == str(DEFAULTS.envoy_workers)
    changed = copy.deepcopy(objects)
    find(changed, "ConfigMap", "likeopt-env")["data"]["LIKEOPT_ENVOY_WORKERS"] = "3"
    assert envoy_workers(k8s_command(changed, containers(changed)["envoy"])) == "3"


@pytest.mark.parametrize("kustomization", [BASE, SCALE_OUT], ids=lambda p: str(p.relative_to(K8S)))
def test_every_variable_a_kubernetes_command_names_is_set(kustomization: Path) -> None:
    """Kubernetes leaves $(NAME) as it is when the container has no NAME: Envoy would get it as its argument."""
    objects = base_objects() if kustomization == BASE else build(kustomization)
    for name, container in containers(objects).items():
        for argument in k8s_command(objects, container):
            assert not K8S_VARIABLE.search(argument), f"{name}: {argument} is not set in its environment"


PROGRAM_PROCESS = {
    "cache_svc": CACHE,
    "retrieval_svc": RETRIEVAL,
    "generation_svc": GENERATION,
    "gateway": GATEWAY,
    "likeopt.ops.envoy_config": ENVOY,
}
"""The process whose settings each Like-Opt program reads (the init container renders Envoy's)."""
SECRETS = {"secretRef": {"name": "likeopt-secrets"}}


def secrets_read_by(process: str) -> set[str]:
    """The secret settings (keys and tokens) a process reads."""
    return {env_name(f) for f, info in Config.model_fields.items() if info.annotation is SecretStr} & set(
        env_names(process)
    )


@pytest.mark.parametrize("kustomization", [BASE, SCALE_OUT], ids=lambda p: str(p.relative_to(K8S)))
def test_every_process_that_reads_a_secret_gets_the_secret(kustomization: Path) -> None:
    """Each program that reads a key gets the Secret, and those reading the API key get it as compose gives it:
    Envoy's config rendered without the key refuses every gRPC write (and read, when reads need the key)."""
    objects = base_objects() if kustomization == BASE else build(kustomization)
    keyed = set()
    for name, container in containers(objects).items():
        command = container["command"]
        process = PROGRAM_PROCESS.get(command[2]) if command[:2] == ["python", "-m"] else None
        if process is None or not secrets_read_by(process):
            continue
        assert SECRETS in container.get("envFrom", []), f"{name} does not get the Secret likeopt-secrets"
        if process in read_by("api_key"):
            composed = next(s for s in SERVICES.values() if s.get("command") == command)
            assert "LIKEOPT_API_KEY" in composed["environment"], command
            keyed.add(process)
    assert keyed == set(read_by("api_key"))


def test_kubernetes_drains_envoy_before_it_stops_it() -> None:
    envoy = base_object("Deployment", "envoy")
    container = next(c for c in pod_spec(envoy)["containers"] if c["name"] == "envoy")
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ENVOY_DRAIN
    assert pod_spec(envoy)["terminationGracePeriodSeconds"] > envoy_drain.WAIT_S  # the preStop hook counts in it


def test_kubernetes_waits_for_each_process_to_finish_its_calls() -> None:
    """Kubernetes' default of 30 s is enough, but said where the reason is."""
    for name in PYTHON_SERVICES:
        workload = next(
            d
            for d in base_objects()
            if d.get("spec", {}).get("template") and d["metadata"]["name"] == name.replace("_", "-")
        )
        assert pod_spec(workload)["terminationGracePeriodSeconds"] > STOP_GRACE_S, name


def liveness_of(container: dict) -> dict:
    """What a liveness probe should ask of the container: whether it answers at all, never whether it serves
    (a service loading, draining or waiting for Milvus or Redis answers NOT_SERVING, and a restart mends none)."""
    readiness = container["readinessProbe"]
    if container["name"] == "envoy":
        return {
            "exec": {"command": ["bash", "-c", envoy_ready_script(DEFAULTS.envoy_admin_port, ("LIVE", "DRAINING"))]}
        }
    command = readiness["exec"]["command"]
    if command[2:4] == ["likeopt.ops.healthcheck", "grpc"]:
        return {"exec": {"command": [*command[:3], "grpc-alive", command[4]]}}
    if command[2:4] == ["likeopt.ops.healthcheck", "http"]:
        url = urlsplit(command[4])
        return {"httpGet": {"path": url.path, "port": url.port}}
    return {"exec": {"command": command}}  # Redis: PING is all there is


@pytest.mark.parametrize("kustomization", [BASE, SCALE_OUT], ids=lambda p: str(p.relative_to(K8S)))
def test_kubernetes_restarts_a_hung_process_but_not_a_slow_or_waiting_one(kustomization: Path) -> None:
    objects = base_objects() if kustomization == BASE else build(kustomization)
    for name, container in containers(objects, init=False).items():
        live, start = container["livenessProbe"], container["startupProbe"]
        handler = {k: v for k, v in live.items() if k in ("exec", "httpGet", "grpc", "tcpSocket")}
        assert handler == liveness_of(container), name
        assert live["failureThreshold"] >= 3 and live["timeoutSeconds"] >= 5, f"{name}: a busy moment is not a hang"
        # Liveness counts only once the process first answered, however long its first start takes.
        expected = {"exec": {"command": ["bash", "-c", envoy_ready_script(DEFAULTS.envoy_admin_port)]}}
        assert {k: v for k, v in start.items() if k in handler} == (expected if name == "envoy" else handler), name
        assert start["periodSeconds"] * start["failureThreshold"] >= START_DEADLINE_S, name


def test_base_retrieval_is_one_stateful_replica_with_its_data() -> None:
    retrieval = base_object("StatefulSet", "retrieval-svc")
    assert retrieval["spec"]["replicas"] == 1
    data_dir = base_object("ConfigMap", "likeopt-env")["data"]["LIKEOPT_DATA_DIR"]
    mounts = pod_spec(retrieval)["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == data_dir for m in mounts)


def test_base_generation_keeps_answers_and_ratings_on_a_volume() -> None:
    # As docker-compose's feedback-data volume: without one, every new pod started with no ratings.
    feedback_dir = str(Path(compose_env("generation_svc")["LIKEOPT_FEEDBACK_DB"]).parent)
    generation = base_object("Deployment", "generation-svc")
    spec = pod_spec(generation)
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == feedback_dir)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    claim = base_object("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert generation["spec"]["strategy"] == {"type": "Recreate"}  # one pod at a time holds the claim


# Building with a real kustomize, and validating with kubernetes-validate's schemas.


@functools.cache
def kustomize() -> tuple[list[str], str]:
    """The build command, or an empty one and the reason there is none. kustomize v5 (kubectl 1.27+) is needed."""
    if shutil.which("kustomize"):
        command, version = ["kustomize", "build"], ["kustomize", "version"]
    elif shutil.which("kubectl"):
        command, version = ["kubectl", "kustomize"], ["kubectl", "version", "--client"]
    else:
        return [], "neither kustomize nor kubectl is installed (the machine image ships kubectl)"
    out = subprocess.run(version, capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"v(\d+)\.(\d+)\.\d+", out.split("Kustomize Version:")[-1])
    if not found or int(found[1]) < 5:
        return [], f"{' '.join(command)} is not kustomize v5 or later ({out.strip()!r})"
    return command, ""


@functools.cache
def _build(path: Path) -> tuple[dict, ...]:
    command, _ = kustomize()
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)} {path} failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def build(path: Path) -> list[dict]:
    command, reason = kustomize()
    if not command:
        pytest.skip(reason)
    return list(_build(path))


def schema_validator() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.skip("kubernetes-validate is not installed (pyproject's dev extras install it)")
    return kubernetes_validate


VALIDATE_AGAINST = ("1.29", "latest")
"""The oldest Kubernetes these manifests claim (autoscaling/v2 and every field here are older) and the newest
whose schemas kubernetes-validate ships."""


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_builds_and_every_object_is_valid(kustomization: Path) -> None:
    objects = build(kustomization)
    validator = schema_validator()
    assert objects
    for version in VALIDATE_AGAINST:
        target = validator.utils.latest_version() if version == "latest" else version
        for obj in objects:
            try:
                validator.validate(obj, target, strict=True)
            except validator.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is not valid Kubernetes {target}: {exc}")


def test_the_base_builds_to_its_own_files() -> None:
    def keyed(objects: list[dict]) -> dict[tuple[str, str], dict]:
        return {(d["kind"], d["metadata"]["name"]): d for d in objects}

    assert keyed(build(BASE)) == keyed(base_objects())


@pytest.fixture(scope="module")
def scale_out() -> list[dict]:
    return build(SCALE_OUT)


def test_scale_out_autoscales_retrieval_generation_and_gateway(scale_out: list[dict]) -> None:
    autoscalers = [d for d in scale_out if d["kind"] == "HorizontalPodAutoscaler"]
    assert all(a["apiVersion"] == "autoscaling/v2" for a in autoscalers)
    targets = {a["spec"]["scaleTargetRef"]["name"]: a for a in autoscalers}
    assert set(targets) == AUTOSCALED
    for name, autoscaler in targets.items():
        ref = autoscaler["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment")
        deployment = find(scale_out, "Deployment", name)
        assert deployment is not None, f"the autoscaler {autoscaler['metadata']['name']} targets no Deployment"
        assert "replicas" not in deployment["spec"], f"{name}: `kubectl apply` would undo the autoscaler"
        assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
        cpu = [m["resource"] for m in autoscaler["spec"]["metrics"] if m["type"] == "Resource"]
        assert any(r["name"] == "cpu" and r["target"]["type"] == "Utilization" for r in cpu), name
        for container in pod_spec(deployment)["containers"]:
            assert "cpu" in container["resources"]["requests"], f"{name}: CPU utilisation needs a CPU request"


def test_scale_out_retrieval_is_a_stateless_deployment_on_milvus(scale_out: list[dict]) -> None:
    assert find(scale_out, "StatefulSet", "retrieval-svc") is None
    deployment = find(scale_out, "Deployment", "retrieval-svc")
    assert deployment is not None
    spec = pod_spec(deployment)
    assert all("persistentVolumeClaim" not in v for v in spec.get("volumes", []))
    container = next(c for c in spec["containers"] if c["name"] == "retrieval-svc")
    base = base_object("StatefulSet", "retrieval-svc")
    base_container = pod_spec(base)["containers"][0]
    for field in ("image", "command", "ports", "readinessProbe", "startupProbe", "livenessProbe", "envFrom"):
        assert container[field] == base_container[field], field
    env = container_env(scale_out, container)
    assert env["LIKEOPT_RETRIEVAL_BACKEND"] == "milvus" and env["LIKEOPT_MILVUS_URI"]
    assert "LIKEOPT_RETRIEVAL_READ_ONLY" not in env, "every Milvus-backed replica takes writes"
    config = Config.from_env(env)
    assert config.retrieval_backend == "milvus" and not config.retrieval_read_only
    # The model cache dir is writable: a volume of the pod's own, not the image's directory.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = next(v for v in spec["volumes"] if v["name"] == mounts[str(config.model_cache_dir)])
    assert "emptyDir" in volume
    for service in AUTOSCALED:
        assert find(scale_out, "Service", service)["spec"]["clusterIP"] == "None", f"{service} is not headless"


def test_scale_out_uses_a_valkey_cluster_instead_of_the_base_redis(scale_out: list[dict]) -> None:
    assert find(scale_out, "StatefulSet", "redis") is None and find(scale_out, "Service", "redis") is None
    cache = containers(scale_out)["cache-svc"]
    env = container_env(scale_out, cache)
    assert env["LIKEOPT_REDIS_CLUSTER"] == "1"
    url = urlsplit(env["LIKEOPT_REDIS_URL"])
    assert url.scheme == "redis" and url.hostname == "valkey-cluster" and url.path in ("", "/0")
    password = re.fullmatch(r"\$\((\w+)\)", url.password or "")
    assert password, "the password comes from the cluster's Secret"
    source = next(item for item in cache["env"] if item["name"] == password[1])
    assert source["valueFrom"]["secretKeyRef"] == {"name": "valkey-cluster", "key": "valkey-password"}
    assert Config.from_env({**env, "LIKEOPT_REDIS_URL": env["LIKEOPT_REDIS_URL"].replace(password[0], "pw")})
    values = yaml.safe_load((SCALE_OUT / "valkey-values.yaml").read_text())
    bounds = dict(zip(REDIS_BOUNDS[::2], REDIS_BOUNDS[1::2], strict=True))
    configured = dict(line.split(None, 1) for line in values["valkey"]["configmap"].splitlines())
    assert {f"--{k}": v for k, v in configured.items()} == bounds, "bounded as the launcher bounds Redis"


def test_scale_out_runs_the_same_commands_with_documented_settings(scale_out: list[dict]) -> None:
    base = containers(base_objects())
    for name, container in containers(scale_out).items():
        if name in base:
            assert container["command"] == base[name]["command"], name
        env = container_env(scale_out, container)
        for variable in env:
            if variable.startswith("LIKEOPT_"):
                assert variable in DECLARED, f"{variable} is not a setting of likeopt.runtime.config.Config"
                assert f"`{variable}`" in README, f"{variable} is missing from the README's table"
        if container["command"][:2] == ["python", "-m"]:  # a Like-Opt process: its settings must validate
            Config.from_env({k: re.sub(r"\$\(\w+\)", "x", v) for k, v in env.items()})
    assert set(containers(scale_out)) - set(base) == {"model-cache"}


def test_milvus_values_fit_the_settings(scale_out: list[dict]) -> None:
    """The Helm values give the collection what the settings ask of it."""
    values = yaml.safe_load((SCALE_OUT / "milvus-values.yaml").read_text())
    settings = find(scale_out, "ConfigMap", "likeopt-env")["data"]
    config = Config.from_env(settings)
    assert values["cluster"]["enabled"] is True
    assert values["queryNode"]["replicas"] >= config.milvus_replicas, "each collection replica needs query nodes"
    assert values["streamingNode"]["replicas"] >= 1 and values["dataNode"]["replicas"] >= 1
    uri = urlsplit(config.milvus_uri)
    assert uri.port == values.get("service", {}).get("port", 19530)
    release, namespace = uri.hostname.split(".")[:2]
    assert f"helm install {release} " in (SCALE_OUT / "milvus-values.yaml").read_text()
    assert f"--namespace {namespace}" in (SCALE_OUT / "milvus-values.yaml").read_text()


def iter_readme_commands() -> Iterator[str]:
    text = (K8S / "README.md").read_text()
    yield from re.findall(r"kubectl[^\n]* -k (\S+)", text)


def test_readme_applies_the_kustomizations_that_exist() -> None:
    applied = list(iter_readme_commands())
    assert "deploy/k8s/overlays/scale-out" in applied
    for path in applied:
        assert (ROOT / path / "kustomization.yaml").is_file(), path


# --- images: one Dockerfile target per service ------------------------------------------------------------------

IMAGE_NAMES = {f"like-opt-{target}:latest": target for target in IMAGES}
"""What compose tags each target's image, and what the Kubernetes manifests run."""


@functools.cache
def dockerfile_stages() -> dict[str, tuple[tuple[str, str], ...]]:
    """Each stage of the Dockerfile (by its ``AS`` name): its instructions as (KEYWORD, arguments), continued
    lines joined and comments left out, its FROM first."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            current = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", arguments.strip(), re.IGNORECASE)[2] or ""
            stages[current] = []
        stages[current].append((keyword.upper(), arguments.strip()))
    return {name: tuple(instructions) for name, instructions in stages.items()}


def stage_chain(target: str) -> list[str]:
    """The stage, and every stage it is built on or copies from, transitively."""
    stages = dockerfile_stages()
    chain, pending = [], [target]
    while pending:
        name = pending.pop()
        if name in chain or name not in stages:
            continue  # an image from a registry (python:3.11-slim)
        chain.append(name)
        for keyword, arguments in stages[name]:
            if keyword == "FROM":
                pending.append(arguments.split()[0])
            elif keyword == "COPY" and arguments.startswith("--from="):
                pending.append(arguments.split()[0].removeprefix("--from="))
    return chain


def stage_runs(target: str) -> list[str]:
    """Every RUN of the target's chain of stages."""
    stages = dockerfile_stages()
    return [arguments for name in stage_chain(target) for keyword, arguments in stages[name] if keyword == "RUN"]


def program(command: list[str]) -> str:
    """The program a command starts: the module of ``python -m``, or ``likeopt SUBCOMMAND``."""
    if command[:2] == ["python", "-m"]:
        return command[2]
    assert command[0] == "likeopt", command
    return f"likeopt {command[1]}"


@pytest.mark.parametrize("target", IMAGES)
def test_each_dockerfile_target_installs_its_own_extra_and_runs_its_service(target: str) -> None:
    installs = [run for run in stage_runs(target) if "pip install" in run and "like_opt-" in run]
    assert [re.findall(r"\[([\w,]+)\]", run) for run in installs] == [[IMAGES[target].extra]]
    cmd = next(yaml.safe_load(arguments) for keyword, arguments in dockerfile_stages()[target] if keyword == "CMD")
    assert program(cmd) == IMAGES[target].commands[0]
    assert ("USER", "likeopt") in dockerfile_stages()[target], "runs as the unprivileged user"


@pytest.mark.parametrize("target", LIGHT_IMAGES)
def test_gateway_and_cache_images_install_neither_torch_nor_llama_cpp(target: str) -> None:
    runs = " ".join(stage_runs(target)).lower()
    assert "pip install" in runs
    assert "torch" not in runs and "llama" not in runs
    assert not {"build-retrieval", "build-generation"} & set(stage_chain(target))


def test_the_heavy_images_do_install_their_model_libraries() -> None:
    """The checks above can fail: the retrieval and generation images are the ones that carry torch, llama.cpp."""
    retrieval = " ".join(stage_runs("retrieval"))
    assert "torch" in retrieval and "retrieval_svc.onnx_query" in retrieval
    assert "[generation]" in " ".join(stage_runs("generation"))


def likeopt_services(services: dict[str, dict]) -> dict[str, dict]:
    return {name: s for name, s in services.items() if "build" in s or s.get("image", "").startswith("like-opt")}


def test_compose_builds_one_image_per_target() -> None:
    built = likeopt_services(MILVUS_SERVICES)
    assert set(built) == {*PYTHON_SERVICES, "envoy-config", "demo-ingest", *set(PROFILE_SERVICES) & set(built)}
    for name, service in built.items():
        assert service["build"]["context"] == "." and service["build"]["target"] in IMAGES, name
        assert IMAGE_NAMES[service["image"]] == service["build"]["target"], name


@pytest.mark.parametrize("name", sorted(likeopt_services(MILVUS_SERVICES)))
def test_compose_runs_each_program_from_the_image_that_installs_it(name: str) -> None:
    service = MILVUS_SERVICES[name]
    image = IMAGES[service["build"]["target"]]
    assert program(service["command"]) in image.commands
    if "healthcheck" in service:
        assert program(service["healthcheck"]["test"][1:]) in image.commands


def k8s_containers() -> list[tuple[str, dict]]:
    """Every container in deploy/k8s's files (the base's and the overlays'), with its file's name, that names
    an image: patches that only add settings name none."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in ("Deployment", "StatefulSet"):
                spec = pod_spec(doc)
                for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                    if "image" in container:
                        found.append((f"{path.relative_to(K8S)}:{container['name']}", container))
    return found


def test_kubernetes_runs_each_program_from_the_image_that_installs_it() -> None:
    ours = [(where, c) for where, c in k8s_containers() if c["image"].startswith("like-opt")]
    assert {c["image"] for _, c in ours} == set(IMAGE_NAMES), "every image, and no other like-opt image"
    for where, container in ours:
        target = IMAGE_NAMES[container["image"]]
        command = container["command"]
        if command[0] == "cp":  # an init container copying what the image was built with
            copied = {args.split()[-1] for keyword, args in dockerfile_stages()[target] if keyword == "COPY"}
            assert command[2].rstrip("./") in copied, where
        else:
            assert program(command) in IMAGES[target].commands, where
        for kind in ("readinessProbe", "startupProbe", "livenessProbe"):
            if probe := container.get(kind, {}).get("exec", {}).get("command"):
                assert program(probe) in IMAGES[target].commands, where


def test_generation_image_has_the_openmp_runtime_llama_cpp_links() -> None:
    """pip compiles llama.cpp with OpenMP where a compiler brings libgomp (the build stage's build-essential does);
    its libraries then need libgomp.so.1 at run time, which python:3.11-slim does not have."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None or not shutil.which("ldd"):
        pytest.skip("llama-cpp-python (make install adds it) or ldd is missing: nothing to read the links of")
    libraries = sorted((Path(spec.origin).parent / "lib").glob("*.so"))
    linked = " ".join(subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout for lib in libraries)
    if "libgomp.so.1" not in linked:
        pytest.skip("this machine's llama.cpp build does not use OpenMP, so it says nothing about the image's")
    runs = [arguments for keyword, arguments in dockerfile_stages()["generation"] if keyword == "RUN"]
    assert any("libgomp1" in run for run in runs), "the generation image must install libgomp1"
