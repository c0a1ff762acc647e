"""Settings: bad values refused naming the variable and the rule, secrets kept out of sight, and each process
checking only the settings it reads."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from likeopt.ops.launch_error import LaunchError
from likeopt.ops.ports import refuse_busy_ports
from likeopt.runtime.config import (
    CACHE,
    ENVOY,
    GATEWAY,
    GENERATION,
    LISTENING_PORTS,
    PROCESSES,
    RETRIEVAL,
    Config,
    SettingsError,
    env_name,
    env_names,
    read_by,
    redis_seed_nodes,
    settings_or_exit,
)
from tests.support import distinct_free_ports

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LIKEOPT_ENVOY_PORT", "70000", "LIKEOPT_ENVOY_PORT=70000: must be ≤ 65535"),
        ("LIKEOPT_FUSION_ALPHA", "7", "LIKEOPT_FUSION_ALPHA=7: must be ≤ 1"),
        ("LIKEOPT_CHUNK_TOKENS", "0", "LIKEOPT_CHUNK_TOKENS=0: must be ≥ 1"),
        ("LIKEOPT_CACHE_TTL_S", "-5", "LIKEOPT_CACHE_TTL_S=-5: must be ≥ 1"),
        ("LIKEOPT_CACHE_ENABLED", "ture", "LIKEOPT_CACHE_ENABLED=ture: must be 1 or 0"),
        ("LIKEOPT_RRF_K", "sixty", "LIKEOPT_RRF_K=sixty: must be a number"),
        ("LIKEOPT_GENERATION_BACKEND", "gpt", "LIKEOPT_GENERATION_BACKEND=gpt: must be extractive, local or openai"),
        ("LIKEOPT_LOG_LEVEL", "loud", "LIKEOPT_LOG_LEVEL=loud: must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ("LIKEOPT_JWT_GROUPS_CLAIM", " ", "LIKEOPT_JWT_GROUPS_CLAIM=' ': must name a claim"),
        ("LIKEOPT_OTLP_ENDPOINT", "http://jaeger:port", "LIKEOPT_OTLP_ENDPOINT=http://jaeger:port: must have a port"),
        ("LIKEOPT_OTLP_ENDPOINT", "http://:4317", "LIKEOPT_OTLP_ENDPOINT=http://:4317: must name a host"),
        (
            "LIKEOPT_OTLP_ENDPOINT",
            "ftp://127.0.0.1:4317",
            "LIKEOPT_OTLP_ENDPOINT=ftp://127.0.0.1:4317: must start with http:// (plaintext) or https:// (TLS)",
        ),
        ("LIKEOPT_CORS_ORIGINS", "(", "LIKEOPT_CORS_ORIGINS=(: must be a valid regular expression (missing )"),
        (
            "LIKEOPT_CORS_ORIGINS",
            "^https://(?!evil)",
            "LIKEOPT_CORS_ORIGINS=^https://(?!evil): must be a regex Envoy's",
        ),
        ("LIKEOPT_CORS_ORIGINS", r"^(a)\1$", "LIKEOPT_CORS_ORIGINS=^(a)\\1$: must be a regex Envoy's RE2 takes, which"),
        (
            "LIKEOPT_REDIS_URL",
            "notaurl",
            "LIKEOPT_REDIS_URL must start with redis://, rediss://, unix:// (its scheme: none)",
        ),
        ("LIKEOPT_HOST", "junk.invalid", "LIKEOPT_HOST=junk.invalid: must be an IP address or a host name that"),
        ("LIKEOPT_RETRIEVAL_ADDR", "junk", "LIKEOPT_RETRIEVAL_ADDR 'junk' is not host:port"),
        ("LIKEOPT_GENERATION_ADDR", "nohost", "LIKEOPT_GENERATION_ADDR 'nohost' is not host:port"),
        ("LIKEOPT_CACHE_ADDR", "cache:70000", "LIKEOPT_CACHE_ADDR 'cache:70000': the port must be from 1 to 65535"),
        ("LIKEOPT_GATEWAY_ADDR", "gateway", "LIKEOPT_GATEWAY_ADDR 'gateway' is not host:port"),
        ("LIKEOPT_GENERATION_BACKEND", "openai", "LIKEOPT_OPENAI_BASE_URL must be set when LIKEOPT_GENERATION_BACKEND"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_the_rule(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Config.from_env({name: value})
    assert str(refused.value).startswith(message)


def test_a_tls_collector_needs_a_ca_bundle_to_check_it_against(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    assert Config.from_env({"LIKEOPT_OTLP_ENDPOINT": "http://jaeger:4317"}).otlp_endpoint == "http://jaeger:4317"
    with pytest.raises(SettingsError) as refused:
        Config.from_env({"LIKEOPT_OTLP_ENDPOINT": "https://jaeger:4317"})
    assert str(refused.value) == (
        f"LIKEOPT_OTLP_ENDPOINT=https://jaeger:4317: no CA bundle at {tmp_path / 'missing.pem'} to check the"
        " collector's certificate against (SSL_CERT_FILE names one)"
    )


@pytest.mark.parametrize("value", ["", "redis://:pw@cache:6379/0", "rediss://cache:6380", "unix:///run/redis.sock"])
def test_redis_urls_redis_py_takes_are_accepted(value: str) -> None:
    assert Config.from_env({"LIKEOPT_REDIS_URL": value}).redis_url == value


def test_a_redis_url_of_another_scheme_is_refused_without_showing_its_password() -> None:
    with pytest.raises(SettingsError) as refused:
        Config.for_process(CACHE, {"LIKEOPT_REDIS_URL": "http://user:s3cret@127.0.0.1:1/0"})
    assert str(refused.value).endswith("(its scheme: http)") and "s3cret" not in str(refused.value)
    with pytest.raises(SettingsError, match="LIKEOPT_REDIS_CLUSTER=1 needs a redis:// or rediss://"):
        Config.from_env({"LIKEOPT_REDIS_URL": "unix:///run/redis.sock", "LIKEOPT_REDIS_CLUSTER": "1"})


def test_a_cluster_url_may_list_more_nodes_to_learn_the_cluster_from() -> None:
    env = {
        "LIKEOPT_REDIS_URL": "redis://:pw@10.0.0.1:7000, 10.0.0.2:7001,redis://10.0.0.3:7002",
        "LIKEOPT_REDIS_CLUSTER": "1",
    }
    config = Config.for_process(CACHE, env)
    assert redis_seed_nodes(config.redis_url) == ("redis://:pw@10.0.0.1:7000", [("10.0.0.2", 7001), ("10.0.0.3", 7002)])
    with pytest.raises(SettingsError, match="only LIKEOPT_REDIS_CLUSTER=1 uses"):
        Config.for_process(CACHE, {**env, "LIKEOPT_REDIS_CLUSTER": "0"})
    with pytest.raises(SettingsError, match="node 2 must be host:port") as refused:
        Config.for_process(CACHE, {**env, "LIKEOPT_REDIS_URL": "redis://:pw@a:1,redis://:s3cret@b"})
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("value", [r"^https?://(localhost|127\.0\.0\.1)(:[0-9]+)?$", r"^https://[a-z]+\.example\.com$"])
def test_cors_origins_both_dialects_take_are_accepted(value: str) -> None:
    assert Config.from_env({"LIKEOPT_CORS_ORIGINS": value}).cors_origins == value


def test_every_bad_value_is_named_at_once() -> None:
    bad = {"LIKEOPT_ENVOY_PORT": "70000", "LIKEOPT_FUSION_ALPHA": "7", "LIKEOPT_CACHE_TTL_S": "-5"}
    with pytest.raises(SettingsError) as refused:
        Config.from_env(bad)
    assert sorted(line.split("=")[0] for line in str(refused.value).splitlines()) == sorted(bad)


def test_a_blank_api_key_is_no_key_and_blanks_around_one_are_dropped() -> None:
    """A blank key could never be sent (a header value loses its blanks), so `likeopt up` generates one."""
    assert Config.from_env({"LIKEOPT_API_KEY": " "}).api_key.get_secret_value() == ""
    assert Config.from_env({"LIKEOPT_API_KEY": " the-key\t"}).api_key.get_secret_value() == "the-key"


def test_likeopt_up_refuses_two_processes_on_one_port() -> None:
    """They all run on one host; a metrics port of 0 is off, and several may be off."""
    clash = {"LIKEOPT_RETRIEVAL_METRICS_PORT": "9103", "LIKEOPT_CACHE_METRICS_PORT": "9103"}
    with pytest.raises(SettingsError) as refused:
        Config.from_env(clash).check_ports_apart()
    assert str(refused.value) == (
        "LIKEOPT_RETRIEVAL_METRICS_PORT and LIKEOPT_CACHE_METRICS_PORT are both 9103: each needs its own"
    )
    with pytest.raises(SettingsError, match="LIKEOPT_GATEWAY_PORT and LIKEOPT_RETRIEVAL_PORT are both 8000"):
        Config.from_env({"LIKEOPT_RETRIEVAL_PORT": "8000"}).check_ports_apart()
    off = {f"LIKEOPT_{service}_METRICS_PORT": "0" for service in ("RETRIEVAL", "GENERATION", "CACHE", "ENVOY")}
    Config.from_env(off).check_ports_apart()
    Config.from_env({}).check_ports_apart()


def test_envoys_metrics_port_is_a_port_of_its_own_and_checked_before_anything_starts() -> None:
    """Prometheus scrapes Envoy there, on the host every process binds to; `likeopt up` refuses a clash or a busy one
    as it does for every other port, naming the setting or the process."""
    with pytest.raises(SettingsError, match="LIKEOPT_RETRIEVAL_METRICS_PORT and LIKEOPT_ENVOY_METRICS_PORT are both"):
        Config.from_env({"LIKEOPT_ENVOY_METRICS_PORT": "9101"}).check_ports_apart()
    with pytest.raises(SettingsError, match="LIKEOPT_ENVOY_METRICS_PORT=70000: must be ≤ 65535"):
        Config.from_env({"LIKEOPT_ENVOY_METRICS_PORT": "70000"})
    ports = dict(zip(LISTENING_PORTS, distinct_free_ports(len(LISTENING_PORTS)), strict=True))
    config = Config.from_env({env_name(setting): str(port) for setting, port in ports.items()})
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["envoy_metrics_port"]))
        blocker.listen()
        busy = f"envoy (metrics): port {ports['envoy_metrics_port']} on 127.0.0.1 is already in use"
        with pytest.raises(LaunchError, match=re.escape(busy)):
            refuse_busy_ports(config)


def test_a_port_that_cannot_be_bound_is_not_called_in_use() -> None:
    from likeopt.ops.ports import port_in_use

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert port_in_use("127.0.0.1", taken.getsockname()[1])
    with pytest.raises(LaunchError, match=re.escape("cannot listen on junk.invalid:19255")):
        port_in_use("junk.invalid", 19255)
    with pytest.raises(LaunchError, match=re.escape("cannot listen on 192.0.2.1:19255: Cannot assign")):
        port_in_use("192.0.2.1", 19255)  # TEST-NET-1: an address of no machine


@pytest.mark.parametrize("value", ["1", "true", "Yes", " on ", "0", "FALSE", "no", "off"])
def test_flags_take_the_usual_words(value: str) -> None:
    enabled = Config.from_env({"LIKEOPT_CACHE_ENABLED": value}).cache_enabled
    assert enabled is (value.strip().lower() in ("1", "true", "yes", "on"))


def test_the_defaults_are_the_documented_ones() -> None:
    config = Config.from_env({})
    assert (config.envoy_port, config.retrieval_addr, config.fusion, config.fusion_alpha) == (
        8080,
        "127.0.0.1:50051",
        "convex",
        0.5,
    )
    assert (config.cache_enabled, config.cache_timeout_s, config.cache_ttl_s) == (True, 0.025, 3600)
    assert config.model_cache_dir == Path("~/.cache/likeopt").expanduser()
    assert config.semantic_cache_threshold is None and config.generation_max_tokens == 256


def test_secrets_stay_out_of_repr_str_and_dumps() -> None:
    config = Config.from_env(
        {
            "LIKEOPT_API_KEY": "api-key-value",
            "LIKEOPT_OPENAI_API_KEY": "openai-key-value",
            "LIKEOPT_MILVUS_TOKEN": "user:milvus-password",
            "LIKEOPT_REDIS_URL": "redis://:redis-password@cache:6379/0",
        }
    )
    for leaked in ("api-key-value", "openai-key-value", "milvus-password"):
        assert leaked not in repr(config) + str(config) + config.model_dump_json()
    assert "redis-password" not in repr(config)  # a URL, as redis-py takes it, kept out of logs of the settings
    assert config.api_key.get_secret_value() == "api-key-value"


def test_a_secret_that_breaks_a_rule_is_named_but_not_shown() -> None:
    with pytest.raises(SettingsError) as refused:
        Config.from_env({"LIKEOPT_API_KEY": "s3cret"}).replace(api_key=["s3cret"])
    assert str(refused.value).startswith("LIKEOPT_API_KEY=(hidden): ") and "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("process", "foreign", "own"),
    [
        (RETRIEVAL, {"LIKEOPT_ENVOY_PORT": "70000"}, {"LIKEOPT_CHUNK_TOKENS": "0"}),
        (GENERATION, {"LIKEOPT_CHUNK_TOKENS": "0"}, {"LIKEOPT_CACHE_TTL_S": "-5"}),
        (CACHE, {"LIKEOPT_FUSION_ALPHA": "7"}, {"LIKEOPT_CACHE_TTL_S": "-5"}),
        (GATEWAY, {"LIKEOPT_CACHE_ENABLED": "ture"}, {"LIKEOPT_JAEGER_URL": "javascript:alert(1)"}),
        (ENVOY, {"LIKEOPT_CACHE_TTL_S": "-5"}, {"LIKEOPT_ENVOY_PORT": "70000"}),
    ],
)
def test_each_process_checks_only_its_own_settings(process: str, foreign: dict, own: dict) -> None:
    assert Config.for_process(process, foreign)  # another process's bad value is not this one's to refuse
    with pytest.raises(SettingsError, match=next(iter(own))):
        Config.for_process(process, {**foreign, **own})
    with pytest.raises(SettingsError, match=next(iter(foreign))):
        Config.from_env(foreign)  # the launcher checks everything it hands on


def test_a_rule_across_settings_binds_only_the_processes_that_read_them_all() -> None:
    jwt_without_issuer = {"LIKEOPT_AUTH": "jwt"}
    assert Config.for_process(RETRIEVAL, jwt_without_issuer).jwt  # it reads the principal Envoy verified
    for check in (lambda: Config.for_process(ENVOY, jwt_without_issuer), lambda: Config.from_env(jwt_without_issuer)):
        with pytest.raises(SettingsError, match="LIKEOPT_JWT_ISSUER"):
            check()


@pytest.mark.parametrize(
    ("process", "start", "bad"),
    [
        (RETRIEVAL, "retrieval_svc.__main__:build", {"LIKEOPT_FUSION_ALPHA": "7"}),
        (GENERATION, "generation_svc.__main__:build", {"LIKEOPT_SESSION_TTL_S": "0"}),
        (CACHE, "cache_svc.__main__:build", {"LIKEOPT_CACHE_TTL_S": "-5"}),
        (GATEWAY, "gateway.__main__:main", {"LIKEOPT_MAX_REQUEST_BYTES": "0"}),
    ],
)
def test_a_service_with_a_bad_setting_exits_non_zero_naming_it(
    process: str, start: str, bad: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    module, function = start.split(":")
    entry = getattr(__import__(module, fromlist=[function]), function)
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        entry()
    assert exited.value.code not in (0, None)
    name, value = next(iter(bad.items()))
    assert f"{name}={value}: must be" in capsys.readouterr().err


def test_envoy_config_rendering_refuses_a_bad_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from likeopt.ops.envoy_config import main

    monkeypatch.setenv("LIKEOPT_ENVOY_PORT", "70000")
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path)])
    assert exited.value.code == 2
    assert "LIKEOPT_ENVOY_PORT=70000: must be ≤ 65535" in capsys.readouterr().err
    assert not (tmp_path / "envoy.yaml").exists()


@pytest.mark.parametrize("argv", [["--help"], ["-h"]])
def test_envoy_config_rendering_answers_help_and_writes_nothing(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from likeopt.ops.envoy_config import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert "OUT_DIR" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # not a folder named after the option


def test_envoy_config_rendering_refuses_an_option_it_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from likeopt.ops.envoy_config import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["--out", "rendered"])
    assert exited.value.code == 2
    assert "--out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_settings_or_exit_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIKEOPT_FUSION_ALPHA", "0.25")
    monkeypatch.setenv("LIKEOPT_ENVOY_PORT", "70000")  # not retrieval_svc's
    assert settings_or_exit(RETRIEVAL).fusion_alpha == 0.25
    monkeypatch.delenv("LIKEOPT_ENVOY_PORT")
    assert Config().fusion_alpha == 0.25  # pydantic-settings' own reading of the whole environment agrees


PROPERTIES = {
    "cache_timeout_s": "cache_timeout_ms",
    "cache_write_window_s": "cache_write_window_ms",
    "redis_timeout_s": "redis_timeout_ms",
    "jwt": "auth",
}
CODE = {
    RETRIEVAL: ["retrieval_svc", "likeopt/runtime/grpc_server.py", "likeopt/runtime/principal.py"],
    GENERATION: ["generation_svc", "likeopt/runtime/grpc_server.py", "likeopt/runtime/principal.py"],
    CACHE: ["cache_svc", "likeopt/runtime/grpc_server.py"],
    GATEWAY: ["gateway", "likeopt/runtime/principal.py", "gateway/mcp_server.py"],
    ENVOY: ["likeopt/ops/envoy", "likeopt/ops/envoy_config.py"],
}


@pytest.mark.parametrize("process", PROCESSES)
def test_every_setting_a_process_uses_is_one_it_checks(process: str) -> None:
    """A process takes only its own variables from the environment, so a setting its code reads but its
    declaration does not name would silently keep its default there."""
    used = set()
    for place in CODE[process]:
        for path in [ROOT / place] if place.endswith(".py") else sorted((ROOT / place).rglob("*.py")):
            used |= set(re.findall(r"\bconfig\.([a-z0-9_]+)", path.read_text(encoding="utf-8")))
    fields = {PROPERTIES.get(name, name) for name in used} & set(Config.model_fields)
    assert fields, f"no settings found in {CODE[process]}"
    assert sorted(f for f in fields if process not in read_by(f)) == []


def test_each_variable_is_declared_once_with_a_meaning() -> None:
    assert len(env_names()) == len(set(env_names())) == len(Config.model_fields)
    assert all(name.startswith("LIKEOPT_") for name in env_names())
    assert all(Config.model_fields[f].description for f in Config.model_fields)


def test_the_launcher_checks_all_it_hands_its_children(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from likeopt.ops.launcher import checked_child_environment

    config = Config.from_env({"LIKEOPT_RUN_DIR": str(tmp_path)})
    env = checked_child_environment(config, "generated-key", "redis://127.0.0.1:6399/0")
    assert env["LIKEOPT_API_KEY"] == "generated-key" and env["LIKEOPT_REDIS_URL"] == "redis://127.0.0.1:6399/0"
    monkeypatch.setenv("LIKEOPT_CACHE_TTL_S", "-5")  # only cache_svc reads it; the launcher refuses it for all
    with pytest.raises(LaunchError, match="LIKEOPT_CACHE_TTL_S=-5: must be ≥ 1"):
        checked_child_environment(config, "generated-key", "redis://127.0.0.1:6399/0")
