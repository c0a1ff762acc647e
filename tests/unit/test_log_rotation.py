"""Logs `likeopt up` keeps stay under their size: copied to NAME.1 and emptied in place, the writer unaware."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from likeopt.ops import log_rotation
from likeopt.ops.log_rotation import LogRotation, rotate_if_over

WRITER = "import sys; log = open(sys.argv[1], 'ab', buffering=0)\nfor line in sys.stdin: log.write(line.encode())"


def wait_for_size(path: Path, size: int) -> None:
    deadline = time.monotonic() + 10
    while not path.exists() or path.stat().st_size < size:
        assert time.monotonic() < deadline, f"{path} never reached {size} bytes"
        time.sleep(0.01)


def test_a_log_over_its_limit_moves_to_dot_1_and_its_writer_goes_on_at_the_new_start(tmp_path: Path) -> None:
    """The writer (a process of its own, as the launcher's children are) appends: nothing is lost, no gap left."""
    path = tmp_path / "gateway.log"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, text=True)
    assert writer.stdin is not None
    try:
        writer.stdin.write("x" * 99 + "\n")
        writer.stdin.flush()
        wait_for_size(path, 100)
        assert not rotate_if_over(path, 100)  # at the limit, not over it
        writer.stdin.write("y" * 99 + "\n")
        writer.stdin.flush()
        wait_for_size(path, 200)
        assert rotate_if_over(path, 100)
        writer.stdin.write("after\n")
    finally:
        writer.stdin.close()
        writer.wait(timeout=10)
    assert (tmp_path / "gateway.log.1").read_text() == "x" * 99 + "\n" + "y" * 99 + "\n"
    assert path.read_bytes() == b"after\n"  # at the start: no run of NUL bytes where the old lines were


def test_the_check_runs_every_so_often_over_every_log_and_not_at_all_when_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big, small = tmp_path / "a.log", tmp_path / "b.log"
    big.write_bytes(b"z" * 2048)
    small.write_bytes(b"z" * 10)
    logs = [big, small, tmp_path / "not-yet-written.log"]
    assert LogRotation(lambda: logs, 0).check() == []  # 0: off
    rotation = LogRotation(lambda: logs, 1024)
    assert rotation.check() == []  # checked a moment ago (at start)
    monkeypatch.setattr(log_rotation, "CHECK_EVERY_S", 0.0)
    assert rotation.check() == [big] and big.stat().st_size == 0 and small.stat().st_size == 10
