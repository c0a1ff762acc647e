"""``likeopt backup DEST`` and ``likeopt restore SOURCE``: the embedded store and the feedback file copied whole.

Both are SQLite files in WAL mode, so a plain copy of a live folder (cp, tar) can pair the main file with a
write-ahead log of another moment: the copy then lacks acknowledged writes or does not open. A backup reads each
through SQLite's online backup API in one read transaction, which sees exactly the writes committed when it
began while searches and writes go on, and writes it as one self-contained file (no -wal beside it). A restore
puts such a file in place of the current one, which it moves aside with its log rather than deleting, since a
log left beside a restored file would be replayed into it.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from likeopt.runtime.config import Config
from retrieval_svc.store import STORE_FILE

FEEDBACK_FILE = "feedback.sqlite3"
"""generation_svc's feedback file (LIKEOPT_FEEDBACK_DB) as a backup folder names it."""
COMPANIONS = ("-wal", "-shm", "-journal")
"""SQLite's files beside a database: its log and the log's index, which belong to that file only."""
PARTIAL = ".partial"
"""Suffix of a file being written: a copy interrupted half way never has a name a restore or retrieval_svc reads."""


class BackupFailed(RuntimeError):
    """The backup or restore could not be made; the message says which file and why, and nothing was replaced."""


@dataclass(frozen=True)
class Copied:
    """One file a backup or restore wrote, for the report."""

    name: str
    path: Path
    detail: str


def files_of(config: Config) -> dict[str, Path]:
    """The live files a backup holds, by their name in the backup folder (the store only on the embedded backend:
    a Milvus collection is backed up by Milvus's own tools)."""
    files = {FEEDBACK_FILE: config.feedback_db}
    if config.retrieval_backend == "embedded":
        files = {STORE_FILE: config.data_dir / STORE_FILE, **files}
    return files


def backup(config: Config, destination: Path) -> list[Copied]:
    """Snapshot every live file into destination, a new or empty folder; a file not made yet is left out."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupFailed(f"{destination} is not empty: give each backup a new folder, so none is overwritten")
    made = not destination.exists()
    destination.mkdir(parents=True, exist_ok=True)
    copied: list[Copied] = []
    try:
        for name, live in files_of(config).items():
            if live.is_file():
                copied.append(Copied(name, destination / name, snapshot(live, destination / name)))
    except BaseException:
        discard(copied, destination if made else None)
        raise
    if not copied:
        raise BackupFailed(
            f"nothing to back up: no {STORE_FILE} in LIKEOPT_DATA_DIR={config.data_dir} and no"
            f" LIKEOPT_FEEDBACK_DB={config.feedback_db}"
        )
    return copied


def discard(copied: list[Copied], made: Path | None) -> None:
    """A backup cut short (Ctrl-C, a copy failing its check) takes back the files it wrote, and the folder it made:
    a folder holding the store without the feedback file would restore as if it were whole."""
    for done in copied:
        done.path.unlink(missing_ok=True)
    if made is not None:
        made.rmdir()


def snapshot(source: Path, target: Path) -> str:
    """Copy source into target as it stood at one commit (SQLite's backup API, all pages in one step), checked
    and flushed to disk under a partial name first; what it holds, for the report."""
    partial = target.with_name(target.name + PARTIAL)
    partial.unlink(missing_ok=True)
    try:
        live = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            copy = sqlite3.connect(partial, isolation_level=None)
            try:
                live.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                detail = checked(copy, source)
            finally:
                copy.close()
        finally:
            live.close()
        durable(partial)
        partial.replace(target)
    except sqlite3.Error as exc:
        raise BackupFailed(f"{source} could not be copied: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)  # a copy that failed its check, or Ctrl-C: nothing half-made is left
    return detail


def checked(db: sqlite3.Connection, source: Path) -> str:
    """What a copied file holds (documents, chunks and index version for a store), after SQLite's own check."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise BackupFailed(f"the copy of {source} fails SQLite's check: {'; '.join(problems[:3])}")
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if {"documents", "chunks", "meta"} <= tables:
        documents = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        version = db.execute("SELECT value FROM meta WHERE key='index_version'").fetchone()
        return f"{documents} documents, {chunks} chunks, index version {version[0] if version else 0}"
    if "answers" in tables:
        answers = db.execute("SELECT count(*) FROM answers").fetchone()[0]
        ratings = db.execute("SELECT count(*) FROM feedback").fetchone()[0] if "feedback" in tables else 0
        return f"{answers} answers, {ratings} ratings"
    return "checked"


def durable(path: Path) -> None:
    """Flush a written file to disk before it is renamed into place."""
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
