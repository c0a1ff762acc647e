"""likeopt.runtime.background_loads in processes of their own: an ordinary exit waits for a load under way, a
service that has drained leaves without it, and both run the process's exit hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROCESS = """
import atexit, sys, time
from likeopt.runtime.background_loads import exit_now, loads_running, start_load

atexit.register(lambda: print("exit hooks ran", flush=True))


def load():
    time.sleep({load_s})
    {load_ends}


start_load(load, "slow")
{then}
"""


def run_process(
    load_s: float, then: str, load_ends: str = 'print("loaded", flush=True)'
) -> subprocess.CompletedProcess:
    source = PROCESS.format(load_s=load_s, load_ends=load_ends, then=then)
    # A load of a minute: a process that waited for it would outlast the timeout and fail the test.
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_an_ordinary_exit_waits_for_the_load_then_runs_the_exit_hooks() -> None:
    ended = run_process(1.0, "sys.exit(5)")
    assert (ended.returncode, ended.stdout) == (5, "loaded\nexit hooks ran\n"), ended.stderr


def test_a_service_that_has_drained_leaves_without_waiting_for_the_load() -> None:
    ended = run_process(60.0, "assert loads_running()\nexit_now(3)")
    assert (ended.returncode, ended.stdout) == (3, "exit hooks ran\n"), ended.stderr


def test_once_the_load_is_done_exit_now_is_an_ordinary_exit() -> None:
    ended = run_process(0.0, "while loads_running():\n    time.sleep(0.01)\nexit_now(0)")
    assert (ended.returncode, ended.stdout) == (0, "loaded\nexit hooks ran\n"), ended.stderr


def test_a_load_that_fails_is_logged_and_the_process_goes_on() -> None:
    ended = run_process(
        0.0,
        "import logging; logging.basicConfig()\ntime.sleep(0.5)\nprint('still here', flush=True)",
        load_ends="raise OSError('no model here')",
    )
    assert (ended.returncode, ended.stdout) == (0, "still here\nexit hooks ran\n")
    assert "background load failed" in ended.stderr and "OSError: no model here" in ended.stderr
