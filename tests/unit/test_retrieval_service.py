"""RetrievalServicer over a real in-process grpc.aio server: single-flight, caches, acknowledged ingestion."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

import retrieval_svc.service
from likeopt.caching.cache_keys import cache_key, normalise_query
from likeopt.runtime.config import Config
from likeopt.runtime.principal import PRINCIPAL_HEADER, tenant_reader_header
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc import document_checks, ingestion
from retrieval_svc.backend import BackendRefused
from retrieval_svc.cancellable_writes import STOP
from retrieval_svc.search_messages import search_params
from retrieval_svc.store import Store, StoreUnusable
from tests.unit.test_ingest_cli import JWT
from tests.unit.test_retrieval_harness import DictCache, FakeEmbedder, GatedEmbedder, retrieval_port, retrieval_server

DOCS = [
    retrieval_pb2.Document(id="zebra", title="Zebras", text="Zebras have black and white stripes."),
    retrieval_pb2.Document(id="horse", title="Horses", text="Horses have manes and run fast."),
    retrieval_pb2.Document(id="empty", title=" ", text="   "),
    retrieval_pb2.Document(id="car", title="Cars", text="Cars have wheels.", metadata={"kind": "machine"}),
]


async def stream(docs: list[retrieval_pb2.Document]) -> AsyncIterator[retrieval_pb2.Document]:
    for doc in docs:
        yield doc


async def test_fifty_concurrent_identical_searches_compute_one_embedding_and_one_search(tmp_path: Path) -> None:
    embedder = GatedEmbedder()
    async with retrieval_server(tmp_path, embedder, DictCache()) as (servicer, stub):
        await stub.UpsertDocuments(stream(DOCS))
        assert servicer.engine is not None
        before = servicer.engine.counters.copy()
        arrived = 0
        all_arrived = asyncio.Event()
        run = servicer.results.flights.run

        async def counting_run(key: object, compute: object) -> retrieval_pb2.SearchResponse:
            nonlocal arrived
            arrived += 1
            if arrived == 50:
                all_arrived.set()
            return await run(key, compute)  # type: ignore[arg-type]

        servicer.results.flights.run = counting_run  # type: ignore[method-assign]
        embedder.gate.clear()
        request = retrieval_pb2.SearchRequest(query="Zebra stripes", top_k=3)
        calls = [asyncio.ensure_future(stub.Search(request)) for _ in range(50)]
        await asyncio.wait_for(all_arrived.wait(), timeout=30)  # every request is waiting on the one computation
        embedder.gate.set()
        responses = await asyncio.gather(*calls)
        counters = servicer.engine.counters
        assert counters["embeddings"] - before["embeddings"] == 1
        assert counters["searches"] - before["searches"] == 1
        assert {tuple(h.doc_id for h in r.hits) for r in responses} == {tuple(h.doc_id for h in responses[0].hits)}
        assert responses[0].hits[0].doc_id == "zebra"


async def test_query_embeddings_and_results_are_cached_under_normalised_queries(tmp_path: Path) -> None:
    cache = DictCache()
    async with retrieval_server(tmp_path, GatedEmbedder(), cache) as (servicer, stub):
        await stub.UpsertDocuments(stream(DOCS))
        assert servicer.engine is not None
        first = await stub.Search(retrieval_pb2.SearchRequest(query="zebra stripes", mode=retrieval_pb2.HYBRID))
        dense = await stub.Search(retrieval_pb2.SearchRequest(query="  ZEBRA   stripes ", mode=retrieval_pb2.DENSE))
        again = await stub.Search(retrieval_pb2.SearchRequest(query="Zebra Stripes", mode=retrieval_pb2.HYBRID))
        counters = servicer.engine.counters
        assert counters["embeddings"] == 1  # one for all three spellings
        assert counters["searches"] == 2  # the third is a result-cache hit
        assert not first.cached and not dense.cached and again.cached
        assert list(again.hits) == list(first.hits)
        assert {namespace for namespace, _ in cache.values} == {"search"}  # embeddings stay in process


async def test_no_cache_skips_the_result_cache(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (servicer, stub):
        await stub.UpsertDocuments(stream(DOCS))
        request = retrieval_pb2.SearchRequest(query="horses", mode=retrieval_pb2.BM25, no_cache=True)
        replies = [await stub.Search(request) for _ in range(2)]
        assert servicer.engine is not None and servicer.engine.counters["searches"] == 2
        assert not any(r.cached for r in replies)


async def test_a_batch_answers_each_query_as_its_own_search_would(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (servicer, stub):
        await stub.UpsertDocuments(stream(DOCS))
        queries = ["zebra stripes", "Horses  RUN", "wheels", "zebra stripes"]
        for mode in (retrieval_pb2.HYBRID, retrieval_pb2.DENSE, retrieval_pb2.BM25):
            parameters = retrieval_pb2.SearchRequest(top_k=2, mode=mode, filters={"kind": "machine"} if mode else {})
            batch = await stub.SearchBatch(retrieval_pb2.SearchBatchRequest(queries=queries, parameters=parameters))
            alone = []
            for query in queries:
                one = retrieval_pb2.SearchRequest()
                one.CopyFrom(parameters)
                one.query = query
                alone.append(await stub.Search(one))
            assert [list(r.hits) for r in batch.responses] == [list(r.hits) for r in alone], mode
            assert {r.index_version for r in batch.responses} == {alone[0].index_version}
        assert servicer.engine is not None and servicer.engine.counters["embeddings"] == 3  # per distinct query


@pytest.mark.parametrize("queries", [[], ["ok"] * 101, ["ok", "  "]])
async def test_a_batch_of_no_query_too_many_or_a_blank_one_is_invalid(tmp_path: Path, queries: list[str]) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SearchBatch(retrieval_pb2.SearchBatchRequest(queries=queries))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_ingest_acknowledges_each_durable_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingestion, "UPSERT_BATCH_DOCS", 2)
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (servicer, stub):
        progress = [p async for p in stub.IngestDocuments(stream(DOCS))]
        assert [list(p.ids) for p in progress] == [["zebra", "horse"], ["car"]]
        assert [s.id for p in progress for s in p.skipped] == ["empty"]
        assert progress[0].index_version < progress[1].index_version
        assert servicer.engine is not None
        assert set(doc_id for doc_id, _, _ in servicer.engine.store.documents()) == {"zebra", "horse", "car"}
        status = await stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest())
        assert status.documents == 3 and status.chunks == status.bm25_chunks == status.vector_chunks == 3


async def test_upsert_summarises_the_whole_stream(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        summary = await stub.UpsertDocuments(stream(DOCS))
        assert (summary.upserted, summary.chunks, [s.id for s in summary.skipped]) == (3, 3, ["empty"])
        hits = await stub.Search(retrieval_pb2.SearchRequest(query="wheels", filters={"kind": "machine"}))
        assert [h.doc_id for h in hits.hits] == ["car"]


async def test_a_title_only_document_is_found_by_its_title_and_an_unfit_one_refused_alone(tmp_path: Path) -> None:
    """chunk_tokens is 32 here, so a title may take 16 word pieces (the fake model counts words + 2)."""
    docs = [
        retrieval_pb2.Document(id="flu", title="Household transmission of influenza"),
        retrieval_pb2.Document(id="long", title="word " * 15, text="A body that cannot fit beside its title."),
        DOCS[3],
    ]
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        summary = await stub.UpsertDocuments(stream(docs))
        assert (summary.upserted, [s.id for s in summary.skipped]) == (2, ["long"])
        assert summary.skipped[0].reason.startswith("title is 17 word pieces long; at most 16 fit")
        hits = await stub.Search(retrieval_pb2.SearchRequest(query="influenza in households", mode=retrieval_pb2.BM25))
        assert [(h.doc_id, h.text) for h in hits.hits] == [("flu", "Household transmission of influenza")]


async def test_a_title_is_held_to_the_text_s_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A title-only document's title becomes its text, so it gets no laxer checks than a text."""
    monkeypatch.setattr(document_checks, "MAX_DOCUMENT_CHARS", 100)
    docs = [
        retrieval_pb2.Document(id="nul", title="a\x00b", text="Fine text."),
        retrieval_pb2.Document(id="huge", title="t" * 101),
        DOCS[3],
    ]
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        summary = await stub.UpsertDocuments(stream(docs))
        assert [(s.id, s.reason) for s in summary.skipped] == [
            ("nul", "contains NUL characters"),
            ("huge", "text or title is longer than 100 characters"),
        ]
        assert summary.upserted == 1


