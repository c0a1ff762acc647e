"""RetrievalService over gRPC: validation, caching and translation around the engine.

CPU-bound work runs in worker threads, with the context copied so trace spans stay
connected. Searches (query embedding, index search) share one thread per core: on two
cores eight concurrent searches then finish one pair after another instead of all
together at the end, which halves the median wait for the same work. Ingestion and
deletes use asyncio's default pool, so a long upload never holds a search's thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import grpc
import numpy as np

from likeopt.caching.cache_client import CacheClient
from likeopt.caching.cache_keys import cache_key, normalise_query
from likeopt.caching.lookup_policy import LookupPolicy
from likeopt.caching.near_cache import VersionedLRU
from likeopt.caching.single_flight import SingleFlight
from likeopt.runtime.config import Config
from likeopt.runtime.contract import (
    LIST_LIMIT,
    MAX_DOCUMENT_CHARS,
    MAX_ID_CHARS,
    SEARCH_BATCH,
    SEARCH_TOP_K,
    WIDER_ACCESS_REFUSED,
    check_fusion,
    check_listed_ids,
    check_mode,
    check_query,
    rejects_invalid_input,
    shown_id,
)
from likeopt.runtime.principal import BadPrincipal, Principal, Reader, principal_in, reader_of
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from retrieval_svc.access import Access
from retrieval_svc.backend import (
    BackendRefused,
    BackendUnavailable,
    ChunkHit,
    DocumentInput,
    RetrievalBackend,
    SearchParams,
    UnfitDocument,
)
from retrieval_svc.cancellable_writes import stoppable
from retrieval_svc.version_feed import VersionFeed

log = logging.getLogger(__name__)

UPSERT_BATCH_CHARS = 200_000
"""Text per ingestion batch: about 200 chunks, so each embedding call fills and length-sorts its model batches."""
UPSERT_BATCH_DOCS = 256
T = TypeVar("T")
EMBEDDING_VERSION = 0
"""Query embeddings do not change with the index: all are stored under this one version."""


async def in_pool(pool: ThreadPoolExecutor, func: Callable[..., T], *args: object) -> T:
    """asyncio.to_thread on a given pool: the context (the current span) goes along."""
    call = functools.partial(contextvars.copy_context().run, func, *args)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


async def abort_for_backend(context: grpc.aio.ServicerContext, exc: BackendUnavailable | BackendRefused) -> None:
    """An unreachable backend (Milvus down) answers UNAVAILABLE, a status clients retry on; a call it refused
    answers INTERNAL, logged here with the backend's reason (clients see only that it failed)."""
    if isinstance(exc, BackendRefused):
        log.error("retrieval backend refused a call", extra={"fields": {"error": str(exc)}})
        await context.abort(grpc.StatusCode.INTERNAL, str(exc))
    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


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


def search_params(request: retrieval_pb2.SearchRequest, config: Config, reader: Reader | None = None) -> SearchParams:
    """Validated parameters of a search request, defaults filled in; reader restricts it to what it may read."""
    top_k = SEARCH_TOP_K.check(request.top_k)
    mode = check_mode(request.mode)
    fusion = {retrieval_pb2.RRF: "rrf", retrieval_pb2.CONVEX: "convex"}.get(request.fusion, config.fusion)
    alpha = request.alpha if request.HasField("alpha") else config.fusion_alpha
    rrf_k = request.rrf_k or config.rrf_k
    check_fusion(alpha, rrf_k)
    return SearchParams(
        top_k=top_k,
        mode=mode,
        fusion=fusion,
        rrf_k=rrf_k,
        alpha=alpha,
        filters=tuple(sorted(request.filters.items())),
        per_document=request.per_document,
        reader=reader,
        document_weight=config.document_weight,
    )


def document_access(doc: retrieval_pb2.Document, writer: Principal | None) -> Access | str:
    """Who may read a document being written, or why it may not be written.

    No access given means the writer's whole tenant. A writer whose token names a tenant writes into that
    tenant only: an access without a tenant gets the writer's, one naming another tenant is refused.
    """
    access = Access.of(doc.access.tenant, doc.access.users, doc.access.groups) if doc.HasField("access") else Access()
    if writer is not None and writer.tenant:
        if access.tenant and access.tenant != writer.tenant:
            return f"a writer of tenant {writer.tenant!r} may not write documents of tenant {access.tenant!r}"
        access = Access(writer.tenant, access.users, access.groups)
    return access.problem() or access


