"""ListDocuments and GetDocument over a real in-process grpc.aio server: pages in id order, chunks in order."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from likeopt.v1 import retrieval_pb2
from tests.unit.test_retrieval_harness import DictCache, GatedEmbedder, retrieval_server
from tests.unit.test_retrieval_service import DOCS, stream


async def test_documents_come_in_id_order_a_page_at_a_time(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        await stub.UpsertDocuments(stream(DOCS))
        first = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(limit=2))
        second = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(limit=2, after_id=first.next_after_id))
    assert [d.id for d in first.documents] == ["car", "horse"] and first.next_after_id == "horse"
    assert [d.id for d in second.documents] == ["zebra"] and second.next_after_id == ""
    assert first.total == second.total == 3 and first.index_version > 0
    car = first.documents[0]
    assert (car.title, dict(car.metadata), car.chunks) == ("Cars", {"kind": "machine"}, 1)


async def test_a_page_follows_writes_made_since_the_one_before(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        await stub.UpsertDocuments(stream(DOCS))
        first = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(limit=1))
        await stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["horse"]))
        await stub.UpsertDocuments(stream([retrieval_pb2.Document(id="dog", title="Dogs", text="Dogs bark.")]))
        rest = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(after_id=first.next_after_id))
    assert [d.id for d in first.documents] == ["car"]
    assert [d.id for d in rest.documents] == ["dog", "zebra"] and rest.total == 3


async def test_get_document_returns_its_chunks_in_order_and_unknown_ids_are_not_found(tmp_path: Path) -> None:
    long_text = " ".join(f"Sentence number {i} talks about zebras and their stripes." for i in range(80))
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        await stub.UpsertDocuments(stream([retrieval_pb2.Document(id="long", title="Long", text=long_text)]))
        doc = await stub.GetDocument(retrieval_pb2.GetDocumentRequest(id="long"))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetDocument(retrieval_pb2.GetDocumentRequest(id="nope"))
        with pytest.raises(grpc.aio.AioRpcError) as huge:  # its whole id in the message went past gRPC's limit
            await stub.GetDocument(retrieval_pb2.GetDocumentRequest(id="d" * 20_000))
    assert missing.value.code() == huge.value.code() == grpc.StatusCode.NOT_FOUND
    assert huge.value.details() == f"no document with id {'d' * 80!r}…"
    assert len(doc.chunks) > 1 and [c.chunk_id for c in doc.chunks] == [f"long#{n}" for n in range(len(doc.chunks))]
    assert doc.chunks[0].text.startswith("Sentence number 0") and "number 79" in doc.chunks[-1].text


async def test_a_limit_out_of_range_is_refused(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(limit=1001))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_listing_limited_to_some_ids_names_the_stored_ones_and_too_many_ids_are_refused(
    tmp_path: Path,
) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        await stub.UpsertDocuments(stream(DOCS))
        some = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(ids=["zebra", "gone", "car", "zebra"]))
        with pytest.raises(grpc.aio.AioRpcError) as many:
            await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(ids=[f"d{n}" for n in range(1001)]))
        with pytest.raises(grpc.aio.AioRpcError) as long:
            await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(ids=["d" * 513]))
    assert [d.id for d in some.documents] == ["car", "zebra"] and some.total == 2 and not some.next_after_id
    assert many.value.code() == long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert many.value.details() == "ids takes at most 1000 document ids, got 1001"