async def test_a_call_the_backend_refuses_answers_internal_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Milvus refusing a write the service let through is a fault of ours: INTERNAL, not UNKNOWN."""
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (servicer, stub):

        def refuse(*_: object) -> int:
            raise BackendRefused("Milvus at LIKEOPT_MILVUS_URI=x refused the call: no")

        monkeypatch.setattr(servicer.engine, "store_embedded", refuse)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.UpsertDocuments(stream(DOCS[:1]))
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        assert "refused the call: no" in (failed.value.details() or "")


async def test_ids_a_url_cannot_name_and_nul_in_metadata_are_refused_and_a_repeated_id_is_reported(
    tmp_path: Path,
) -> None:
    docs = [
        retrieval_pb2.Document(id="notes/../car", text="Would be deleted by DELETE /documents/notes/../car."),
        retrieval_pb2.Document(id="./c", text="Dot segment."),
        retrieval_pb2.Document(id="https://example.org/a", text="A URL as an id: empty segments are fine."),
        retrieval_pb2.Document(id="tagged", text="Fine text.", metadata={"k\x00": "v"}),
        retrieval_pb2.Document(id="twice", text="The first copy."),
        retrieval_pb2.Document(id="twice", text="The second copy."),
        retrieval_pb2.Document(id="dir/ok.md", text="Slashes are fine between real segments."),
        retrieval_pb2.Document(id="line\nbreak", text="No route's path can match a line break."),
        retrieval_pb2.Document(id="tab\there", text="Nor should a list show a tab or \x01 in an id."),
    ]
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        summary = await stub.UpsertDocuments(stream(docs))
        stored = await stub.GetDocument(retrieval_pb2.GetDocumentRequest(id="twice"))
    reasons = {s.id: s.reason for s in summary.skipped}
    assert set(reasons) == {"notes/../car", "./c", "tagged", "twice", "line\nbreak", "tab\there"}
    assert reasons["notes/../car"] == reasons["./c"] and "a URL could not name it" in reasons["./c"]
    assert reasons["line\nbreak"] == reasons["tab\there"] and "control character" in reasons["tab\there"]
    assert reasons["tagged"] == "contains NUL characters" and reasons["twice"] == document_checks.REPEATED_ID
    assert summary.upserted == 3 and stored.chunks[0].text == "The second copy."


@pytest.mark.parametrize(
    "request_fields", [{"top_k": 101}, {"rrf_k": float("nan")}, {"rrf_k": float("inf")}, {"rrf_k": -1.0}]
)
async def test_search_refuses_parameters_out_of_range(tmp_path: Path, request_fields: dict[str, float]) -> None:
    # A NaN rrf_k made every score NaN, an infinite one every score 0 (both answered OK).
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Search(retrieval_pb2.SearchRequest(query="x", **request_fields))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_id_sent_twice_in_two_batches_is_one_document_upserted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestion, "UPSERT_BATCH_DOCS", 2)
    docs = [
        retrieval_pb2.Document(id="twice", text="The first copy."),
        retrieval_pb2.Document(id="other", text="Another document."),
        retrieval_pb2.Document(id="twice", text="The second copy."),
    ]
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (_, stub):
        summary = await stub.UpsertDocuments(stream(docs))
        stored = await stub.GetDocument(retrieval_pb2.GetDocumentRequest(id="twice"))
    assert summary.upserted == 2 and [s.id for s in summary.skipped] == ["twice"]
    assert stored.chunks[0].text == "The second copy."


async def test_watch_index_streams_the_version_after_every_write(tmp_path: Path) -> None:
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (servicer, stub):
        watch = stub.WatchIndex(retrieval_pb2.WatchIndexRequest())
        assert (await watch.read()).index_version == 0
        summary = await stub.UpsertDocuments(stream(DOCS))
        assert (await asyncio.wait_for(watch.read(), 5)).index_version == summary.index_version > 0
        deleted = await stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["car"]))
        assert (await asyncio.wait_for(watch.read(), 5)).index_version == deleted.index_version
        servicer.versions.close()  # as at shutdown: the stream ends by itself
        assert await asyncio.wait_for(watch.read(), 5) == grpc.aio.EOF


async def test_a_delete_logs_one_line_with_the_count_a_bounded_list_of_ids_and_the_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Operators read in the log what each write did and whose it was: a delete logged nothing."""
    wendy = ((PRINCIPAL_HEADER, tenant_reader_header("acme", "tenant", "wendy")),)
    asked = ["car", "zebra", *(f"gone-{n}" for n in range(document_checks.LOGGED_IDS))]
    async with retrieval_port(tmp_path, GatedEmbedder(), DictCache(), Config.from_env(JWT)) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            await stub.UpsertDocuments(stream(DOCS), metadata=wendy)
            with caplog.at_level(logging.INFO, logger="retrieval_svc"):
                reply = await stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=asked), metadata=wendy)
    [logged] = [r.fields for r in caplog.records if r.getMessage() == "deleted"]  # type: ignore[attr-defined]
    assert reply.deleted == logged["documents"] == 2 and logged["index_version"] == reply.index_version
    assert logged["ids"] == asked[: document_checks.LOGGED_IDS] and logged["ids_not_logged"] == 2
    assert (logged["writer"], logged["writer_tenant"]) == ("wendy", "acme")


