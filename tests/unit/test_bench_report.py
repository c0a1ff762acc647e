"""The bench's summary, text and self-contained HTML report."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from likeopt.caching.hit_rate import HitRate
from likeopt.ops.bench.load import LoadSettings, Sample
from likeopt.ops.bench.report import (
    build_result,
    floor_result,
    format_text,
    html_report,
    outside_retrieval,
    run_failure,
    write_outputs,
)
from likeopt.ops.bench.scenarios import build
from likeopt.ops.cli import main
from likeopt.ops.ports import free_port

SAMPLES = [Sample(0.1 * n, 0.010 + 0.001 * n, ttft_s=0.005, cached=n % 2 == 0) for n in range(98)] + [
    Sample(9.8, 2.0, error="timeout"),
    Sample(9.9, 0.001, error="http_503"),
]


EIGHTY_PERCENT = HitRate(80, 100)


def result_for(name: str, hits: HitRate | None = EIGHTY_PERCENT, samples: list[Sample] = SAMPLES) -> dict:
    return build_result(
        scenario=build(name, ["a question"] * 20, random.Random(1), 0x5EED),
        settings=LoadSettings(duration_s=10, concurrency=4),
        url="http://127.0.0.1:8080",
        samples=samples,
        elapsed_s=10.0,
        hits=hits,
        metrics_urls={"cache_svc": ["http://127.0.0.1:9103/metrics"]},
        peak_rss_mb={"envoy": 60.04, "gateway": 70.0},
        cpu_s={"envoy": 1.0, "load_generator": 2.0},
    )


def test_result_has_the_contract_keys_and_counts_errors_by_kind() -> None:
    result = result_for("search-cached")
    assert {"rps", "latency_ms", "errors", "cache_hit_rate", "rss_mb"} <= set(result)
    assert set(result["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert result["rps"] == 9.8 and (result["requests"], result["succeeded"]) == (100, 98)
    assert result["latency_ms"]["max"] == 107.0  # the 2 s timeout failed: not a latency
    assert result["errors"] == {"timeout": 1, "http_503": 1} and result["error_share"] == 0.02
    assert result["cache_hit_rate"] == 0.8
    assert result["rss_mb"] == {"envoy": 60.0, "gateway": 70.0, "total": 130.0}
    assert result["cpu_ms_per_request"] == {"envoy": 10.204, "load_generator": 20.408}
    assert result["cpu_ms_outside_retrieval"] is None  # no retrieval_svc among the readings: nothing to set apart
    assert "ttft_ms" not in result
    json.dumps(result)


def test_a_run_whose_requests_all_failed_reports_no_throughput_or_latency_and_fails() -> None:
    refused = [Sample(0.0001 * n, 0.0002, error="connection") for n in range(1000)]
    result = result_for("search-uncached", hits=None, samples=refused)
    assert (result["requests"], result["succeeded"], result["rps"]) == (1000, 0, 0.0)
    assert result["latency_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}
    assert result["cpu_ms_per_request"] == {"envoy": None, "load_generator": None}
    assert result["error_share"] == 1.0 and "1000 sent, 0 succeeded (0.0 req/s)" in format_text(result)
    assert run_failure(result) == "all 1000 requests to http://127.0.0.1:8080 failed (connection 1000); is the mesh up?"


def test_a_run_fails_past_one_percent_of_failed_requests() -> None:
    one_in_a_hundred = [*SAMPLES[:98], SAMPLES[0], SAMPLES[-1]]
    assert run_failure(result_for("search-cached", samples=one_in_a_hundred)) is None
    assert run_failure(result_for("search-cached")) == (
        "2 of 100 requests failed (2.0%: timeout 1  http_503 1), more than 1%"
    )
    assert run_failure(result_for("search-cached", samples=[])) == "no request finished within the run"


def test_bench_against_nothing_listening_exits_1_saying_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "a question"}) + "\n")
    argv = ["bench", "--scenario", "search-uncached", "--duration", "0.3", "--data", str(tmp_path), "--json"]
    with pytest.raises(SystemExit) as ended:
        main([*argv, "--url", f"http://127.0.0.1:{free_port()}"])
    assert ended.value.code == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["rps"] == 0.0 and "failed (connection" in err and "is the mesh up?" in err


def test_cpu_outside_retrieval_sums_every_other_process() -> None:
    cpu_ms = {"retrieval_svc": 17.5, "cache_svc": 2.0, "gateway": 1.5, "load_generator": 0.5}
    assert outside_retrieval(cpu_ms) == 4.0
    assert outside_retrieval({**cpu_ms, "envoy": None}) is None


def test_floor_cpu_and_busy_cores_explain_the_throughput_ratio() -> None:
    mesh = result_for("search-uncached", samples=SAMPLES[:50] * 2)  # 100 in 10 s; envoy 1 s, load generator 2 s
    floor = floor_result(SAMPLES[:50], elapsed_s=2.5, cpu_s=1.0, mesh=mesh)  # 20 req/s, 20 CPU-ms each
    assert floor["cpu_ms_per_request"] == 20.0 and floor["cores_busy"] == 0.4
    ratios = floor["mesh_over_floor"]
    assert ratios["throughput"] == 0.5
    assert ratios["cpu_per_request"] == 1.5  # (10 + 20) / 20
    assert ratios["cores_busy"] == 0.75  # (0.1 + 0.2) / 0.4: throughput = cores_busy / cpu_per_request
    assert "CPU ms/req 20.0, cores busy 0.4" in format_text({**mesh, "floor": floor})
    unread = {**mesh, "cpu_ms_per_request": {"envoy": None}, "cores_busy": {"envoy": None}}
    assert floor_result(SAMPLES[:50], 2.5, 1.0, unread)["mesh_over_floor"]["cpu_per_request"] is None


def test_chat_results_have_time_to_first_token_and_cached_versus_uncached_latency() -> None:
    result = result_for("chat", hits=None)
    assert result["ttft_ms"] == {"p50": 5.0, "p95": 5.0, "max": 5.0}
    assert result["cache_hit_rate"] is None
    cache = result["cache"]
    assert cache["namespace"] == "answer" and cache["replies_marked_cached"] == 0.5
    assert cache["uncached_over_cached_p50"] > 1.0


def test_text_names_every_figure() -> None:
    text = format_text(result_for("chat"))
    for needle in ("req/s", "p99", "timeout 1", "first token", "hit rate 80.0%", "envoy 60.0", "total 130.0"):
        assert needle in text
    assert "cached vs uncached replies" in text and "cores busy  envoy 0.1  load_generator 0.2" in text
    all_uncached = [Sample(0.0, 0.05, cached=False)] * 10
    assert "cached vs uncached" not in format_text(result_for("search-uncached", samples=all_uncached))


def test_html_report_is_self_contained_with_two_charts(tmp_path: Path) -> None:
    result = result_for("mixed")
    page = html_report(result, SAMPLES)
    assert page.count("<svg") == 2
    assert page.count("<circle") == len(SAMPLES) and page.count("<rect") == 40
    assert not re.search(r"<script|<link|src=|href=|@import|url\(", page)
    json_path, html_path = write_outputs(tmp_path / "out", result, SAMPLES)
    assert json.loads(json_path.read_text()) == result
    assert html_path.read_text() == page


def test_html_report_of_an_empty_run() -> None:
    page = html_report(result_for("mixed"), [])
    assert "<svg" not in page and "No requests." in page
