"""The feedback file under a full disk: a real SQLite file whose connection takes no new page (``PRAGMA
max_page_count``, which raises SQLite's own SQLITE_FULL), through an in-process generation_svc."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from generation_svc.extractive import ExtractiveBackend
from generation_svc.feedback import FeedbackStore
from likeopt.v1 import generation_pb2
from tests.unit.test_generation_harness import Harness, generation_server

LONGEST_COMMENT = "x" * 2000
"""Two ratings with such a comment do not fit on one 4 KiB page of SQLite: the second needs a page of its own."""
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