async def test_a_repeated_search_is_answered_in_process_until_the_index_changes(tmp_path: Path) -> None:
    cache = DictCache()
    async with retrieval_server(tmp_path, GatedEmbedder(), cache) as (_, stub):
        await stub.UpsertDocuments(stream(DOCS))
        request = retrieval_pb2.SearchRequest(query="wheels", mode=retrieval_pb2.BM25)
        first = await stub.Search(request)
        reads = len(cache.reads)
        again = await stub.Search(request)
        assert (first.cached, again.cached, len(cache.reads)) == (False, True, reads)  # cache_svc not asked
        assert [h.doc_id for h in again.hits] == ["car"]
        await stub.DeleteDocuments(retrieval_pb2.DeleteDocumentsRequest(ids=["car"]))
        after = await stub.Search(request)
        assert [h.doc_id for h in after.hits] == [] and not after.cached


async def test_closing_waits_for_a_search_still_running_in_its_thread_before_closing_the_engine(
    tmp_path: Path,
) -> None:
    embedder = GatedEmbedder()
    async with retrieval_server(tmp_path, embedder, DictCache()) as (servicer, stub):
        await stub.UpsertDocuments(stream(DOCS))
        engine = servicer.engine
        assert engine is not None
        embedder.gate.clear()
        embedder.waiting.clear()
        call = stub.Search(retrieval_pb2.SearchRequest(query="a search the drain leaves running", top_k=3))
        assert await asyncio.to_thread(embedder.waiting.wait, 30)
        call.cancel()  # the client is gone, as after the drain's grace; the thread still encodes
        closing = asyncio.create_task(servicer.close())
        done, _ = await asyncio.wait({closing}, timeout=0.2)
        assert not done, "the engine was closed under a running search"
        assert engine.version > 0
        embedder.gate.set()
        await asyncio.wait_for(closing, timeout=30)
        with pytest.raises(sqlite3.ProgrammingError):
            engine.store.version  # type: ignore[attr-defined]  # noqa: B018 - reads the closed store


