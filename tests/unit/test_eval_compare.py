"""likeopt eval --compare: configuration strings, one service per set of settings, one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from likeopt.ops import eval_compare
from likeopt.ops.eval_compare import compare, format_table, parse_configuration
from likeopt.ops.evaluate import EvalSettings
from likeopt.runtime.config import Config


def test_a_configuration_names_mode_search_parameters_and_service_settings() -> None:
    parsed = parse_configuration("hybrid fusion=rrf rrf_k=30 LIKEOPT_QUERY_ENCODER=onnx-int8 alpha=0.4")
    assert parsed.search == EvalSettings("hybrid", "rrf", 30.0, 0.4)
    assert parsed.overrides == (("LIKEOPT_QUERY_ENCODER", "onnx-int8"),)
    assert parse_configuration("dense").search == EvalSettings("dense")


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "must start with a mode"),
        ("sparse", "must start with a mode"),
        ("hybrid fusion", "is not NAME=VALUE"),
        ("hybrid fusion=max", "unknown parameter"),
        ("hybrid alpha=half", "must be a number"),
        ("bm25 LIKEOPT_CHUNK_TOKENS=128", "changes what is stored"),
    ],
)
def test_bad_configurations_are_refused_with_the_reason(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_configuration(spec)


def test_configurations_sharing_settings_share_a_service_per_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, dict[str, str], list[str]]] = []

    def fake_run_evals(
        data: Path, runs: list[EvalSettings], config: Config, overrides: dict[str, str], split: str
    ) -> list:
        assert split == "dev"
        started.append((data.name, overrides, [r.mode for r in runs]))
        weight = float(overrides.get("LIKEOPT_DOCUMENT_WEIGHT", "0.3"))
        return [
            {"ndcg@10": weight, "recall@100": 0.5, "mrr@10": 0.25, "latency_ms": {"p95": 12.34}, "mode": r.mode}
            for r in runs
        ]

    monkeypatch.setattr(eval_compare, "run_evals", fake_run_evals)
    specs = ["hybrid", "dense LIKEOPT_DOCUMENT_WEIGHT=0", "bm25", "hybrid LIKEOPT_DOCUMENT_WEIGHT=0"]
    rows = compare([Path("one"), Path("two")], [parse_configuration(s) for s in specs], Config.from_env({}), "dev")
    assert started == [
        ("one", {}, ["hybrid", "bm25"]),
        ("one", {"LIKEOPT_DOCUMENT_WEIGHT": "0"}, ["dense", "hybrid"]),
        ("two", {}, ["hybrid", "bm25"]),
        ("two", {"LIKEOPT_DOCUMENT_WEIGHT": "0"}, ["dense", "hybrid"]),
    ]
    assert [(r["collection"], r["configuration"], r["ndcg@10"]) for r in rows[:4]] == [
        ("one", "hybrid", 0.3),
        ("one", "dense LIKEOPT_DOCUMENT_WEIGHT=0", 0.0),
        ("one", "bm25", 0.3),
        ("one", "hybrid LIKEOPT_DOCUMENT_WEIGHT=0", 0.0),
    ]
    table = format_table(rows).splitlines()
    assert table[0] == "| collection | configuration | nDCG@10 | Recall@100 | MRR@10 | p95 ms |"
    assert table[3] == "| one | `dense LIKEOPT_DOCUMENT_WEIGHT=0` | 0.0000 | 0.5000 | 0.2500 | 12.3 |"
    assert len(table) == 2 + 8
