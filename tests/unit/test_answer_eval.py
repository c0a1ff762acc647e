"""likeopt eval --answers: its questions files and how answers become figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likeopt.ops.answer_eval import (
    OFF_TOPIC,
    Asked,
    Question,
    all_failed,
    format_answer_report,
    input_problem,
    load_collection,
    read_questions,
    summarise,
)
from likeopt.ops.cli import main
from likeopt.ops.ports import free_port


def test_the_shipped_question_files_hold_what_the_benchmarks_need() -> None:
    off_topic = read_questions(OFF_TOPIC)
    assert len(off_topic) >= 100 and all(not q.relevant for q in off_topic)
    demo = load_collection(Path("docs"), None, 0, 16)
    assert not demo.beir and len(demo.questions) >= 20
    assert Question("Which port does Envoy listen on?", frozenset({"docs/architecture.md"})) in demo.questions


def test_a_seeded_sample_is_the_same_every_time(tmp_path: Path) -> None:
    questions = tmp_path / "q.txt"
    questions.write_text("# comment\n" + "".join(f"question {n}?\td{n}.md\n" for n in range(30)))
    first = load_collection(tmp_path, questions, 5, 16).questions
    assert first == load_collection(tmp_path, questions, 5, 16).questions and len(first) == 5


def asked(relevant: set[str], cited: list[str], support: float = 1.0, no_answer: bool = False) -> Asked:
    return Asked(Question("q", frozenset(relevant)), "a", cited, support, no_answer, "", 100.0, 900.0)


def test_figures_count_citations_support_and_refusals() -> None:
    answerable = [
        asked({"a"}, ["a", "b"], support=1.0),
        asked({"c"}, ["c"], support=0.5),
        asked({"d"}, [], no_answer=True, support=0.0),
    ]
    off_topic = [asked(set(), [], no_answer=True), asked(set(), ["x"], support=0.0)]
    figures = summarise(answerable, off_topic)
    assert figures["citation_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["answer_support"] == pytest.approx(0.75)
    assert figures["wrongly_refused"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["abstention"] == 0.5 and figures["off_topic_citations"] == 1
    assert figures["support_distribution"] == {"0": 0, "0.2": 0, "0.4": 0, "0.6": 1, "0.8": 0, "1.0": 1}
    assert figures["first_token_ms"] == {"p50": 100.0, "p95": 100.0}


def failed(relevant: set[str]) -> Asked:
    return Asked(Question("q", frozenset(relevant)), error="UNAVAILABLE: connections to all backends failing")


def test_a_failed_question_counts_as_an_error_only_and_shares_of_nothing_are_n_a() -> None:
    figures = summarise([asked({"a"}, ["a"]), failed({"b"})], [failed(set())])
    assert figures["errors"] == 2 and figures["wrongly_refused"] == 0.0 and figures["abstention"] is None
    assert all_failed(figures) is None
    nothing = summarise([failed({"a"}), failed({"b"})], [failed(set())])
    assert nothing["wrongly_refused"] is None and nothing["abstention"] is None
    assert nothing["first_token_ms"] == {"p50": None, "p95": None}
    report = format_answer_report({**nothing, "backend": "mesh at x", "collection": "c"})
    assert "abstention           n/a of off-topic; wrongly refused n/a" in report
    assert "first token ms       p50 n/a  p95 n/a" in report
    assert (
        all_failed(nothing) == "all 3 questions failed, the first with UNAVAILABLE: connections to all backends failing"
    )


def test_answers_against_nothing_listening_exit_1_saying_so(capsys: pytest.CaptureFixture) -> None:
    argv = ["eval", "--answers", "--data", "docs", "--limit", "2", "--offtopic-limit", "1", "--json"]
    with pytest.raises(SystemExit) as ended:
        main([*argv, "--addr", f"127.0.0.1:{free_port()}"])
    assert ended.value.code == 1
    out, err = capsys.readouterr()
    figures = json.loads(out)
    assert (figures["errors"], figures["abstention"], figures["wrongly_refused"]) == (3, None, None)
    assert "likeopt eval --answers: all 3 questions failed, the first with UNAVAILABLE" in err


def test_a_missing_input_is_named_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    documents = tmp_path / "docs"
    documents.mkdir()
    assert input_problem(tmp_path / "nowhere", None, None) == f"--data {tmp_path / 'nowhere'}: no such folder"
    assert input_problem(documents, "missing.txt", None) == "--questions missing.txt: no such file"
    assert input_problem(documents, None, "gone.txt") == "--offtopic gone.txt: no such file"
    assert input_problem(documents, None, None) is None  # a checkout has the demo questions
    monkeypatch.setattr("likeopt.ops.answer_eval.DEMO_QUESTIONS", tmp_path / "not-installed.txt")
    assert "give --questions FILE" in (input_problem(documents, None, None) or "")
    (documents / "corpus.jsonl").write_text("")
    assert input_problem(documents, None, None) is None  # a BEIR folder brings its own questions
    assert input_problem(None, None, None) is None  # --from-feedback reads no files
