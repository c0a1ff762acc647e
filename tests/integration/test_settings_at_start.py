"""A bad setting stops the real programs at start, with exit code 2 and a line naming the variable and the rule:
``likeopt up`` before it starts any child, each service on the settings it reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, MeshProcess, mesh_environment


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"LIKEOPT_FUSION_ALPHA": "7"}, "LIKEOPT_FUSION_ALPHA=7: must be ≤ 1"),
        ({"LIKEOPT_REDIS_URL": "notaurl"}, "LIKEOPT_REDIS_URL must start with redis://"),
        ({"LIKEOPT_CORS_ORIGINS": "("}, "LIKEOPT_CORS_ORIGINS=(: must be a valid regular expression"),
        (
            {"LIKEOPT_OTLP_ENDPOINT": "ftp://127.0.0.1:4317"},
            "LIKEOPT_OTLP_ENDPOINT=ftp://127.0.0.1:4317: must start with http:// (plaintext) or https:// (TLS)",
        ),
        (
            {
                "LIKEOPT_AUTH": "jwt",
                "LIKEOPT_JWT_ISSUER": "https://idp.example",
                "LIKEOPT_JWT_AUDIENCE": "like-opt",
                "LIKEOPT_JWT_JWKS_FILE": "/nonexistent",
            },
            "LIKEOPT_JWT_JWKS_FILE=/nonexistent: cannot be read",
        ),
        ({"LIKEOPT_HOST": "junk.invalid"}, "LIKEOPT_HOST=junk.invalid: must be an IP address or a host name that"),
        ({"LIKEOPT_RETRIEVAL_ADDR": "junk"}, "LIKEOPT_RETRIEVAL_ADDR 'junk' is not host:port"),
        ({"LIKEOPT_GENERATION_ADDR": "nohost"}, "LIKEOPT_GENERATION_ADDR 'nohost' is not host:port"),
        (
            {"LIKEOPT_GENERATION_BACKEND": "openai"},
            "LIKEOPT_OPENAI_BASE_URL must be set when LIKEOPT_GENERATION_BACKEND=openai",
        ),
        (
            {"LIKEOPT_RETRIEVAL_METRICS_PORT": "19698", "LIKEOPT_CACHE_METRICS_PORT": "19698"},
            "LIKEOPT_RETRIEVAL_METRICS_PORT and LIKEOPT_CACHE_METRICS_PORT are both 19698",
        ),
    ],
)
def test_likeopt_up_refuses_a_bad_setting_before_starting_any_child(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    mesh = MeshProcess(env=mesh_environment(tmp_path, **settings), args=[])
    mesh.start()
    code = mesh.wait_exit(timeout_s=60)
    output = "".join(mesh.output)
    assert code == 2, output
    assert message in output
    assert "is up on port" not in output and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "name", "value", "rule"),
    [
        (["-m", "cache_svc"], "LIKEOPT_CACHE_TTL_S", "-5", "must be ≥ 1"),
        (["-m", "retrieval_svc"], "LIKEOPT_CHUNK_TOKENS", "0", "must be ≥ 1"),
        (["-m", "generation_svc"], "LIKEOPT_CACHE_ENABLED", "ture", "must be 1 or 0"),
        (["-m", "gateway"], "LIKEOPT_NEAR_CACHE_ENTRIES", "-1", "must be ≥ 0"),
        (["-m", "likeopt.ops.envoy_config", "{out}"], "LIKEOPT_ENVOY_PORT", "70000", "must be ≤ 65535"),
    ],
)
def test_a_program_with_a_bad_setting_of_its_own_exits_2_naming_it(
    tmp_path: Path, argv: list[str], name: str, value: str, rule: str
) -> None:
    env = mesh_environment(tmp_path, **{name: value})
    args = [sys.executable, *(a.format(out=tmp_path / "envoy") for a in argv)]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{name}={value}: {rule}" in done.stderr


@pytest.mark.parametrize(
    ("service", "one_it_reads"),
    [
        ("cache_svc", "LIKEOPT_CACHE_TTL_S"),
        ("retrieval_svc", "LIKEOPT_CHUNK_TOKENS"),
        ("generation_svc", "LIKEOPT_GENERATION_BACKEND"),
        ("gateway", "LIKEOPT_NEAR_CACHE_ENTRIES"),
    ],
)
def test_a_service_answers_help_with_the_settings_it_reads_and_refuses_arguments(
    tmp_path: Path, service: str, one_it_reads: str
) -> None:
    """A service is configured by the environment only: `--help` must not start a server (which wrote its data
    folder into the working directory), and an argument must not be ignored by one that starts anyway."""
    env = mesh_environment(tmp_path)
    helped = subprocess.run(
        [sys.executable, "-m", service, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert f"  {one_it_reads} (default " in helped.stdout
    assert "LIKEOPT_ENVOY_WORKERS" not in helped.stdout  # the launcher's, read by no service
    refused = subprocess.run(
        [sys.executable, "-m", service, "--port", "9"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "unrecognized arguments: --port 9" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # no data folder, no run folder: nothing started