class WatchedEmbedder(GatedEmbedder):
    """A GatedEmbedder that keeps the stop flag of the write it embeds for, and says when its encode returned."""

    def __init__(self) -> None:
        super().__init__()
        self.stop: threading.Event | None = None
        self.returned = threading.Event()

    def encode(self, texts: list[str]) -> np.ndarray:
        self.stop = STOP.get()
        try:
            return super().encode(texts)
        finally:
            self.returned.set()


async def ingestion_held(
    embedder: WatchedEmbedder, stub: retrieval_pb2_grpc.RetrievalServiceStub
) -> grpc.aio.StreamStreamCall:
    """An ingestion of DOCS[0] whose embedding waits at the embedder's gate (closed now, after start-up's own)."""
    embedder.gate.clear()
    embedder.waiting.clear()
    call = stub.IngestDocuments(stream(DOCS[:1]))
    assert await asyncio.to_thread(embedder.waiting.wait, 30)
    return call


async def test_a_client_that_leaves_an_ingestion_stops_it_and_nothing_is_stored(tmp_path: Path) -> None:
    """A cancelled call left its worker thread embedding (for minutes, for a large document), then storing it."""
    embedder = WatchedEmbedder()
    async with retrieval_server(tmp_path, embedder, DictCache()) as (servicer, stub):
        call = await ingestion_held(embedder, stub)
        call.cancel()
        stop = embedder.stop
        assert stop is not None and await asyncio.to_thread(stop.wait, 30)  # the server saw the client leave
        embedder.gate.set()
        assert await asyncio.to_thread(embedder.returned.wait, 30)
        progress = [p async for p in stub.IngestDocuments(stream(DOCS[1:2]))]
        assert [list(p.ids) for p in progress] == [[DOCS[1].id]]
        assert servicer.engine is not None
        assert [doc_id for doc_id, _, _ in servicer.engine.store.documents()] == [DOCS[1].id]


