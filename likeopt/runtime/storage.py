"""What a caller reads when the disk under a service's SQLite file refuses a write.

retrieval_svc's store and generation_svc's feedback file both answer it the same way: UNAVAILABLE, naming the
setting that places the file and what is wrong with it, so that an operator knows what to free or fix.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

STORAGE_PROBLEMS = {"SQLITE_FULL": "is full", "SQLITE_READONLY": "is read-only", "SQLITE_IOERR": "cannot be written"}
"""SQLite's result codes (extended ones by their prefix) for a file or folder that takes no write, and what a caller
reads instead."""


def storage_problem(error: sqlite3.Error, place: str, path: Path) -> str | None:
    """What the caller of a write the disk refused reads (as UNAVAILABLE: it may succeed once space is freed or the
    file made writable) rather than an internal error with no reason; None for any other error. place names the
    file for the caller by its setting; the path and SQLite's words go to the log, not to the caller."""
    name = getattr(error, "sqlite_errorname", "") or ""
    problem = next((said for code, said in STORAGE_PROBLEMS.items() if name.startswith(code)), None)
    if problem is None:
        return None
    log.error("write refused by the disk", extra={"fields": {"path": str(path), "error": f"{name}: {error}"}})
    return f"{place} {problem}; nothing of this write was stored (fix that, then write again)"
