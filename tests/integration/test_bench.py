"""``likeopt bench`` against the session's mesh: a short run of each scenario, figures of the right shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from likeopt.ops.bench.scenarios import SCENARIOS
from tests.support import ROOT, MeshProcess

QUESTIONS = [
    "Which port does Envoy listen on?",
    "How is the cache keyed?",
    "What does cache_svc do?",
    "Redis time to live and promotion into L1",
    "How do I ingest a folder of documents?",
]
SERVICES = {"envoy", "gateway", "retrieval_svc", "generation_svc", "cache_svc"}


@pytest.fixture(scope="module")
def queries_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench-queries")
    lines = [json.dumps({"_id": str(n), "text": text}) for n, text in enumerate(QUESTIONS)]
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def bench(mesh: MeshProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "likeopt.ops.cli", "bench", *args],
        cwd=ROOT,
        env=mesh.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_short_run_reports_every_figure_and_no_error(
    mesh: MeshProcess, queries_dir: Path, tmp_path: Path, scenario: str
) -> None:
    args = ["--scenario", scenario, "--duration", "2", "--concurrency", "2", "--data", str(queries_dir)]
    run = bench(mesh, *args, "--json", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["requests"] > 0 and result["rps"] > 0
    assert result["errors"] == {}, result["errors"]
    assert set(result["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert all(value > 0 for value in result["latency_ms"].values())
    assert ("ttft_ms" in result) == (scenario == "chat")
    if scenario == "chat":
        assert set(result["ttft_ms"]) >= {"p50", "p95"} and result["ttft_ms"]["p50"] > 0
    assert result["cache"]["lookups"] > 0 and 0 <= result["cache_hit_rate"] <= 1
    if scenario == "search-cached":
        assert result["cache_hit_rate"] == 1.0
    if scenario == "search-uncached":
        assert result["cache_hit_rate"] == 0.0
    assert SERVICES <= set(result["rss_mb"]) and result["rss_mb"]["total"] > 0
    assert json.loads((tmp_path / f"{scenario}.json").read_text()) == result
    assert "<svg" in (tmp_path / f"{scenario}.html").read_text()


@pytest.mark.parametrize("scenario", ["search-uncached", "chat"])
def test_the_floor_does_the_same_work_in_process_and_gives_the_ratio(
    mesh: MeshProcess, queries_dir: Path, scenario: str
) -> None:
    args = ["--scenario", scenario, "--duration", "2", "--concurrency", "2", "--data", str(queries_dir)]
    run = bench(mesh, *args, "--json", "--floor")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    floor = result["floor"]
    assert floor["requests"] > 0 and floor["rps"] > 0
    assert all(value > 0 for value in floor["latency_ms"].values())
    ratios = floor["mesh_over_floor"]
    expected = {"throughput", "latency_p50", "latency_p95", "latency_p99", "cpu_per_request", "cores_busy"} | (
        {"ttft_p50", "ttft_p95"} if scenario == "chat" else set()
    )
    assert set(ratios) == expected
    assert ratios["latency_p50"] == pytest.approx(result["latency_ms"]["p50"] / floor["latency_ms"]["p50"], rel=0.01)
    assert ratios["throughput"] == pytest.approx(result["rps"] / floor["rps"], rel=0.02)
    assert floor["cpu_ms_per_request"] > 0 and 0 < floor["cores_busy"]
    assert ratios["cpu_per_request"] > 0 and ratios["cores_busy"] > 0
    outside = sum(ms for name, ms in result["cpu_ms_per_request"].items() if name != "retrieval_svc")
    assert result["cpu_ms_outside_retrieval"] == pytest.approx(outside, abs=0.01)


def test_a_warm_up_runs_before_the_measured_part(mesh: MeshProcess, queries_dir: Path) -> None:
    args = ["--scenario", "mixed", "--duration", "2", "--warmup", "2", "--rate", "20", "--data", str(queries_dir)]
    run = bench(mesh, *args, "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["requests"] <= 45  # 2 s at 20/s, the warm-up's 40 or so not counted
    assert result["cache_hit_rate"] > 0.5  # five questions, all seen during the warm-up
    assert result["rss_growth"]["total"]["start_mb"] > 0


def test_a_remote_target_is_refused(mesh: MeshProcess, queries_dir: Path) -> None:
    run = bench(mesh, "--scenario", "mixed", "--url", "http://192.0.2.1:8080", "--data", str(queries_dir))
    assert run.returncode == 1
    assert "loopback" in run.stderr
