"""The gateway's near cache of search replies (NearSearchReplies) against a real retrieval_svc: every version the
writer streams reaches the least version searches ask for, and a version a caller names is never answered from an
older reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from gateway.near_search import NearSearchReplies
from gateway.upstreams import Upstreams
from likeopt.caching.near_cache import VersionedLRU
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_port, retrieval_server

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


class Heard:
    """The versions a stream brought, as Upstreams is told of them."""

    def __init__(self) -> None:
        self.versions: list[int] = []

    def stream_opened(self) -> None:
        pass

    def heard_of(self, version: int, first: bool) -> None:
        self.versions.append(version)


def upstreams() -> Upstreams:
    """An Upstreams without channels: only its versions are asked for."""
    return Upstreams({}, None, None, None, None, {}, {})  # type: ignore[arg-type]


async def test_each_version_the_writer_streams_is_heard_and_a_named_version_skips_older_replies(
    tmp_path: Path,
) -> None:
    heard = Heard()
    async with retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, writer):
        near = NearSearchReplies(writer, VersionedLRU[bytes]("test"), heard)
        watching = asyncio.create_task(near.watch())
        try:
            await until(lambda: near.current is not None, "the stream's first version")
            first = near.current
            assert first is not None and heard.versions == [first]
            near.remember(KEY, first, b"[]")
            assert near.lookup(KEY) is not None and near.lookup(KEY, first) is not None
            assert near.lookup(KEY, first + 1) is None  # a caller's own write, not streamed yet: asked upstream
            written = await writer.UpsertDocuments(stream(retrieval_pb2.Document(id="a", text="A harbour.")))
            await until(lambda: near.current == written.index_version, "the write's version")
            assert heard.versions == [first, written.index_version]  # written another way than through this gateway
            assert near.lookup(KEY) is None  # the reply from before the write is stale
        finally:
            watching.cancel()


async def test_after_the_writer_s_store_went_back_searches_stop_asking_for_versions_it_will_never_reach(
    tmp_path: Path,
) -> None:
    """A gateway kept running while the store behind its writer was restored from an older backup."""
    gateway = upstreams()
    async with retrieval_port(tmp_path / "before", FakeEmbedder(), DictCache()) as (_, port):
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        writer = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        near = NearSearchReplies(writer, VersionedLRU[bytes]("test"), gateway)
        watching = asyncio.create_task(near.watch())
        await until(lambda: near.current is not None, "the stream's first version")
        written = await writer.UpsertDocuments(stream(retrieval_pb2.Document(id="a", text="A harbour.")))
        gateway.wrote(written.index_version)
        await until(lambda: near.current == written.index_version, "the write's version")
    try:
        assert gateway.least_version == written.index_version
        async with retrieval_port(tmp_path / "restored", FakeEmbedder(), DictCache(), port=port) as (servicer, _):
            restored = servicer.engine.version  # type: ignore[union-attr]
            assert restored < written.index_version
            await until(lambda: near.current == restored, "the restored store's version")
            assert gateway.least_version == restored
    finally:
        watching.cancel()
        await channel.close()


def test_a_new_stream_s_first_version_lowers_only_what_writes_acknowledged_before_it_opened_asked_for() -> None:
    gateway = upstreams()
    gateway.wrote(100)
    gateway.stream_opened()
    gateway.wrote(120)  # acknowledged while the stream was opening: its first version may predate it
    gateway.heard_of(90, first=True)
    assert gateway.least_version == 120
    gateway.heard_of(95, first=False)  # a stream's later versions never lower it
    assert gateway.least_version == 120
    gateway.stream_opened()
    gateway.heard_of(80, first=True)
    assert gateway.least_version == 80
