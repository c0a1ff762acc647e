"""The start deadline and the orphan guard, each in a real child process: a stuck start ends the
launcher with a message naming the child, even when the stuck thread holds the GIL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support import ROOT, alive

STUCK_START = """
import re, subprocess, sys, time
from likeopt.ops.start_deadline import StartWatchdog

helper = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(helper.pid, flush=True)
watchdog = StartWatchdog(helper.terminate, backstop_s=1.0)
with watchdog.deadline("retrieval_svc", 1.0):
    watchdog.step("spawning")
    if sys.argv[1] == "gil":
        re.match(r"(a+)+$", "a" * 64 + "b")  # backtracks for ages without releasing the GIL
    else:
        time.sleep(60)
print("not reached", flush=True)
"""


def run_stuck(kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", STUCK_START, kind], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_start_stuck_past_its_deadline_stops_the_children_and_exits_1() -> None:
    result = run_stuck("sleep")
    assert result.returncode == 1
    assert "retrieval_svc did not start within 1 s (stuck while spawning); stopping the mesh" in result.stderr
    assert "not reached" not in result.stdout
    helper = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(helper)


def test_a_start_stuck_holding_the_gil_is_still_ended_by_the_backstop() -> None:
    result = run_stuck("gil")
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(result.stdout.split()[0]), signal.SIGKILL)  # the stuck watchdog never stopped it
    assert result.returncode == 1
    assert "Timeout" in result.stderr and "not reached" not in result.stdout


def test_orphan_guard_runs_the_program_with_its_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "likeopt.ops.orphan_guard", str(os.getpid()), "sh", "-c", "echo $0 $1", "a", "b"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and result.stdout.strip() == "a b"


def test_orphan_guard_refuses_to_run_for_a_parent_that_is_not_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "likeopt.ops.orphan_guard", "1", "sh", "-c", "echo ran"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "ran" not in result.stdout


def test_the_guarded_child_gets_sigterm_when_its_parent_dies(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    parent = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen(
            [sys.executable, "-m", "likeopt.ops.orphan_guard", str(os.getpid()),
             "sh", "-c", "echo $$ > {marker}; exec sleep 60"],
        )
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", parent], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(marker.read_text())
        assert alive(child)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the child outlived its parent"
    finally:
        process.kill()
