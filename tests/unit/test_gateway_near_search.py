"""The gateway's near cache of search replies (NearSearchReplies) against a real retrieval_svc: every version the
writer streams reaches the least version searches ask for, and a version a caller names is never answered from an
older reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from gateway.near_search import NearSearchReplies
from likeopt.caching.near_cache import VersionedLRU
from likeopt.v1 import retrieval_pb2
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_server

KEY = ("harbour", 10)


async def stream(*docs: retrieval_pb2.Document) -> AsyncIterator[retrieval_pb2.Document]:
    for doc in docs:
        yield doc


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for condition to hold (the stream delivers in its own time); fail naming what never came."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never came: {what}")


async def test_each_version_the_writer_streams_is_heard_and_a_named_version_skips_older_replies(
    tmp_path: Path,
) -> None:
    heard: list[int] = []
    async with retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, writer):
        near = NearSearchReplies(writer, VersionedLRU[bytes]("test"), heard.append)
        watching = asyncio.create_task(near.watch())
        try:
            await until(lambda: near.current is not None, "the stream's first version")
            first = near.current
            assert first is not None and heard == [first]
            near.remember(KEY, first, b"[]")
            assert near.lookup(KEY) is not None and near.lookup(KEY, first) is not None
            assert near.lookup(KEY, first + 1) is None  # a caller's own write, not streamed yet: asked upstream
            written = await writer.UpsertDocuments(stream(retrieval_pb2.Document(id="a", text="A harbour.")))
            await until(lambda: near.current == written.index_version, "the write's version")
            assert heard == [first, written.index_version]  # written another way than through this gateway
            assert near.lookup(KEY) is None  # the reply from before the write is stale
        finally:
            watching.cancel()
