"""Retrieval figures by trec_eval's rules (through ir-measures) on tiny hand-made judgements, and the BEIR reader.

Each case is one where a hand-written nDCG used to part from trec_eval: ties in the run's
scores, graded judgements, a negative grade, queries without a ranking or without a
relevant judgement.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from likeopt.ops import cli
from likeopt.ops.evaluate import (
    Dataset,
    best_chunk_per_document,
    document_scores,
    ndcg_at,
    read_qrels,
    read_queries,
    score_run,
    store_shape,
    trec_ranking,
)
from likeopt.runtime.config import Config


def test_binary_judgements() -> None:
    # relevant: a, c. Ranking b a c: DCG = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3).
    figures = score_run({"q": ["b", "a", "c"]}, {"q": {"a": 1, "c": 1}})
    assert figures["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / 2) / (1 + 1 / math.log2(3)))
    assert figures["recall@100"] == 1.0
    assert figures["mrr@10"] == 0.5


def test_graded_judgements_use_linear_gains_and_the_ideal_order() -> None:
    # a=1, b=2. Ranking a b: DCG = 1 + 2/log2(3); ideal b a: 2 + 1/log2(3).
    qrels = {"q": {"a": 1, "b": 2}}
    assert score_run({"q": ["a", "b"]}, qrels)["ndcg@10"] == pytest.approx(
        (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    )
    assert score_run({"q": ["b", "a"]}, qrels)["ndcg@10"] == pytest.approx(1.0)


def test_a_negative_grade_is_not_relevant_and_costs_nothing() -> None:
    # a=-2 at rank 1 adds no gain (a hand-written sum would subtract 2): DCG = 1/log2(3) + 2/log2(4).
    figures = score_run({"q": ["a", "b", "c"]}, {"q": {"a": -2, "b": 1, "c": 2}})
    assert figures["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1) / (2 + 1 / math.log2(3)))
    assert figures["mrr@10"] == 0.5
    assert figures["recall@100"] == 1.0
    assert score_run({"q": ["a", "b"]}, {"q": {"a": -1, "b": 1}}) == score_run(
        {"q": ["a", "b"]}, {"q": {"a": 0, "b": 1}}
    )


def test_tied_scores_rank_by_document_id_descending_for_every_measure() -> None:
    assert trec_ranking({"a": 1.0, "c": 0.5, "b": 1.0}) == ["b", "a", "c"]
    # a is relevant but ties with b, which trec_eval ranks first: rank 2 for nDCG and MRR alike.
    figures = score_run({"q": {"a": 1.0, "b": 1.0}}, {"q": {"a": 1}})
    assert figures == pytest.approx({"ndcg@10": 1 / math.log2(3), "recall@100": 1.0, "mrr@10": 0.5})
    assert score_run({"q": {"b": 1.0, "a": 1.0}}, {"q": {"a": 1}}) == figures  # the order given does not matter
    assert score_run({"q": ["a", "b"]}, {"q": {"a": 1}})["mrr@10"] == 1.0  # a ranking has no ties: kept as given


def test_cutoffs_and_judged_non_relevant_documents() -> None:
    qrels = {"q": {"a": 1, "z": 0}}
    assert score_run({"q": [f"n{i}" for i in range(10)] + ["a"]}, qrels)["ndcg@10"] == 0.0  # rank 11: past @10
    assert score_run({"q": [f"n{i}" for i in range(10)] + ["a"]}, qrels)["mrr@10"] == 0.0
    assert score_run({"q": [f"n{i}" for i in range(10)] + ["a"]}, qrels)["recall@100"] == 1.0
    assert score_run({"q": ["z", "a"]}, qrels)["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_recall_counts_relevant_found_within_100() -> None:
    qrels = {"q": {"a": 1, "b": 2, "c": 1, "z": 0}}
    assert score_run({"q": ["a", "x", "b"]}, qrels)["recall@100"] == pytest.approx(2 / 3)
    assert score_run({"q": [f"n{i}" for i in range(100)] + ["a"]}, qrels)["recall@100"] == 0.0


def test_averages_over_queries_with_a_relevant_judgement_and_missing_runs_score_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}, "q4": {"d": -1}}
    assert score_run({"q1": ["a"]}, qrels) == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}
    assert score_run({"q1": ["a"], "q2": {}}, qrels) == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}
    with pytest.raises(ValueError, match="no query has a relevant judgement"):
        score_run({"q3": ["c"]}, {"q3": {"c": 0}})


def test_ndcg_of_one_query_follows_the_same_rules() -> None:
    assert ndcg_at(["b", "a"], {"a": 1, "b": 2}, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "a"], {"a": 1}, 1) == 0.0
    assert ndcg_at({"a": 1.0, "b": 1.0}, {"a": 1}, 10) == pytest.approx(1 / math.log2(3))


def test_a_document_scores_as_its_best_chunk() -> None:
    hits = [SimpleNamespace(doc_id=d, score=v) for d, v in (("d2", 0.9), ("d1", 0.8), ("d2", 0.7), ("d3", 0.8))]
    assert document_scores(hits) == {"d2": 0.9, "d1": 0.8, "d3": 0.8}
    assert trec_ranking(document_scores(hits)) == ["d2", "d3", "d1"]


def test_a_document_with_the_query_s_own_id_is_not_counted_as_in_beir() -> None:
    """ArguAna and Quora keep each query in the corpus under its id; BEIR leaves that match out."""
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert score_run({"q1": ["q1", "d1"], "q2": {"q2": 0.9, "d2": 0.5}}, qrels)["ndcg@10"] == 1.0
    assert score_run({"q1": ["x", "d1"], "q2": {"x": 0.9, "d2": 0.5}}, qrels)["ndcg@10"] < 1.0


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


def test_qrels_without_a_header_or_with_a_byte_order_mark_lose_no_judgement(tmp_path: Path) -> None:
    bare, marked, wrong = tmp_path / "bare.tsv", tmp_path / "marked.tsv", tmp_path / "wrong.tsv"
    bare.write_text("1\td1\t1\n1\td2\t0\n2\td3\t2.0\n")
    marked.write_text("\ufeffquery-id\tcorpus-id\tscore\n1\td1\t1\n", encoding="utf-8")
    wrong.write_text("query-id\tcorpus-id\tscore\n1\td1\thigh\n")
    assert read_qrels(bare) == {"1": {"d1": 1, "d2": 0}, "2": {"d3": 2}}
    assert read_qrels(marked) == {"1": {"d1": 1}}
    with pytest.raises(ValueError, match=r"wrong\.tsv:2: the score 'high' is not a number"):
        read_qrels(wrong)


def test_a_malformed_query_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "fine"}\n\n{"_id": "2"}\n')
    with pytest.raises(ValueError, match=r"queries\.jsonl:3: not a query with an _id and a text"):
        read_queries(tmp_path / "queries.jsonl", {"1": {}, "2": {}})


def test_eval_refuses_a_malformed_collection_in_one_line_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\tyes\n")
    for argv in (["eval", "--data", str(tmp_path)], ["eval", "--compare", str(tmp_path)]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        assert stopped.value.code == 2
        assert "test.tsv:2: the score 'yes' is not a number" in capsys.readouterr().err


def one_document_collection(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    (root / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n")
    return root


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--alpha", "2"], "alpha must be within [0, 1], got 2.0"),
        (["--rrf-k", "-5"], "rrf_k must be a finite number, not negative, got -5.0"),
        (["--config", "hybrid alpha=5", "--compare"], "configuration 'hybrid alpha=5': alpha must be within"),
    ],
)
def test_eval_refuses_fusion_parameters_the_service_would_refuse_in_one_line_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], complaint: str
) -> None:
    collection = str(one_document_collection(tmp_path))
    argv = ["eval", *options, collection] if options[-1] == "--compare" else ["eval", *options, "--data", collection]
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert complaint in error and "Traceback" not in error
    assert not (tmp_path / "var").exists()


def test_a_service_setting_it_refuses_ends_the_evaluation_with_the_service_s_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    collection = str(one_document_collection(tmp_path / "beir"))
    with pytest.raises(SystemExit) as stopped:
        cli.main(["eval", "--config", "hybrid LIKEOPT_FUSION_ALPHA=abc", "--compare", collection])
    assert stopped.value.code == "likeopt eval: retrieval_svc exited with code 2 before serving:" + (
        " LIKEOPT_FUSION_ALPHA=abc: must be a number"
    )


def test_settings_that_shape_the_store_get_a_store_of_their_own(tmp_path: Path) -> None:
    """Else an evaluation under other chunking would silently search the store chunked the default way."""
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n")
    dataset, base = Dataset.load(tmp_path), Path("base")
    default = dataset.data_dir(base, store_shape(Config.from_env({})))
    assert default != dataset.data_dir(base)  # a store chunked before layout was read (version 1) is not reused
    shaped = {
        dataset.data_dir(base, store_shape(Config.from_env({name: value})))
        for name, value in [("LIKEOPT_CHUNK_TOKENS", "128"), ("LIKEOPT_CHUNK_OVERLAP", "0")]
    }
    assert len(shaped) == 2 and default not in shaped


def test_dataset_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"queries\.jsonl"):
        (tmp_path / "corpus.jsonl").write_text("")
        Dataset.load(tmp_path)


def test_a_missing_split_names_the_splits_there_are(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n")
    with pytest.raises(FileNotFoundError, match=r"no judgements for split 'dev' \(qrels/ has: test\)"):
        Dataset.load(tmp_path, "dev")
