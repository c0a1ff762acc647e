"""likeopt eval --answers: its questions files and how answers become figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from likeopt.ops.answer_eval import (
    OFF_TOPIC,
    Asked,
    Question,
    input_problem,
    load_collection,
    read_questions,
    summarise,
)


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