DOT_SEGMENTS = frozenset({".", ".."})
"""Path segments HTTP clients and Envoy resolve away (``a/./b``, ``a/../b``): a document id holding one could not be
named in ``/api/v1/documents/{id}``, and a request for it would reach another document. (An empty segment, as in a
URL used as an id, stays allowed: ``https://…`` ids are common, and such a document is named with ``%2F``.)"""
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
REPEATED_ID = "the id appears more than once in this upload: the last one is stored"


def document_problem(doc: retrieval_pb2.Document) -> str | None:
    """Why a document cannot be stored, or None when it can."""
    if not doc.id.strip():
        return "id is empty"
    if len(doc.id) > MAX_ID_CHARS:
        return f"id is longer than {MAX_ID_CHARS} characters"
    if not doc.text.strip() and not doc.title.strip():
        return "title and text are empty"
    if max(len(doc.text), len(doc.title)) > MAX_DOCUMENT_CHARS:
        return f"text or title is longer than {MAX_DOCUMENT_CHARS} characters"
    if any(segment in DOT_SEGMENTS for segment in doc.id.split("/")):
        return "id has a '.' or '..' segment between slashes: a URL could not name it"
    if any("\x00" in field for field in (doc.text, doc.id, doc.title, *doc.metadata.keys(), *doc.metadata.values())):
        return "contains NUL characters"
    if CONTROL_CHARACTER.search(doc.id):
        return "id has a control character (a line break, a tab…): a URL could not name it, nor a list show it"
    return None


def document_input(doc: retrieval_pb2.Document, access: Access) -> DocumentInput:
    """doc as the backends take it. A document with only a title (BEIR corpora have some) is stored with its
    title as its text: it is all there is to find it by."""
    if not doc.text.strip():
        return DocumentInput(doc.id, "", doc.title, dict(doc.metadata), access)
    return DocumentInput(doc.id, doc.title, doc.text, dict(doc.metadata), access)


def chunk_each(
    engine: RetrievalBackend, docs: list[DocumentInput]
) -> tuple[list[DocumentInput], list[list[str]], list[retrieval_pb2.SkippedDocument]]:
    """The documents that can be chunked with their chunks, and the others refused with the reason."""
    fit: list[DocumentInput] = []
    chunked: list[list[str]] = []
    refused: list[retrieval_pb2.SkippedDocument] = []
    for doc in docs:
        try:
            chunked.append(engine.prepare(doc))
        except UnfitDocument as exc:
            refused.append(retrieval_pb2.SkippedDocument(id=doc.id, reason=str(exc)))
        else:
            fit.append(doc)
    return fit, chunked, refused


def undeletable(ids: list[str], others: dict[str, Access], writer: Principal) -> list[retrieval_pb2.SkippedDocument]:
    """Why each of ids (stored, their accesses in others, not of the writer's tenant) stays, for those the writer may
    read: it lists and fetches them, so "no such document" would be untrue. Those it may not read go unnamed, as
    unknown ids do, so that a delete tells nothing of a document hidden from its caller."""
    reason = f"only documents of tenant {writer.tenant!r} may be deleted with this token, and this is not one"
    return [
        retrieval_pb2.SkippedDocument(id=doc_id, reason=reason)
        for doc_id in ids
        if others[doc_id].readable_by(writer.reader)
    ]


def write_refusal(doc: DocumentInput, before: Access | None, writer: Principal | None, guarded: bool) -> str | None:
    """Why doc may not replace the stored document whose access is before (None: there is none), or None.

    A writer whose token names a tenant may not replace another tenant's document; a write that asked not to widen
    who may read a stored document (Document.refuse_wider_access) may not widen it.
    """
    if before is None:
        return None
    if writer is not None and writer.tenant and before.tenant != writer.tenant:
        return f"a document of another tenant than {writer.tenant!r} has this id"
    if guarded and doc.access.widens(before):
        return f'{WIDER_ACCESS_REFUSED}: "{before.described()}" → "{doc.access.described()}"'
    return None


def access_changes(docs: list[DocumentInput], stored: dict[str, Access]) -> list[retrieval_pb2.AccessChange]:
    """One message per document of docs that replaced a stored one of another access list."""
    return [
        retrieval_pb2.AccessChange(
            id=doc.id,
            before=stored[doc.id].described(),
            after=doc.access.described(),
            widened=doc.access.widens(stored[doc.id]),
        )
        for doc in docs
        if doc.id in stored and stored[doc.id] != doc.access
    ]


