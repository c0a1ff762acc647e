"""RetrievalService over gRPC: each RPC checks its caller and request, then hands the work to the engine through
the modules beside this one (search_results.py for searches, ingestion.py for writes), and answers in the
contract's messages and statuses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from likeopt.caching.cache_client import CacheClient
from likeopt.caching.cache_keys import normalise_query
from likeopt.caching.single_flight import SingleFlight
from likeopt.runtime.config import STOP_GRACE_S, Config
from likeopt.runtime.contract import (
    LIST_LIMIT,
    SEARCH_BATCH,
    check_listed_ids,
    check_query,
    rejects_invalid_input,
    shown_id,
)
from likeopt.runtime.principal import BadPrincipal, Principal, Reader, principal_in, reader_of
from likeopt.runtime.telemetry import note_near_hit
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.backend import BackendRefused, BackendUnavailable, RetrievalBackend
from retrieval_svc.cancellable_writes import Writes, WritesStopped
from retrieval_svc.document_checks import log_deleted, undeletable
from retrieval_svc.ingestion import ingested
from retrieval_svc.reachability import Reachability
from retrieval_svc.search_messages import search_params
from retrieval_svc.search_results import SearchResults, search_batch_now
from retrieval_svc.search_threads import in_pool, search_pool
from retrieval_svc.version_feed import VersionFeed

log = logging.getLogger(__name__)

T = TypeVar("T")


async def abort_for_backend(context: grpc.aio.ServicerContext, exc: BackendUnavailable | BackendRefused) -> None:
    """An unreachable backend (Milvus down) answers UNAVAILABLE, a status clients retry on; a call it refused
    answers INTERNAL, logged here with the backend's reason (clients see only that it failed)."""
    if isinstance(exc, BackendRefused):
        log.error("retrieval backend refused a call", extra={"fields": {"error": str(exc)}})
        await context.abort(grpc.StatusCode.INTERNAL, str(exc))
    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


WRITES_FINISH_WITHIN_S = STOP_GRACE_S / 4
"""How long a stopping service lets the writes in flight go on: long enough for an upload of a few documents, and
short enough that a batch it abandons then stops embedding (at its next slice: about 9 s of 16 texts a worker on
two overloaded cores) before the grace ends."""


async def abort_for_stop(context: grpc.aio.ServicerContext, stored: int) -> None:
    """A write cut short by the service stopping answers UNAVAILABLE (clients retry on it), saying what is stored."""
    log.info("write abandoned: the service is stopping", extra={"fields": {"stored_documents": stored}})
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        f"retrieval_svc is stopping: {stored} documents of this call were stored before that; the batch it was"
        " embedding was abandoned (nothing of it stored) and the documents after it were not read, send them"
        " again once it is back",
    )


