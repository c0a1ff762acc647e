"""``likeopt ingest`` ends with a clear error, never hangs or says success, when it cannot do what it was asked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from likeopt.ops import ingest
from likeopt.ops.cli import main


def unused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_a_path_that_does_not_exist_is_an_error_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "real.md").write_text("# Real\n\nA document.")
    with pytest.raises(SystemExit) as ended:
        main(["ingest", str(tmp_path / "real.md"), str(tmp_path / "typo.md")])
    assert ended.value.code == 2 and "no such file or folder" in capsys.readouterr().err


def test_an_unreachable_retrieval_svc_ends_the_run_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real.md").write_text("# Real\n\nA document.")
    monkeypatch.setattr(ingest, "CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setenv("LIKEOPT_RETRIEVAL_ADDR", unused_address())
    with pytest.raises(SystemExit) as ended:
        main(["ingest", "--quiet", str(tmp_path / "real.md")])
    assert isinstance(ended.value.code, str) and "did not answer" in ended.value.code
