"""likeopt backup and restore on real SQLite files: a backup holds every committed write and none in flight, taken
while a writer holds the store's write lock; a restore never replays the replaced store's log into the backup, keeps
the replaced files, and replaces nothing when the backup is damaged or the mesh still runs."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from likeopt.ops import backup as backup_module
from likeopt.ops.backup import FEEDBACK_FILE, BackupFailed, backup
from likeopt.ops.dir_lock import lock_folder, release
from likeopt.ops.restore import restore
from likeopt.runtime.config import Config
from retrieval_svc.store import STORE_FILE, NewDocument, Store
from tests.support import ROOT


def config_for(tmp_path: Path) -> Config:
    return Config.from_env(
        {"LIKEOPT_DATA_DIR": str(tmp_path / "data"), "LIKEOPT_FEEDBACK_DB": str(tmp_path / "fb" / "answers.sqlite3")}
    )


def new_document(doc_id: str) -> NewDocument:
    return NewDocument(doc_id, doc_id.title(), {}, [f"text of {doc_id}"], np.ones((1, 384), dtype=np.float32))


def stored_ids(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT id FROM documents")}
    finally:
        db.close()


def write_then_die(store: Path, doc_id: str) -> None:
    """A writer process commits doc_id and dies without closing: its commit stays in the log (-wal) only."""
    script = (
        "import os, sys, numpy as np\n"
        "from retrieval_svc.store import NewDocument, Store\n"
        "store = Store(__import__('pathlib').Path(sys.argv[1]))\n"
        "store.upsert([NewDocument(sys.argv[2], 'T', {}, ['x'], np.ones((1, 384), dtype=np.float32))])\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(store), doc_id], cwd=ROOT, check=True)


def test_a_backup_holds_every_committed_write_and_none_in_flight(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    Store(config.data_dir / STORE_FILE).close()  # its tables in the main file, as in any store but a new one
    store = Store(config.data_dir / STORE_FILE)
    store.upsert([new_document("committed")])
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(config.data_dir / STORE_FILE, plain / STORE_FILE)  # the main file without its log
    writer = sqlite3.connect(config.data_dir / STORE_FILE, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a writer held half way through its transaction
    writer.execute("INSERT INTO documents (id, title, metadata) VALUES ('in-flight', 'T', '{}')")
    copied = backup(config, tmp_path / "backup")
    writer.execute("COMMIT")
    writer.close()
    assert stored_ids(plain / STORE_FILE) == set()  # why a copy of the main file alone is no backup
    assert stored_ids(tmp_path / "backup" / STORE_FILE) == {"committed"}
    assert sorted(path.name for path in (tmp_path / "backup").iterdir()) == [STORE_FILE]  # one file, no log
    assert [item.name for item in copied] == [STORE_FILE]
    assert "1 documents, 1 chunks" in copied[0].detail
    store.close()


def test_a_backup_takes_the_feedback_file_too_and_never_overwrites_one(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    config.feedback_db.parent.mkdir()
    db = sqlite3.connect(config.feedback_db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE answers (answer_id TEXT)")
    db.execute("INSERT INTO answers VALUES ('a')")
    db.commit()
    copied = backup(config, tmp_path / "backup")
    db.close()
    assert [(item.name, item.detail) for item in copied] == [(FEEDBACK_FILE, "1 answers, 0 ratings")]
    with pytest.raises(BackupFailed, match="not empty"):
        backup(config, tmp_path / "backup")


def test_a_restore_never_replays_the_replaced_stores_log_and_keeps_it(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    live = config.data_dir / STORE_FILE
    Store(live).upsert([new_document("old")])
    backup(config, tmp_path / "backup")
    write_then_die(live, "newer")  # a crashed writer's last commit is in store.sqlite3-wal only
    assert live.with_name(STORE_FILE + "-wal").stat().st_size > 0
    copied = restore(config, tmp_path / "backup")
    assert [item.path for item in copied] == [live]
    assert not live.with_name(STORE_FILE + "-wal").exists()
    assert stored_ids(live) == {"old"}
    (kept,) = config.data_dir.glob("before-restore-*")
    assert stored_ids(kept / STORE_FILE) == {"old", "newer"}  # the replaced store, whole with its log


def test_a_damaged_backup_replaces_nothing(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    live = config.data_dir / STORE_FILE
    Store(live).upsert([new_document("live")])
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / STORE_FILE).write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)
    with pytest.raises(BackupFailed, match="not a usable backup"):
        restore(config, tmp_path / "backup")
    assert stored_ids(live) == {"live"}
    assert not list(config.data_dir.glob("before-restore-*"))


def test_a_restore_waits_for_the_mesh_to_stop(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    Store(config.data_dir / STORE_FILE).upsert([new_document("live")])
    backup(config, tmp_path / "backup")
    held = [lock_folder(config.data_dir, "LIKEOPT_DATA_DIR")]  # as a running `likeopt up` holds it
    try:
        with pytest.raises(BackupFailed, match="needs the mesh stopped"):
            restore(config, tmp_path / "backup")
    finally:
        release(held)
    assert not list(config.data_dir.glob("before-restore-*"))
    with pytest.raises(BackupFailed, match="holds no backup"):
        restore(config, tmp_path / "nothing")


def test_a_restore_keeps_the_writes_a_backups_own_log_holds(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    Store(config.data_dir / STORE_FILE).upsert([new_document("live")])
    write_then_die(tmp_path / "snapshot" / STORE_FILE, "logged")  # a volume snapshot: its last commit in -wal only
    restore(config, tmp_path / "snapshot")
    assert stored_ids(config.data_dir / STORE_FILE) == {"logged"}
    assert not (config.data_dir / (STORE_FILE + "-wal")).exists()


def test_folders_named_with_uri_characters_are_backed_up_and_restored(tmp_path: Path) -> None:
    config = config_for(tmp_path / "site #1?a=b%20")
    Store(config.data_dir / STORE_FILE).upsert([new_document("live")])
    backup(config, tmp_path / "backup")
    restore(config, tmp_path / "backup")
    assert stored_ids(config.data_dir / STORE_FILE) == {"live"}


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), BackupFailed("the copy fails SQLite's check")])
def test_a_backup_cut_short_leaves_no_half_made_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    """Ctrl-C while a file was flushed, or a copy that failed its check, left ``store.sqlite3.partial`` behind."""
    config = config_for(tmp_path)
    Store(config.data_dir / STORE_FILE).close()

    def fail(*_: object) -> None:
        raise failure

    monkeypatch.setattr(backup_module, "durable", fail)
    with pytest.raises(type(failure)):
        backup(config, tmp_path / "backup")
    assert not (tmp_path / "backup").exists()


def test_a_backup_cut_short_after_one_file_takes_it_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted between the store and the feedback file, a backup left the store alone in its folder, which a
    restore would have put in place without the feedback file; a folder given empty stays, empty."""
    config = config_for(tmp_path)
    Store(config.data_dir / STORE_FILE).close()
    config.feedback_db.parent.mkdir(parents=True)
    sqlite3.connect(config.feedback_db).close()
    snapshot = backup_module.snapshot

    def second_interrupted(source: Path, target: Path) -> str:
        if target.name == FEEDBACK_FILE:
            raise KeyboardInterrupt
        return snapshot(source, target)

    monkeypatch.setattr(backup_module, "snapshot", second_interrupted)
    (tmp_path / "given").mkdir()
    with pytest.raises(KeyboardInterrupt):
        backup(config, tmp_path / "given")
    assert list((tmp_path / "given").iterdir()) == []
    monkeypatch.setattr(backup_module, "snapshot", snapshot)
    assert {copied.name for copied in backup(config, tmp_path / "given")} == {STORE_FILE, FEEDBACK_FILE}
