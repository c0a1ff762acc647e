"""Keep each log `likeopt up` writes under a size: its processes' logs and Envoy's access log grow with traffic
(about 500 bytes per request in the access log) and nothing else trims them.

A file over the limit is copied to NAME.1 (replacing the one before) and emptied in place. Every writer opened it
for appending (the launcher's children and Envoy alike), so its next line lands at the new end and no process has
to reopen anything; a line written between the copy and the emptying is lost, as with logrotate's copytruncate.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

CHECK_EVERY_S = 30.0
"""How often sizes are looked at: a log may pass its limit by what is written in this long."""


def rotate_if_over(path: Path, max_bytes: int) -> bool:
    """Move path's lines to path.1 and empty it when it holds more than max_bytes; whether it did."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    with path.open("rb") as source, path.with_name(path.name + ".1").open("wb") as kept:
        shutil.copyfileobj(source, kept)
    os.truncate(path, 0)
    return True


class LogRotation:
    """Checks the logs at most every CHECK_EVERY_S when asked (from the launcher's supervision loop)."""

    def __init__(self, logs: Callable[[], Iterable[Path]], max_bytes: int) -> None:
        self.logs = logs
        self.max_bytes = max_bytes
        self._checked = time.monotonic()

    def check(self) -> list[Path]:
        """The logs rotated now (none when the limit is off or the last check was recent)."""
        if not self.max_bytes or time.monotonic() - self._checked < CHECK_EVERY_S:
            return []
        self._checked = time.monotonic()
        rotated = []
        for path in self.logs():
            try:
                if rotate_if_over(path, self.max_bytes):
                    rotated.append(path)
            except OSError as exc:  # a full disk: keep supervising, try again at the next check
                print(f"likeopt: could not rotate {path}: {exc}", flush=True)
        return rotated