def backend_errors_as_status(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Backend failures as their gRPC status at once (abort_for_backend), never UNKNOWN."""

    @functools.wraps(method)
    async def call(self: object, request: object, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except (BackendUnavailable, BackendRefused) as exc:
            await abort_for_backend(context, exc)
            raise  # abort raises; this only tells the type checker

    return call


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Serves searches and ingestion once the engine is loaded."""

    def __init__(self, config: Config, cache: CacheClient, reachable: Reachability | None = None) -> None:
        self.config = config
        self.reachable = reachable or Reachability()
        """Whether the backend's server answers: while it does not, the loading waits for it."""
        self.engine: RetrievalBackend | None = None
        self.versions = VersionFeed()
        self.writes = Writes()
        self._search_pool = search_pool()
        self.results = SearchResults(config, cache, self._search_pool)
        self._following: SingleFlight[int] = SingleFlight()
        self._catch_ups = 0
        """Catch-ups started so far, numbering each: one numbered above what a search saw as it came read the store
        after the search came, so after any write its caller saw acknowledged."""
        self._absent_logged: int | None = None
        """The index version at which a search last asked for a version the store does not hold: logged once per
        version, as a client holding such a number asks for it again with every search."""

    def serve(self, engine: RetrievalBackend) -> None:
        """Start answering from engine (loaded)."""
        self.engine = engine
        self.index_changed()

    async def close(self) -> None:
        """Wait for the work still running in threads (a search past the drain's grace, an ingestion batch, a
        catch-up with other writers), then close the engine: closing it under a running thread can crash the
        process in native code."""
        await asyncio.to_thread(self._search_pool.shutdown, True)
        await asyncio.get_running_loop().shutdown_default_executor()
        if self.engine is not None:
            self.engine.close()

    def drain_begins(self) -> None:
        """End what would keep the drain waiting: the index watches at once, as they never end by themselves; the
        writes after WRITES_FINISH_WITHIN_S, as an upload sent just before the stop should still be stored, but an
        ingestion's embedding can outlast the grace (their clients are told what was stored)."""
        self.versions.close()
        asyncio.get_running_loop().call_later(WRITES_FINISH_WITHIN_S, self.writes.stop_all)

    def index_changed(self) -> None:
        """Tell watchers the engine's version; called after every write and catch-up."""
        if self.engine is not None:
            self.versions.publish(self.engine.version)

    async def follow(self) -> int:
        """Catch up with the writes other processes committed (the writer's store, or a shared Milvus), once for
        every concurrent caller: follow_writers' ticks and searches asking for a newer version share one catch-up,
        so two never apply the same changes at once. Returns the number of the catch-up waited for (_catch_ups).
        Raises BackendUnavailable when the backend's server is away."""
        engine = self.engine
        if engine is None:
            return self._catch_ups
        return await self._following.run(None, lambda: self._refreshed(engine))

    async def _refreshed(self, engine: RetrievalBackend) -> int:
        """One catch-up, numbered as it starts: it reads the store after that."""
        self._catch_ups += 1
        number = self._catch_ups
        if await asyncio.to_thread(engine.refresh):
            self.index_changed()
        return number

    async def _reach(self, engine: RetrievalBackend, version: int) -> None:
        """Catch up before a search that must reflect version (a write the caller saw acknowledged), rather than
        answer from an older index until the next tick of follow_writers: until a catch-up that started after the
        search came has read the store (one already running may have read it before the write was committed).

        Still older then, no store holds version (a number from another store, or from one since started
        afresh): only this search answers from what the store holds, as every replica would. That costs it at most
        one catch-up of its own (a read of the store's version when nothing changed), shared with the searches
        waiting then, and the next search asking for a version the store does hold still catches up first."""
        came = self._catch_ups
        if await self.follow() <= came and engine.version < version:
            await self.follow()  # the first was running as the search came; this one started after it
        if engine.version < version and self._absent_logged != engine.version:
            self._absent_logged = engine.version
            log.info(
                "asked for an index version the store does not hold",
                extra={"fields": {"asked": version, "index_version": engine.version}},
            )

    async def _principal(self, context: grpc.aio.ServicerContext) -> Principal | None:
        """The caller Envoy verified (LIKEOPT_AUTH=jwt), None for a call from inside the mesh; a header that
        does not parse is refused rather than read as no principal, which would see everything."""
        try:
            return principal_in(context.invocation_metadata(), self.config)
        except BadPrincipal as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise  # abort raises; this only tells the type checker

    async def _reader(self, context: grpc.aio.ServicerContext) -> Reader | None:
        return reader_of(await self._principal(context))

    async def _ready_engine(self, context: grpc.aio.ServicerContext) -> RetrievalBackend:
        if self.engine is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the index is still loading")
        return self.engine  # type: ignore[return-value]

    async def _writable_engine(self, context: grpc.aio.ServicerContext) -> RetrievalBackend:
        """The engine, unless this replica only follows the writer (then FAILED_PRECONDITION)."""
        if self.engine is not None and self.engine.read_only:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this retrieval_svc replica is read-only; send writes to the writer",
            )
        return await self._ready_engine(context)

    @backend_errors_as_status
    @rejects_invalid_input
    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.SearchResponse:
        started = time.perf_counter()
        engine = await self._ready_engine(context)
        reader = await self._reader(context)
        query = normalise_query(check_query(request.query))
        params, use_cache = search_params(request, self.config, reader), not request.no_cache
        await self._catch_up(engine, request.min_index_version)
        version = engine.version
        shared = self.results.recent.get((query, params), version) if use_cache else None
        if shared is not None:
            note_near_hit("search")
        else:
            shared = await self.results.flights.run(
                (query, params, use_cache, version), lambda: self.results.result(engine, query, params, use_cache)
            )
        response = retrieval_pb2.SearchResponse()
        response.CopyFrom(shared)  # every caller of a shared or recent result gets its own copy to stamp
        if request.return_query_embedding:
            response.query_embedding.extend((await self.results.query_vector(engine, query, reader)).tolist())
        response.took_ms = (time.perf_counter() - started) * 1000
        return response

    async def _catch_up(self, engine: RetrievalBackend, least_version: int) -> None:
        """Before a search: the writes of other replicas (a shared-version backend), and the version asked for."""
        if engine.shared_version and await in_pool(self._search_pool, engine.refresh):
            self.index_changed()  # another replica wrote: nothing cached under the old version may answer
        if least_version > engine.version and not engine.shared_version:  # a shared one is read above
            await self._reach(engine, least_version)  # the caller saw a write not followed yet

    @backend_errors_as_status
    @rejects_invalid_input
    async def SearchBatch(
        self, request: retrieval_pb2.SearchBatchRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.SearchBatchResponse:
        started = time.perf_counter()
        engine = await self._ready_engine(context)
        reader = await self._reader(context)
        SEARCH_BATCH.check(len(request.queries))
        queries = [normalise_query(check_query(query)) for query in request.queries]
        params = search_params(request.parameters, self.config, reader)
        await self._catch_up(engine, request.parameters.min_index_version)
        dense = params.mode != "bm25"
        vectors = await self.results.query_vectors(engine, queries, reader) if dense else [None] * len(queries)
        responses = await in_pool(self._search_pool, search_batch_now, engine, queries, params, vectors)
        for response in responses:
            response.took_ms = (time.perf_counter() - started) * 1000
        return retrieval_pb2.SearchBatchResponse(responses=responses)

    @backend_errors_as_status
    async def UpsertDocuments(
        self, request_iterator: AsyncIterator[retrieval_pb2.Document], context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.UpsertSummary:
        engine = await self._writable_engine(context)
        writer = await self._principal(context)
        summary = retrieval_pb2.UpsertSummary(index_version=engine.version)
        stored: set[str] = set()  # an id sent twice may be written in two batches; it is one document
        try:
            async for progress in ingested(engine, request_iterator, writer, self.index_changed, self.writes):
                stored.update(progress.ids)
                summary.upserted = len(stored)
                summary.chunks += progress.chunks
                summary.index_version = max(summary.index_version, progress.index_version)
                summary.skipped.extend(progress.skipped)
                summary.access_changes.extend(progress.access_changes)
        except WritesStopped:
            await abort_for_stop(context, len(stored))
        return summary

    async def IngestDocuments(
        self, request_iterator: AsyncIterator[retrieval_pb2.Document], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[retrieval_pb2.IngestProgress]:
        engine = await self._writable_engine(context)
        writer = await self._principal(context)
        stored: set[str] = set()
        try:
            async for progress in ingested(engine, request_iterator, writer, self.index_changed, self.writes):
                stored.update(progress.ids)
                yield progress
        except (BackendUnavailable, BackendRefused) as exc:  # the batches acknowledged so far are stored
            await abort_for_backend(context, exc)
        except WritesStopped:
            await abort_for_stop(context, len(stored))

    @backend_errors_as_status
    async def DeleteDocuments(
        self, request: retrieval_pb2.DeleteDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.DeleteDocumentsResponse:
        engine = await self._writable_engine(context)
        writer = await self._principal(context)
        ids = list(dict.fromkeys(request.ids))
        ids, refused, deleted, version = await asyncio.to_thread(self._checked_delete, engine, ids, writer)
        self.index_changed()
        log_deleted(ids, deleted, version, writer)
        return retrieval_pb2.DeleteDocumentsResponse(deleted=deleted, index_version=version, skipped=refused)

    def _checked_delete(
        self, engine: RetrievalBackend, ids: list[str], writer: Principal | None
    ) -> tuple[list[str], list[retrieval_pb2.SkippedDocument], int, int]:
        """Delete ids but another tenant's documents (a writer whose token names a tenant may not delete them), whose
        they are read and the rest deleted while no write of this process checks or stores (Writes.storing): else a
        document stored in between under one of ids would go with them. Returns (ids deleted or absent, refusals,
        how many existed, the version after)."""
        with self.writes.storing:
            refused: list[retrieval_pb2.SkippedDocument] = []
            if writer is not None and writer.tenant:
                others = {i: a for i, a in engine.accesses_of(ids).items() if a.tenant != writer.tenant}
                refused = undeletable([doc_id for doc_id in ids if doc_id in others], others, writer)
                ids = [doc_id for doc_id in ids if doc_id not in others]
            deleted, version = engine.delete(ids)
        return ids, refused, deleted, version

    async def WatchIndex(
        self, request: retrieval_pb2.WatchIndexRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[retrieval_pb2.IndexVersion]:
        async for version in self.versions.watch():
            yield retrieval_pb2.IndexVersion(index_version=version)

    @backend_errors_as_status
    @rejects_invalid_input
    async def ListDocuments(
        self, request: retrieval_pb2.ListDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.ListDocumentsResponse:
        engine = await self._listing_engine(context)
        reader = await self._reader(context)
        limit = LIST_LIMIT.check(request.limit)
        ids = check_listed_ids(request.ids)
        version = engine.version
        # One more than asked says whether another page follows.
        page, total = await asyncio.to_thread(engine.list_documents, request.after_id, limit + 1, reader, ids)
        reply = retrieval_pb2.ListDocumentsResponse(total=total, index_version=version)
        for doc in page[:limit]:
            reply.documents.add(id=doc.id, title=doc.title, metadata=doc.metadata, chunks=doc.chunks)
        if len(page) > limit:
            reply.next_after_id = page[limit - 1].id
        return reply

    @backend_errors_as_status
    async def GetDocument(
        self, request: retrieval_pb2.GetDocumentRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.StoredDocument:
        engine = await self._listing_engine(context)
        reader = await self._reader(context)
        version = engine.version
        doc = await asyncio.to_thread(engine.get_document, request.id, reader)
        if doc is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no document with id {shown_id(request.id)}")
        assert doc is not None  # abort raises
        chunks = [retrieval_pb2.DocumentChunk(chunk_id=f"{doc.id}#{n}", text=text) for n, text in doc.chunks]
        return retrieval_pb2.StoredDocument(
            id=doc.id, title=doc.title, metadata=doc.metadata, chunks=chunks, index_version=version
        )

    async def _listing_engine(self, context: grpc.aio.ServicerContext) -> RetrievalBackend:
        """The engine, caught up with other writers (a listing must not miss another replica's write)."""
        engine = await self._ready_engine(context)
        if engine.shared_version and await in_pool(self._search_pool, engine.refresh):
            self.index_changed()
        return engine

    @backend_errors_as_status
    async def GetIndexStatus(
        self, request: retrieval_pb2.GetIndexStatusRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.IndexStatus:
        engine = self.engine
        reader = await self._reader(context)
        if engine is None:
            return retrieval_pb2.IndexStatus(ready=False, waiting_for=self.reachable.problem)
        stats = await asyncio.to_thread(engine.stats, reader)
        return retrieval_pb2.IndexStatus(
            documents=stats.documents,
            chunks=stats.chunks,
            index_version=engine.version,
            embedding_model=engine.embedder.model_name,
            embedding_dim=engine.embedder.dim,
            vector_index=stats.vector_index,
            ready=True,
            bm25_chunks=stats.bm25_chunks,
            vector_chunks=stats.vector_chunks,
            load_seconds=stats.load_seconds,
        )
