"""Loads a process runs beside its work (a model's import), and how such a process exits while one still runs.

A load in native code cannot be interrupted. As a daemon thread, one still running at the interpreter's exit is
killed inside that code, and torch then aborts the process (``terminate called without an active exception``,
exit 134; benchmarks/README.md, session 32). A thread the interpreter waits for instead delays every stop by the
rest of the load, up to its whole length. So a load runs in a daemon thread; an ordinary exit waits for it (an
atexit hook, run before the interpreter kills daemon threads); and a service whose drain is complete leaves with
``exit_now``, which runs the process's exit hooks except that wait and ends the process before the interpreter's
finalization, so nothing of the load is torn down under it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger(__name__)

_loads: list[threading.Thread] = []


def start_load(load: Callable[[], object], name: str) -> None:
    """Run load in a thread of its own; an error in it is logged (its user loads again when it needs the result)."""

    def run() -> None:
        try:
            load()
        except Exception:
            log.exception("background load failed", extra={"fields": {"load": name}})

    if not _loads:
        atexit.register(_wait_for_loads)
    thread = threading.Thread(target=run, name=name, daemon=True)
    _loads.append(thread)
    thread.start()


def loads_running() -> bool:
    """Whether a load started here has not finished."""
    return any(thread.is_alive() for thread in _loads)


def _wait_for_loads() -> None:
    for thread in _loads:
        thread.join()


def exit_now(code: int) -> NoReturn:
    """Exit with code: at once when a load still runs (after the exit hooks but the wait for it), else as usual."""
    if not loads_running():
        sys.exit(code)
    atexit.unregister(_wait_for_loads)
    atexit._run_exitfuncs()  # the process's own hooks (spans flushed, logs closed): all os._exit would skip
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