def log_access_changes(changes: list[retrieval_pb2.AccessChange], writer: Principal | None) -> None:
    """A WARNING per change, the audit trail of who may read what: the id, both lists and the writer (none: the
    API key, or a caller inside the mesh such as likeopt ingest); never the text."""
    who = {"writer": writer.subject, "writer_tenant": writer.tenant} if writer is not None else {"writer": ""}
    for change in changes:
        fields = {"doc_id": change.id, "before": change.before, "after": change.after, "widened": change.widened}
        log.warning("document access changed", extra={"fields": {**fields, **who}})


def hit_message(hit: ChunkHit) -> retrieval_pb2.SearchHit:
    """A ranked chunk as the SearchHit clients receive, text and document fields included."""
    return retrieval_pb2.SearchHit(
        doc_id=hit.doc_id,
        chunk_id=f"{hit.doc_id}#{hit.ordinal}",
        title=hit.title,
        text=hit.text,
        score=hit.score,
        bm25_score=hit.bm25_score,
        dense_score=hit.dense_score,
        bm25_rank=hit.bm25_rank,
        dense_rank=hit.dense_rank,
        metadata=hit.metadata,
    )


def search_response(version: int, hits: list[ChunkHit]) -> retrieval_pb2.SearchResponse:
    return retrieval_pb2.SearchResponse(index_version=version, hits=[hit_message(hit) for hit in hits])


