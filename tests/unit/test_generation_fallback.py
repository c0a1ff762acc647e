"""Without a usable model, `local` falls back to extractive, and `likeopt up` tells the user."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from generation_svc.__main__ import make_backend
from generation_svc.extractive import ExtractiveBackend
from likeopt.ops.child import Child
from likeopt.runtime.config import Config


def test_without_a_model_local_falls_back_to_extractive_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    # The settings refuse a missing file; one removed after the check is still answered, by the fallback.
    config = Config.from_env({"LIKEOPT_GENERATION_BACKEND": "local"}).model_copy(
        update={"local_model_path": "/nonexistent.gguf"}
    )
    with caplog.at_level(logging.WARNING):
        chosen = make_backend(config)
    assert isinstance(chosen, ExtractiveBackend)
    notices = [getattr(r, "fields", {}).get("notice", "") for r in caplog.records]
    assert any("extractive" in n and "/nonexistent.gguf" in n for n in notices)


def test_the_launcher_repeats_notices_from_this_run_of_a_childs_log(tmp_path: Path) -> None:
    log_path = tmp_path / "generation_svc.log"
    log_path.write_text(json.dumps({"msg": "old", "notice": "from an earlier run"}) + "\n")
    notice = {"msg": "local backend unavailable", "notice": "using the extractive backend"}
    with log_path.open("ab") as log_file:
        child = Child(None, None, log_path, log_file, {}, log_start=log_file.tell())  # type: ignore[arg-type]
        log_file.write(b"not json\n" + json.dumps(notice).encode() + b"\n")
        log_file.write(json.dumps({"msg": "plain line"}).encode() + b"\n")
        assert child.notices() == ["using the extractive backend"]


def test_the_launchers_failure_tail_shows_only_this_runs_lines(tmp_path: Path) -> None:
    log_path = tmp_path / "envoy.log"
    log_path.write_text("error from an earlier run\n")
    with log_path.open("ab") as log_file:
        child = Child(None, None, log_path, log_file, {}, log_start=log_file.tell())  # type: ignore[arg-type]
        log_file.write(b"this run's error\n")
        assert child.tail() == "    this run's error"
