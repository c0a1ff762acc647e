"""The feedback file under a full disk, through an in-process generation_svc: a real SQLite file whose connection
takes no new page (``PRAGMA max_page_count``, which raises SQLite's own SQLITE_FULL), a folder that cannot be made,
and (as root) a real full tmpfs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from generation_svc import feedback
from generation_svc.extractive import ExtractiveBackend
from generation_svc.feedback import FeedbackStore, UnknownAnswer
from likeopt.v1 import generation_pb2
from tests.unit.test_generation_harness import Harness, generation_server

LONGEST_COMMENT = "x" * 2000
"""Two ratings with such a comment do not fit on one 4 KiB page of SQLite: the second needs a page of its own."""
LONG_ANSWER = "y" * 5000
"""An answer longer than a page: writing it needs pages the file does not have yet."""
KEY = (("authorization", "Bearer k"),)


def disk_full(store: FeedbackStore, full: bool = True) -> None:
    """The store's file takes no page beyond those it has (as on a full disk), or takes them again."""

    def limit() -> None:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0] if full else 1_073_741_823
        store._db.execute(f"PRAGMA max_page_count = {pages}")

    store._thread.submit(limit).result()


@asynccontextmanager
async def served(path: Path) -> AsyncIterator[tuple[Harness, FeedbackStore]]:
    """generation_svc keeping answers in the feedback file at path."""
    store = FeedbackStore(path)
    try:
        async with generation_server(ExtractiveBackend(), feedback=store, api_key="k") as h:
            yield h, store
    finally:
        store.close()


