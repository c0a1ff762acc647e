"""One child process of ``likeopt up`` as the supervisor keeps it: its process, its log and what this run of it
wrote there (the log is appended to across runs), and when it was restarted."""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from likeopt.ops.processes import ProcessSpec


@dataclass
class Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    env: dict[str, str]
    log_start: int = 0
    """Where this run's lines begin in the (appended) log file."""

    ready: bool = False
    """Set once it answered its health probe: a child stopped while still starting may exit any way."""
    restarts: list[float] = field(default_factory=list)
    """When this child's predecessors were restarted (monotonic seconds), for crash-loop detection."""

    def this_run(self) -> list[str]:
        """The lines this run wrote: the log is appended to across runs, whose lines would mislead."""
        self.log_file.flush()
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace").splitlines()

    def notices(self) -> list[str]:
        """What the child asked to tell the user: the ``notice`` field of its JSON log lines."""
        found = []
        for line in self.this_run():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("notice"):
                    found.append(str(entry["notice"]))
        return found

    def tail(self, lines: int = 15) -> str:
        """The last lines the child wrote, to explain a failure."""
        return "\n".join(f"    {line}" for line in self.this_run()[-lines:])
