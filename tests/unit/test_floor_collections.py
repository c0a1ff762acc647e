"""The floor's check on other collections: what it says about refused answerable questions, and that a folder
never ingested is said plainly rather than judged against an empty store."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.floor_collections import collection, refused_answerable
from likeopt.runtime.config import Config
from likeopt.v1 import retrieval_pb2
from retrieval_svc.backend import SearchParams


def hit(doc_id: str, dense: float) -> retrieval_pb2.SearchHit:
    return retrieval_pb2.SearchHit(doc_id=doc_id, dense_score=dense, dense_rank=1)


def test_refused_answerable_counts_only_refused_questions_and_tells_floor_from_retrieval() -> None:
    found = [[hit("a", 0.2), hit("b", 0.1)], [hit("c", 0.15)], [hit("d", 0.9)]]
    refused = [True, True, False]
    judged = [{"b"}, {"z"}, {"d"}]
    figures = refused_answerable(found, refused, judged)
    assert figures["refused_best_dense"] == [0.15, 0.2]
    assert figures["refused_best_dense_median"] == pytest.approx(0.175)
    assert figures["refused_with_judged_in_top5"] == 1  # the first had its document, the second did not


def test_refused_answerable_with_nothing_refused_has_no_median() -> None:
    figures = refused_answerable([[hit("a", 0.9)]], [False], [{"a"}])
    assert figures == {"refused_best_dense": [], "refused_best_dense_median": None, "refused_with_judged_in_top5": 0}


def test_a_folder_without_its_store_names_the_command_that_ingests_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "a document"}\n', encoding="utf-8")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "a question"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"likeopt eval --data .*tiny --mode bm25"):
        collection(folder, Config.from_env(), SearchParams(5, "hybrid", "convex", 60.0, 0.5))
    assert not (tmp_path / "var").exists()  # nothing written on the way