async def test_a_drain_lets_the_write_in_flight_finish_when_it_can(tmp_path: Path) -> None:
    """An upload sent just before a stop (a rolling restart) is stored, not refused, when it finishes in time."""
    embedder = WatchedEmbedder()
    async with retrieval_server(tmp_path, embedder, DictCache()) as (servicer, stub):
        call = await ingestion_held(embedder, stub)
        servicer.drain_begins()
        embedder.gate.set()
        assert [list(p.ids) async for p in call] == [[DOCS[0].id]]
        assert servicer.engine is not None
        assert [doc_id for doc_id, _, _ in servicer.engine.store.documents()] == [DOCS[0].id]


async def test_a_drain_abandons_the_ingestion_batch_still_embedded_and_refuses_new_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping retrieval_svc waited for the batch it was embedding (a minute on busy cores), past the launcher's
    grace, and was killed; its client saw only "Cancelling all calls"."""
    monkeypatch.setattr(retrieval_svc.service, "WRITES_FINISH_WITHIN_S", 0.05)
    embedder = WatchedEmbedder()
    async with retrieval_server(tmp_path, embedder, DictCache()) as (servicer, stub):
        call = await ingestion_held(embedder, stub)
        servicer.drain_begins()
        stop = embedder.stop
        assert stop is not None and await asyncio.to_thread(stop.wait, 30)  # stops at its next slice
        embedder.gate.set()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            _ = [p async for p in call]
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (ended.value.details() or "").startswith("retrieval_svc is stopping: 0 documents of this call were")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.UpsertDocuments(stream(DOCS[1:2]))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert servicer.engine is not None and list(servicer.engine.store.documents()) == []


async def test_a_store_started_afresh_beside_a_kept_cache_is_not_served_the_old_stores_results(
    tmp_path: Path,
) -> None:
    """Versions counted 1, 2, ... in every store, and cache keys name the version: a data folder replaced while
    Redis kept its file was served the old documents (with their text) for the same query."""
    cache = DictCache()
    request = retrieval_pb2.SearchRequest(query="stripes", mode=retrieval_pb2.BM25)
    async with retrieval_server(tmp_path / "first", GatedEmbedder(), cache) as (_, stub):
        await stub.UpsertDocuments(stream(DOCS[:1]))
        first = await stub.Search(request)
    replaced = retrieval_pb2.Document(id="tiger", title="Tigers", text="Tigers have orange stripes.")
    async with retrieval_server(tmp_path / "second", GatedEmbedder(), cache) as (_, stub):
        await stub.UpsertDocuments(stream([replaced]))
        second = await stub.Search(request)
    assert [h.doc_id for h in first.hits] == ["zebra"] and [h.doc_id for h in second.hits] == ["tiger"]
    assert second.index_version > first.index_version


async def test_a_full_disk_is_named_and_the_store_takes_writes_again_once_there_is_room(tmp_path: Path) -> None:
    """It answered UNKNOWN ("internal error"), and a COMMIT that fails may leave SQLite's transaction open."""
    async with retrieval_server(tmp_path, GatedEmbedder(), DictCache()) as (servicer, stub):
        await stub.UpsertDocuments(stream(DOCS[:1]))
        assert servicer.engine is not None
        database = servicer.engine.store._db
        pages = database.execute("PRAGMA page_count").fetchone()[0]
        database.execute(f"PRAGMA max_page_count = {pages}")
        big = retrieval_pb2.Document(id="big", title="Big", text="stripes and manes " * 5_000)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.UpsertDocuments(stream([big]))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        details = refused.value.details() or ""
        assert "data folder (LIKEOPT_DATA_DIR) is full; nothing of this write was stored" in details
        assert str(tmp_path) not in details  # the server's paths are the operator's, in the log
        assert [d for d, _, _ in servicer.engine.store.documents()] == ["zebra"]
        database.execute("PRAGMA max_page_count = 1073741823")
        assert (await stub.UpsertDocuments(stream([big]))).upserted == 1


