"""Retrieval metrics against hand-computed values, and the BEIR folder reader."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from likeopt.evaluate import (
    Dataset,
    best_chunk_per_document,
    mrr_at,
    ndcg_at,
    percentile,
    recall_at,
    score_run,
)


def test_ndcg_binary_judgements() -> None:
    # relevant: a, c. Ranking b a c: DCG = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / 2) / (1 + 1 / math.log2(3))
    assert ndcg_at(["b", "a", "c"], {"a": 1, "c": 1}, 10) == pytest.approx(expected)


def test_ndcg_graded_uses_linear_gain_and_ideal_order() -> None:
    # a=1, b=2. Ranking a b: DCG = 1 + 2/log2(3); ideal b a: 2 + 1/log2(3).
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at(["a", "b"], {"a": 1, "b": 2}, 10) == pytest.approx(expected)
    assert ndcg_at(["b", "a"], {"a": 1, "b": 2}, 10) == pytest.approx(1.0)


def test_ndcg_cuts_at_k_and_ignores_zero_judgements() -> None:
    assert ndcg_at(["x", "a"], {"a": 1}, 1) == 0.0
    assert ndcg_at(["z", "a"], {"a": 1, "z": 0}, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(["a"], {"z": 0}, 10) == 0.0


def test_recall_counts_relevant_found_within_k() -> None:
    judged = {"a": 1, "b": 2, "c": 1, "z": 0}
    assert recall_at(["a", "x", "b", "c"], judged, 3) == pytest.approx(2 / 3)
    assert recall_at(["z"], judged, 100) == 0.0


def test_mrr_is_the_reciprocal_of_the_first_relevant_rank_within_k() -> None:
    assert mrr_at(["x", "y", "a"], {"a": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "y", "a"], {"a": 1}, 2) == 0.0
    assert mrr_at(["x", "z"], {"z": 0}, 10) == 0.0


def test_score_run_averages_over_judged_queries_and_counts_missing_runs_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    figures = score_run({"q1": ["a"]}, qrels)
    assert figures == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([7.0], 99) == 7.0


def test_best_chunk_per_document_keeps_first_occurrence_order() -> None:
    assert best_chunk_per_document(["d2", "d1", "d2", "d3", "d1"]) == ["d2", "d1", "d3"]


def test_dataset_reads_beir_layout_with_graded_qrels(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "first"}\n{"_id": "2", "text": "unjudged"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n")
    dataset = Dataset.load(tmp_path)
    assert dataset.queries == {"1": "first"}
    assert dataset.qrels == {"1": {"d1": 2}}
    assert dataset.corpus_size() == 1
    assert dataset.data_dir(Path("base")).parent == Path("base")


def test_dataset_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"queries\.jsonl"):
        (tmp_path / "corpus.jsonl").write_text("")
        Dataset.load(tmp_path)
