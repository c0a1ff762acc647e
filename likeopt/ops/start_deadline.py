"""A deadline around each child's start that holds even when the launcher itself is stuck.

The launcher's own wait loop already gives up on a child that never turns healthy; this watchdog covers
what that loop cannot see: a start that blocks inside a call (spawning, a probe) and never returns. It runs
in its own thread, and as a last resort ``faulthandler`` ends the process from C, which works even while
the main thread holds the GIL.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

BACKSTOP_S = 15.0
"""How long after the deadline the C-level backstop ends the process if the watchdog thread could not."""


class StartWatchdog:
    """Arms one deadline at a time; on expiry says which child and which step hung, stops the children
    (``stop_children``) and exits the process with status 1."""

    def __init__(self, stop_children: Callable[[], None], backstop_s: float = BACKSTOP_S) -> None:
        self._stop_children = stop_children
        self._backstop_s = backstop_s
        self._changed = threading.Condition()
        self._armed: tuple[str, float, float] | None = None
        """(child name, seconds allowed, monotonic deadline) of the start in progress."""
        self._step = ""
        threading.Thread(target=self._watch, name="start-deadline", daemon=True).start()

    @contextmanager
    def deadline(self, name: str, seconds: float) -> Iterator[None]:
        """Within the block, name's start must finish in seconds."""
        with self._changed:
            self._armed = (name, seconds, time.monotonic() + seconds)
            self._step = "starting"
            self._changed.notify()
        faulthandler.dump_traceback_later(seconds + self._backstop_s, exit=True)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            with self._changed:
                self._armed = None
                self._changed.notify()

    def step(self, what: str) -> None:
        """Name what the start is doing now (spawning, waiting for health), for the message on expiry."""
        self._step = what

    def _watch(self) -> None:
        with self._changed:
            while True:
                if self._armed is None:
                    self._changed.wait()
                    continue
                name, seconds, deadline = self._armed
                if time.monotonic() < deadline:
                    self._changed.wait(deadline - time.monotonic())
                    continue
                break
        print(
            f"likeopt: {name} did not start within {seconds:.0f} s (stuck while {self._step}); stopping the mesh",
            file=sys.stderr,
            flush=True,
        )
        self._stop_children()
        os._exit(1)
