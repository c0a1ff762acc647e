"""Read-your-writes across replicas: a search asking for an index version (SearchRequest.min_index_version) is
answered by a read-only replica only once it has caught up with the writer's store to that version.

Nothing follows the writer in these servers (follow_writers is not running), so a replica that finds a write it
was not told of found it because the search made it catch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from likeopt.v1 import retrieval_pb2
from retrieval_svc.engine import RetrievalEngine
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, retrieval_server

NOTE = retrieval_pb2.Document(id="harbour", title="Harbour", text="The Zyzzlemouth harbour master raises the flag.")
OTHER = retrieval_pb2.Document(id="lighthouse", title="Lighthouse", text="Lighthouses guide ships at night.")


async def stream(*docs: retrieval_pb2.Document) -> AsyncIterator[retrieval_pb2.Document]:
    for doc in docs:
        yield doc


def found(reply: retrieval_pb2.SearchResponse) -> list[str]:
    return [hit.doc_id for hit in reply.hits]


def search(min_index_version: int = 0, **fields: object) -> retrieval_pb2.SearchRequest:
    return retrieval_pb2.SearchRequest(query="Zyzzlemouth harbour", min_index_version=min_index_version, **fields)  # type: ignore[arg-type]


async def test_a_replica_behind_the_version_asked_for_catches_up_before_answering(tmp_path: Path) -> None:
    cache = DictCache()  # one cache_svc for both, as in the mesh: results are keyed by index version
    async with (
        retrieval_server(tmp_path, FakeEmbedder(), cache) as (_, writer),
        retrieval_server(tmp_path, FakeEmbedder(), cache, read_only=True) as (replica, reader),
    ):
        await writer.UpsertDocuments(stream(OTHER))
        before = await reader.Search(search())  # the replica has not followed: nothing, cached at its version
        assert found(before) == [] and before.index_version == 0

        written = await writer.UpsertDocuments(stream(NOTE))
        assert found(await reader.Search(search())) == []  # asking for no version: the replica's own, at once
        after = await reader.Search(search(written.index_version))
        assert after.index_version == written.index_version and found(after)[0] == "harbour"
        assert replica.versions.version == written.index_version  # its watchers hear of the version too

        deleted = await writer.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["harbour"]))
        gone = await reader.Search(search(deleted.index_version, mode=retrieval_pb2.BM25))
        assert gone.index_version == deleted.index_version and "harbour" not in found(gone)


async def test_concurrent_searches_share_one_catch_up_and_index_each_change_once(tmp_path: Path) -> None:
    async with (
        retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, writer),
        retrieval_server(tmp_path, FakeEmbedder(), DictCache(), read_only=True) as (replica, reader),
    ):
        written = await writer.UpsertDocuments(stream(NOTE, OTHER))
        engine = replica.engine
        assert isinstance(engine, RetrievalEngine)
        replies = await asyncio.gather(
            *(reader.Search(search(written.index_version, top_k=n % 5 + 1, no_cache=True)) for n in range(20))
        )
        assert all(found(reply)[0] == "harbour" for reply in replies)
        assert len(engine.bm25) == len(engine.vectors) == len(engine.chunks) == 2


async def test_a_version_no_store_holds_is_answered_from_what_the_store_holds(tmp_path: Path) -> None:
    async with (
        retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, writer),
        retrieval_server(tmp_path, FakeEmbedder(), DictCache(), read_only=True) as (_, reader),
    ):
        written = await writer.UpsertDocuments(stream(NOTE))
        for stub in (reader, writer):  # a number from another store, or from one since started afresh
            reply = await stub.Search(search(written.index_version + 100), timeout=10)
            assert reply.index_version == written.index_version and found(reply)[0] == "harbour"


async def test_a_caller_asking_for_a_version_no_store_holds_leaves_the_next_callers_writes_found(
    tmp_path: Path,
) -> None:
    async with (
        retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, writer),
        retrieval_server(tmp_path, FakeEmbedder(), DictCache(), read_only=True) as (_, reader),
    ):
        for doc in (NOTE, OTHER):
            impossible = await reader.Search(search(2**62), timeout=10)
            written = await writer.UpsertDocuments(stream(doc))
            assert impossible.index_version < written.index_version
            reply = await reader.Search(search(written.index_version, top_k=5), timeout=10)
            assert reply.index_version == written.index_version and doc.id in found(reply)
        deleted = await writer.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["harbour"]))
        await reader.Search(search(2**62), timeout=10)
        gone = await reader.Search(search(deleted.index_version, mode=retrieval_pb2.BM25), timeout=10)
        assert gone.index_version == deleted.index_version and "harbour" not in found(gone)


async def test_a_version_no_store_holds_costs_a_search_at_most_one_read_of_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        retrieval_server(tmp_path, FakeEmbedder(), DictCache()) as (_, writer),
        retrieval_server(tmp_path, FakeEmbedder(), DictCache(), read_only=True) as (replica, reader),
    ):
        caplog.set_level(logging.INFO, "retrieval_svc.service")
        written = await writer.UpsertDocuments(stream(NOTE))
        engine = replica.engine
        assert isinstance(engine, RetrievalEngine)
        reads: list[None] = []
        refresh = engine.refresh

        def counted() -> bool:
            reads.append(None)
            return refresh()

        engine.refresh = counted  # type: ignore[method-assign]
        for _ in range(3):  # one after another: each reads the store once (the store may have moved since)
            await reader.Search(search(written.index_version + 100), timeout=10)
        assert len(reads) == 3
        reads.clear()
        replies = await asyncio.gather(*(reader.Search(search(2**62, top_k=n % 5 + 1)) for n in range(20)))
        assert {reply.index_version for reply in replies} == {written.index_version}
        assert 1 <= len(reads) <= 20  # each started at most one catch-up; those that came together shared one
        absent = [r for r in caplog.records if r.getMessage() == "asked for an index version the store does not hold"]
        assert len(absent) == 1  # once per version of the store, not once per search
