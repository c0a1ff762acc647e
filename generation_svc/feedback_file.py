"""The feedback file's layout and queries: its tables, how a file of an earlier layout is brought up to this one (and
one of a later layout left alone), finding the answer a rating names, dropping answers past retention, and reading a
rating back as a FeedbackItem. Plain SQLite on a connection the caller holds: when and on which thread is
generation_svc.feedback's business."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from likeopt.v1 import generation_pb2

ANSWER_RETENTION_DAYS = 30

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    turn BLOB NOT NULL,
    backend TEXT NOT NULL,
    support REAL NOT NULL,
    no_answer INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS answers_trace ON answers (trace_id);
CREATE INDEX IF NOT EXISTS answers_created ON answers (created_ms);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL REFERENCES answers (answer_id),
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_answer ON feedback (answer_id);
"""
INSERT_ANSWERS = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)"

SCHEMA_VERSION = 2
"""The file's layout, kept in SQLite's user_version: 2 gave answers their owner. A file of a later layout is left
alone, as a release that writes answers positionally would fail on it (and one before this check silently did)."""


class NewerFeedbackFile(sqlite3.DatabaseError):
    """The file was laid out by a later release; opening it here could lose what that release keeps in it."""


def _retention_cutoff_ms() -> int:
    """Answers created before this (ms since the epoch) are past retention."""
    return int((time.time() - ANSWER_RETENTION_DAYS * 86400) * 1000)


def open_feedback_file(path: Path) -> sqlite3.Connection:
    """The file, laid out as this release reads it (made, with its folder, when there is none); NewerFeedbackFile
    for a file of a later layout, which is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        layout = db.execute("PRAGMA user_version").fetchone()[0]
        if layout > SCHEMA_VERSION:
            raise NewerFeedbackFile(
                f"it was laid out by a later Like-Opt (layout {layout}; this release reads up to {SCHEMA_VERSION}):"
                " run that release, or point LIKEOPT_FEEDBACK_DB at another file"
            )
        db.executescript(SCHEMA)
        if "owner" not in {row[1] for row in db.execute("PRAGMA table_info(answers)")}:
            db.execute("ALTER TABLE answers ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        db.close()
        raise
    return db


def find_answer(db: sqlite3.Connection, answer_id: str, trace_id: str, owner: str) -> str | None:
    """The id of the answer named that owner may rate; None when there is none, or it is another person's (its
    existence is not told). Past retention an answer is not rated, even one kept for its earlier ratings: whether
    it can be rated does not depend on whether the hourly prune has run yet."""
    cutoff = _retention_cutoff_ms()
    if answer_id:
        # An answer kept before owners were recorded has none: its id, given only to who asked, shows they were
        # given it (a trace id, which operators also see, does not).
        row = db.execute(
            "SELECT answer_id FROM answers WHERE answer_id = ? AND owner IN (?, '') AND created_ms >= ?",
            (answer_id, owner, cutoff),
        ).fetchone()
    else:
        row = db.execute(
            "SELECT answer_id FROM answers WHERE trace_id = ? AND owner = ? AND created_ms >= ?"
            " ORDER BY created_ms DESC LIMIT 1",
            (trace_id, owner, cutoff),
        ).fetchone()
    return None if row is None else str(row[0])


def prune_answers(db: sqlite3.Connection) -> None:
    """Drop the answers past retention that nobody rated (a rated one stays, so its ratings list with it)."""
    db.execute(
        "DELETE FROM answers WHERE created_ms < ? AND answer_id NOT IN (SELECT answer_id FROM feedback)",
        (_retention_cutoff_ms(),),
    )


def feedback_item(row: tuple[object, ...]) -> generation_pb2.FeedbackItem:
    feedback_id, answer_id, trace_id, rating, comment, created_ms, turn_bytes, backend, support, no_answer = row
    turn = generation_pb2.Turn.FromString(turn_bytes)  # type: ignore[arg-type]
    return generation_pb2.FeedbackItem(
        feedback_id=int(feedback_id),  # type: ignore[call-overload]
        answer_id=str(answer_id),
        trace_id=str(trace_id),
        rating=str(rating),
        comment=str(comment),
        created_unix_ms=int(created_ms),  # type: ignore[call-overload]
        question=turn.question,
        answer=turn.answer,
        citations=turn.citations,
        backend=str(backend),
        support=float(support),  # type: ignore[arg-type]
        no_answer=bool(no_answer),
    )