def search_pool() -> ThreadPoolExecutor:
    """The threads searches run in: one per core, since a search's encoder and scans are one thread each (more
    only shared the cores and lengthened p95; benchmarks/README.md, "Four search threads")."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="search")


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Serves searches and ingestion once the engine is loaded."""

    def __init__(self, config: Config, cache: CacheClient) -> None:
        self.config = config
        self.cache = cache
        self.engine: RetrievalBackend | None = None
        self.versions = VersionFeed()
        self._search_pool = search_pool()
        self._results: SingleFlight[retrieval_pb2.SearchResponse] = SingleFlight()
        self._lookups = LookupPolicy("search")
        self._embeddings: SingleFlight[np.ndarray] = SingleFlight()
        self._following: SingleFlight[int] = SingleFlight()
        self._catch_ups = 0
        """Catch-ups started so far, numbering each: one numbered above what a search saw as it came read the store
        after the search came, so after any write its caller saw acknowledged."""
        self._absent_logged: int | None = None
        """The index version at which a search last asked for a version the store does not hold: logged once per
        version, as a client holding such a number asks for it again with every search."""
        self._recent: VersionedLRU[retrieval_pb2.SearchResponse] = VersionedLRU(
            "search", config.near_cache_entries, config.near_cache_bytes
        )
        """Recent results in process, in front of cache_svc: a repeated search skips that hop."""
        self._vectors: VersionedLRU[np.ndarray] = VersionedLRU(
            "embedding", config.near_cache_entries, config.near_cache_bytes // 4
        )
        """Query embeddings in process only: they do not depend on the index (one constant version), and a
        miss in cache_svc as well would have cost two more round trips on every uncached search."""

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
        shared = self._recent.get((query, params), version) if use_cache else None
        if shared is None:
            shared = await self._results.run(
                (query, params, use_cache, version), lambda: self._result(engine, query, params, use_cache)
            )
        response = retrieval_pb2.SearchResponse()
        response.CopyFrom(shared)  # every caller of a shared or recent result gets its own copy to stamp
        if request.return_query_embedding:
            response.query_embedding.extend((await self._query_vector(engine, query)).tolist())
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
        vectors = await self._query_vectors(engine, queries) if params.mode != "bm25" else [None] * len(queries)
        responses = await in_pool(self._search_pool, self._search_batch, engine, queries, params, vectors)
        for response in responses:
            response.took_ms = (time.perf_counter() - started) * 1000
        return retrieval_pb2.SearchBatchResponse(responses=responses)

    async def _query_vectors(self, engine: RetrievalBackend, queries: list[str]) -> list[np.ndarray | None]:
        """Each query's embedding: those remembered in process, the others computed in one task."""
        known = {query: self._vectors.get(query, EMBEDDING_VERSION) for query in queries}
        missing = [query for query, vector in known.items() if vector is None]
        if missing:
            computed = await in_pool(self._search_pool, lambda: [engine.embed_query(query) for query in missing])
            for query, vector in zip(missing, computed, strict=True):
                self._vectors.put(query, EMBEDDING_VERSION, vector, vector.nbytes + len(query))
                known[query] = vector
        return [known[query] for query in queries]

    async def _result(
        self, engine: RetrievalBackend, query: str, params: SearchParams, use_cache: bool
    ) -> retrieval_pb2.SearchResponse:
        """The response from the result cache, else computed (and cached); run once per concurrent identical search."""
        version = engine.version
        key = cache_key(query, params, version)
        if use_cache and (cached := await self._looked_up(key)) is not None:
            response = retrieval_pb2.SearchResponse.FromString(cached)
            response.cached = True
            self._remember(query, params, response, len(cached))
            return response
        response = await self._computed(engine, query, params)
        if use_cache and response.index_version == version:
            serialized = response.SerializeToString()
            self.cache.set_later("search", key, serialized)
            self._remember(query, params, response, len(serialized))
        return response

    async def _looked_up(self, key: str) -> bytes | None:
        """The result cache_svc holds for key, when a lookup is worth asking for (likeopt/caching/lookup_policy.py)."""
        if not self._lookups.should_ask():
            return None
        cached = await self.cache.get("search", key)
        self._lookups.record(cached is not None)
        return cached

    def _remember(self, query: str, params: SearchParams, response: retrieval_pb2.SearchResponse, size: int) -> None:
        """Keep a result near for repeats, marked cached as a repeat will see it (a fresh one is copied to be
        marked: its flight's callers still copy it as it is; nobody changes either afterwards)."""
        recent = response
        if not response.cached:
            recent = retrieval_pb2.SearchResponse()
            recent.CopyFrom(response)
            recent.cached = True
        self._recent.put((query, params), response.index_version, recent, size)

    async def _computed(
        self, engine: RetrievalBackend, query: str, params: SearchParams
    ) -> retrieval_pb2.SearchResponse:
        """The search done in the pool, the query embedded in the same task when it is new: one hand-over to a
        thread and back per uncached search instead of two."""
        if params.mode == "bm25":
            return await in_pool(self._search_pool, self._search, engine, query, params, None)
        if (vector := self._vectors.get(query, EMBEDDING_VERSION)) is not None:
            return await in_pool(self._search_pool, self._search, engine, query, params, vector)
        vector, response = await in_pool(self._search_pool, self._embed_and_search, engine, query, params)
        self._vectors.put(query, EMBEDDING_VERSION, vector, vector.nbytes + len(query))
        return response

    @classmethod
    def _embed_and_search(
        cls, engine: RetrievalBackend, query: str, params: SearchParams
    ) -> tuple[np.ndarray, retrieval_pb2.SearchResponse]:
        vector = engine.embed_query(query)
        return vector, cls._search(engine, query, params, vector)

    async def _query_vector(self, engine: RetrievalBackend, query: str) -> np.ndarray:
        """The query's embedding, remembered in process; computed once per concurrent query."""
        if (vector := self._vectors.get(query, EMBEDDING_VERSION)) is not None:
            return vector

        async def compute() -> np.ndarray:
            vector = await in_pool(self._search_pool, engine.embed_query, query)
            self._vectors.put(query, EMBEDDING_VERSION, vector, vector.nbytes + len(query))
            return vector

        return await self._embeddings.run(query, compute)

    @staticmethod
    def _search(
        engine: RetrievalBackend, query: str, params: SearchParams, vector: np.ndarray | None
    ) -> retrieval_pb2.SearchResponse:
        version = engine.version
        return search_response(version, engine.search(query, params, vector))

    @staticmethod
    def _search_batch(
        engine: RetrievalBackend, queries: list[str], params: SearchParams, vectors: list[np.ndarray | None]
    ) -> list[retrieval_pb2.SearchResponse]:
        version = engine.version
        return [search_response(version, hits) for hits in engine.search_batch(queries, params, vectors)]

    @backend_errors_as_status
    async def UpsertDocuments(
        self, request_iterator: AsyncIterator[retrieval_pb2.Document], context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.UpsertSummary:
        engine = await self._writable_engine(context)
        writer = await self._principal(context)
        summary = retrieval_pb2.UpsertSummary(index_version=engine.version)
        stored: set[str] = set()  # an id sent twice may be written in two batches; it is one document
        async for progress in self._ingest(engine, request_iterator, writer):
            stored.update(progress.ids)
            summary.upserted = len(stored)
            summary.chunks += progress.chunks
            summary.index_version = max(summary.index_version, progress.index_version)
            summary.skipped.extend(progress.skipped)
            summary.access_changes.extend(progress.access_changes)
        return summary

    async def IngestDocuments(
        self, request_iterator: AsyncIterator[retrieval_pb2.Document], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[retrieval_pb2.IngestProgress]:
        engine = await self._writable_engine(context)
        writer = await self._principal(context)
        try:
            async for progress in self._ingest(engine, request_iterator, writer):
                yield progress
        except (BackendUnavailable, BackendRefused) as exc:  # the batches acknowledged so far are stored
            await abort_for_backend(context, exc)

    async def _ingest(
        self,
        engine: RetrievalBackend,
        documents: AsyncIterator[retrieval_pb2.Document],
        writer: Principal | None = None,
    ) -> AsyncIterator[retrieval_pb2.IngestProgress]:
        """Commit the stream in batches; each progress message acknowledges one durable batch."""
        progress = retrieval_pb2.IngestProgress()
        batch: dict[str, DocumentInput] = {}
        guarded: set[str] = set()  # ids of the batch sent with refuse_wider_access
        seen: set[str] = set()
        size = 0
        async for doc in documents:
            problem = document_problem(doc)
            access = document_access(doc, writer) if problem is None else problem
            if isinstance(access, str):
                progress.skipped.append(retrieval_pb2.SkippedDocument(id=doc.id[:MAX_ID_CHARS], reason=access))
                continue
            if doc.id in seen:
                progress.skipped.append(retrieval_pb2.SkippedDocument(id=doc.id, reason=REPEATED_ID))
            seen.add(doc.id)
            batch[doc.id] = document_input(doc, access)
            if doc.refuse_wider_access:
                guarded.add(doc.id)
            else:
                guarded.discard(doc.id)  # the last copy of an id sent twice is the one written
            size += len(doc.text) + len(doc.title)
            if size >= UPSERT_BATCH_CHARS or len(batch) >= UPSERT_BATCH_DOCS:
                yield await self._commit(engine, list(batch.values()), progress, writer, guarded)
                progress, batch, guarded, size = retrieval_pb2.IngestProgress(), {}, set(), 0
        if batch or progress.skipped:
            yield await self._commit(engine, list(batch.values()), progress, writer, guarded)

    async def _commit(
        self,
        engine: RetrievalBackend,
        docs: list[DocumentInput],
        progress: retrieval_pb2.IngestProgress,
        writer: Principal | None,
        guarded: set[str],
    ) -> retrieval_pb2.IngestProgress:
        """Chunk, embed and store docs durably; progress, filled in, acknowledges them and names each stored
        document whose access they changed. guarded: the ids whose write must not widen it."""
        progress.index_version = engine.version
        stored = await asyncio.to_thread(engine.accesses_of, [d.id for d in docs]) if docs else {}
        allowed = []
        for doc in docs:
            if reason := write_refusal(doc, stored.get(doc.id), writer, doc.id in guarded):
                progress.skipped.append(retrieval_pb2.SkippedDocument(id=doc.id, reason=reason))
            else:
                allowed.append(doc)
        docs, chunked, unfit = await asyncio.to_thread(chunk_each, engine, allowed)
        progress.skipped.extend(unfit)
        if docs:
            progress.index_version = await stoppable(engine.upsert, docs, chunked)
            progress.ids.extend(d.id for d in docs)
            progress.chunks = sum(len(c) for c in chunked)
            progress.access_changes.extend(access_changes(docs, stored))
            log_access_changes(list(progress.access_changes), writer)
            self.index_changed()
            log.info("upserted", extra={"fields": {"documents": len(docs), "index_version": progress.index_version}})
        return progress

    @backend_errors_as_status
    async def DeleteDocuments(
        self, request: retrieval_pb2.DeleteDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.DeleteDocumentsResponse:
        engine = await self._writable_engine(context)
        writer = await self._principal(context)
        ids = list(dict.fromkeys(request.ids))
        refused: list[retrieval_pb2.SkippedDocument] = []
        if writer is not None and writer.tenant:  # another tenant's documents stay
            others = await self._others(engine, ids, writer.tenant)
            refused = undeletable([doc_id for doc_id in ids if doc_id in others], others, writer)
            ids = [doc_id for doc_id in ids if doc_id not in others]
        deleted, version = await asyncio.to_thread(engine.delete, ids)
        self.index_changed()
        return retrieval_pb2.DeleteDocumentsResponse(deleted=deleted, index_version=version, skipped=refused)

    @staticmethod
    async def _others(engine: RetrievalBackend, ids: list[str], tenant: str) -> dict[str, Access]:
        """The access of each of ids that is a stored document of another tenant (or of none): a writer whose
        token names a tenant may not delete them."""
        accesses = await asyncio.to_thread(engine.accesses_of, ids)
        return {doc_id: access for doc_id, access in accesses.items() if access.tenant != tenant}

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
            return retrieval_pb2.IndexStatus(ready=False)
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