def test_a_data_folder_that_cannot_be_written_is_named_at_start(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StoreUnusable, match=r"cannot open the store .*a-file/store\.sqlite3: .*LIKEOPT_DATA_DIR must"):
        Store(tmp_path / "a-file" / "store.sqlite3")


async def test_a_result_cached_by_a_release_of_another_tokenizer_is_not_served(tmp_path: Path) -> None:
    """Replicas of two releases share cache_svc and the store during a rolling upgrade, and a release rolled back
    to reads what the newer one cached: under one index version, an entry one release's tokenizer ranked must not
    reach the other, whose BM25 may rank it otherwise. The entry is keyed as releases before the tokenizer was part
    of the key keyed it."""
    cache = DictCache()
    async with retrieval_server(tmp_path, FakeEmbedder(), cache) as (servicer, stub):
        await stub.UpsertDocuments(stream(DOCS))
        assert servicer.engine is not None
        request = retrieval_pb2.SearchRequest(query="Zebra stripes", top_k=3, mode=retrieval_pb2.BM25)
        params, version = search_params(request, servicer.config), servicer.engine.version
        theirs = retrieval_pb2.SearchResponse(index_version=version, hits=[retrieval_pb2.SearchHit(doc_id="theirs")])
        cache.values[("search", cache_key(normalise_query(request.query), params, version))] = (
            theirs.SerializeToString()
        )
        response = await stub.Search(request)
        assert [hit.doc_id for hit in response.hits][:1] == ["zebra"]
        assert not response.cached
