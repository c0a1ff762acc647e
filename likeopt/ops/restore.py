"""``likeopt restore SOURCE``: a backup folder's files (likeopt.ops.backup) put in place of the live ones.

Only while no ``likeopt up`` serves the data folder (its lock is taken for the while). Each current file moves aside
with its write-ahead log into a ``before-restore-*`` folder beside it: a log left beside a restored file would be
replayed into it, and the replaced store may still be wanted. Every file of the backup is checked before anything
is moved, so a damaged backup replaces nothing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from likeopt.ops.backup import COMPANIONS, BackupFailed, Copied, checked, files_of, snapshot
from likeopt.ops.dir_lock import FolderUnusable, lock_folder, release
from likeopt.runtime.config import Config

RESTORING = ".restoring"
"""Suffix of a backup's file written beside the live one, until the live one has moved aside."""


def restore(config: Config, source: Path) -> list[Copied]:
    """Replace the live files with those source holds (a file the backup lacks is left as it is)."""
    wanted = {name: live for name, live in files_of(config).items() if (source / name).is_file()}
    if not wanted:
        raise BackupFailed(f"{source} holds no backup: none of {', '.join(files_of(config))}")
    details = {name: verified(source / name) for name in wanted}
    try:
        held = [lock_folder(config.data_dir, "LIKEOPT_DATA_DIR")]
    except FolderUnusable as exc:
        raise BackupFailed(f"a restore needs the mesh stopped: {exc}") from None
    try:
        aside = f"before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        return [Copied(name, put_in_place(source / name, live, aside), details[name]) for name, live in wanted.items()]
    finally:
        release(held)


def verified(path: Path) -> str:
    """What a backup file holds, once SQLite has checked it; BackupFailed when it is not a whole database."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return checked(db, path)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise BackupFailed(f"{path} is not a usable backup: {exc}") from None


def put_in_place(backup: Path, live: Path, aside: str) -> Path:
    """Write backup, with whatever of its own log SQLite reads (a copy of a crashed or snapshotted folder has one),
    as one file beside live; then move the current file and its log aside and give the new one live's name."""
    live.parent.mkdir(parents=True, exist_ok=True)
    staged = live.with_name(live.name + RESTORING)
    snapshot(backup, staged)
    kept = live.parent / aside
    for path in (live, *(live.with_name(live.name + suffix) for suffix in COMPANIONS)):
        if path.exists():
            kept.mkdir(exist_ok=True)
            path.replace(kept / path.name)
    staged.replace(live)
    return live