def keep(store: FeedbackStore, answer_id: str, owner: str = "") -> None:
    """An answer given, kept for feedback; returns once the store's one thread has tried to write it."""
    done = generation_pb2.DoneEvent(answer_id=answer_id, trace_id=f"t{answer_id}", backend="extractive")
    store.record_later("q", LONG_ANSWER, [], done, owner)
    store._thread.submit(lambda: None).result()


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def stored_answers(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT answer_id FROM answers")}


def rating(answer_id: str, comment: str = LONGEST_COMMENT) -> generation_pb2.FeedbackRequest:
    return generation_pb2.FeedbackRequest(answer_id=answer_id, rating="down", comment=comment)


async def test_a_rating_the_full_disk_refuses_is_unavailable_naming_the_file_and_stored_once_there_is_room(
    tmp_path: Path,
) -> None:
    """It was UNKNOWN ("internal error", HTTP 502): SQLITE_FULL escaped as if it were a fault of the server."""
    async with served(tmp_path / "answers.sqlite3") as (h, store):
        done = (await h.answer("Which port does Envoy listen on?", top_k=2))[-1].done
        await h.stub.Feedback(rating(done.answer_id))
        disk_full(store)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.stub.Feedback(rating(done.answer_id))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        details = refused.value.details() or ""
        assert "feedback file (LIKEOPT_FEEDBACK_DB) is full; nothing of this write was stored" in details
        assert str(tmp_path) not in details  # the server's paths are the operator's, in the log
        disk_full(store, False)
        await h.stub.Feedback(rating(done.answer_id))
        listed = await h.stub.ListFeedback(generation_pb2.ListFeedbackRequest(), metadata=KEY)
    assert listed.down == 2


async def test_answers_given_while_the_disk_is_full_wait_and_are_rated_once_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Their ids could never be rated ("no answer is known", even after space was freed and a restart): a write
    that failed dropped the answers it held."""
    path = tmp_path / "answers.sqlite3"
    failed = metric("likeopt_feedback_writes_failed_total")
    async with served(path) as (h, store):
        disk_full(store)
        keep(store, "a" * 32)
        keep(store, "b" * 32, owner="bob")
        assert metric("likeopt_feedback_writes_failed_total") == failed + 1  # the second waited: tried within RETRY_S
        assert "answers kept for feedback wait: the feedback file did not take them" in caplog.text
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.stub.Feedback(rating("a" * 32, ""))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # not "unknown": it waits, and so must the rating
        assert "feedback file (LIKEOPT_FEEDBACK_DB) is full" in (refused.value.details() or "")
        for stranger in ("", "carol"):  # another person's answer, waiting or not, is unknown to them
            with pytest.raises(UnknownAnswer):
                await store.rate("b" * 32, "", "up", "", owner=stranger)
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await h.stub.Feedback(rating("c" * 32, ""))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await h.stub.ListFeedback(generation_pb2.ListFeedbackRequest(), metadata=KEY)  # reads still work
        disk_full(store, False)
        assert (await h.stub.Feedback(rating("a" * 32, ""))).answer_id == "a" * 32
        assert (await store.rate("", "t" + "b" * 32, "up", "", owner="bob"))[1] == "b" * 32
    assert listed.down == 0 and stored_answers(path) == {"a" * 32, "b" * 32}


async def test_past_max_pending_the_oldest_waiting_answers_are_dropped_counted_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(feedback, "MAX_PENDING", 2)
    dropped = metric("likeopt_feedback_answers_dropped_total")
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    try:
        disk_full(store)
        for n in range(4):
            keep(store, f"{n:032d}")
        disk_full(store, False)
        for n in (0, 1):
            with pytest.raises(UnknownAnswer):
                await store.rate(f"{n:032d}", "", "up", "")
        for n in (2, 3):
            await store.rate(f"{n:032d}", "", "up", "")
    finally:
        store.close()
    assert metric("likeopt_feedback_answers_dropped_total") == dropped + 2
    assert caplog.text.count("answers kept for feedback dropped, oldest first") == 1


def test_answers_the_file_never_took_are_counted_and_logged_as_lost_when_the_store_closes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dropped = metric("likeopt_feedback_answers_dropped_total")
    store = FeedbackStore(tmp_path / "answers.sqlite3")
    disk_full(store)
    keep(store, "a" * 32)
    store.close()  # tries them once more, whenever the last try was
    assert metric("likeopt_feedback_answers_dropped_total") == dropped + 1
    assert "answers kept for feedback were lost: the feedback file did not take them" in caplog.text
    assert stored_answers(tmp_path / "answers.sqlite3") == set()


def written_by_themselves(path: Path, answer_ids: set[str], timeout_s: float = 10.0) -> set[str]:
    """Those of answer_ids the file at path holds once they are there or timeout_s has passed, the store asked
    nothing meanwhile (no answer, no rating)."""
    deadline = time.monotonic() + timeout_s
    stored: set[str] = set()
    while not answer_ids <= stored and time.monotonic() < deadline:
        time.sleep(0.05)
        with contextlib.suppress(sqlite3.Error):  # not there yet, or the store is laying it out
            stored = stored_answers(path)
    return stored & answer_ids


@pytest.mark.parametrize("trouble", ["full disk", "unopenable"])
def test_waiting_answers_are_written_once_the_file_takes_them_though_no_other_answer_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trouble: str
) -> None:
    """They were tried again only when the next answer came: a quiet service kept them in memory until then, and
    lost them at shutdown if the disk had filled again."""
    monkeypatch.setattr(feedback, "RETRY_S", 0.2)
    folder = tmp_path / "feedback"
    if trouble == "unopenable":
        folder.write_text("a file where the folder should be")
    store = FeedbackStore(folder / "answers.sqlite3")
    try:
        if trouble == "full disk":
            disk_full(store)
        keep(store, "a" * 32)
        keep(store, "b" * 32)
        if trouble == "full disk":
            disk_full(store, False)
        else:
            folder.unlink()
        assert written_by_themselves(folder / "answers.sqlite3", {"a" * 32, "b" * 32}) == {"a" * 32, "b" * 32}
    finally:
        store.close()


def test_closing_the_store_stops_its_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback, "RETRY_S", 1e9)
    folder = tmp_path / "feedback"
    folder.write_text("a file where the folder should be")
    store = FeedbackStore(folder / "answers.sqlite3")
    keep(store, "a" * 32)
    assert "feedback-retry" in {thread.name for thread in threading.enumerate()}  # set, for RETRY_S from now
    store.close()
    retries = [thread for thread in threading.enumerate() if thread.name == "feedback-retry"]
    for retry in retries:
        retry.join(5)
    assert not any(retry.is_alive() for retry in retries)


async def test_a_feedback_file_that_cannot_be_opened_at_start_is_opened_later_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Feedback was off for the life of the process (UNIMPLEMENTED, HTTP 502, even once the file could be opened),
    and the ids of the answers given meanwhile could never be rated."""
    monkeypatch.setattr(feedback, "RETRY_S", 1e9)  # not tried again before the test says the seconds have passed
    folder = tmp_path / "feedback"
    folder.write_text("a file where the folder should be")
    async with served(folder / "answers.sqlite3") as (h, _):
        notices = [getattr(record, "fields", {}).get("notice", "") for record in caplog.records]
        assert any(n.startswith("feedback is off until") for n in notices)  # the launcher shows the operator these
        done = (await h.answer("Which port does Envoy listen on?", top_k=2))[-1].done
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.stub.Feedback(rating(done.answer_id, ""))
        with pytest.raises(grpc.aio.AioRpcError) as unlisted:
            await h.stub.ListFeedback(generation_pb2.ListFeedbackRequest(), metadata=KEY)
        folder.unlink()
        monkeypatch.setattr(feedback, "RETRY_S", 0.0)
        assert (await h.stub.Feedback(rating(done.answer_id, ""))).answer_id == done.answer_id
    for failed in (refused.value, unlisted.value):
        assert failed.code() == grpc.StatusCode.UNAVAILABLE
        details = failed.details() or ""
        assert details.startswith("generation_svc's feedback file (LIKEOPT_FEEDBACK_DB) cannot be opened (File exists)")
        assert details.endswith("nothing was stored: try again later") and str(tmp_path) not in details


@contextlib.contextmanager
def full_tmpfs(folder: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted at folder, filled to its last byte by the file given (removing it frees the space)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the other tests here emulate the full disk with max_page_count")
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here: {mounted.stderr.decode().strip()}")
    try:
        yield fill(folder / "filler")
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)  # gone even while a file there is open


def fill(path: Path) -> Path:
    """A file at path taking every byte left on its disk."""
    with path.open("ab", buffering=0) as filler, contextlib.suppress(OSError):  # ENOSPC: the disk is full
        while True:
            filler.write(bytes(1 << 16))
    return path


async def test_on_a_real_full_disk_the_file_is_opened_and_answers_written_once_space_is_freed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe's case: a feedback file on a full tmpfs; freeing space is all it takes, each time."""
    monkeypatch.setattr(feedback, "RETRY_S", 0.0)
    with full_tmpfs(tmp_path / "disk") as filler:
        async with served(tmp_path / "disk" / "feedback" / "answers.sqlite3") as (h, store):
            first = (await h.answer("Which port does Envoy listen on?", top_k=2))[-1].done
            with pytest.raises(grpc.aio.AioRpcError) as unopened:
                await h.stub.Feedback(rating(first.answer_id, ""))
            filler.unlink()
            assert (await h.stub.Feedback(rating(first.answer_id, ""))).answer_id == first.answer_id
            fill(filler)
            keep(store, "a" * 32)
            with pytest.raises(grpc.aio.AioRpcError) as unwritten:
                await h.stub.Feedback(rating("a" * 32, ""))
            filler.unlink()
            assert (await h.stub.Feedback(rating("a" * 32, ""))).answer_id == "a" * 32
    for refused in (unopened.value, unwritten.value):
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        assert "feedback file (LIKEOPT_FEEDBACK_DB) is full; nothing of this write was stored" in (
            refused.details() or ""
        )
