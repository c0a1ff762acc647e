"""A stream of documents being written, stored in durable batches: each checked (document_checks.py), then
chunked, embedded and committed, and each batch acknowledged as it is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from likeopt.runtime.contract import MAX_ID_CHARS
from likeopt.runtime.principal import Principal
from likeopt.v1 import retrieval_pb2
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentInput, RetrievalBackend
from retrieval_svc.cancellable_writes import Writes
from retrieval_svc.checked_store import embedded_and_stored
from retrieval_svc.document_checks import (
    REPEATED_ID,
    access_changes,
    changes_told,
    chunk_each,
    document_access,
    document_input,
    document_problem,
    log_access_changes,
    write_refusal,
)

log = logging.getLogger(__name__)

UPSERT_BATCH_CHARS = 200_000
"""Text per ingestion batch: about 200 chunks, so each embedding call fills and length-sorts its model batches."""
UPSERT_BATCH_DOCS = 256


async def ingested(
    engine: RetrievalBackend,
    documents: AsyncIterator[retrieval_pb2.Document],
    writer: Principal | None,
    index_changed: Callable[[], None],
    writes: Writes,
) -> AsyncIterator[retrieval_pb2.IngestProgress]:
    """Commit the stream in batches; each progress message acknowledges one durable batch. Raises WritesStopped
    once the stopping service abandons its writes: the batch being stored is abandoned and no more documents are
    read."""
    progress = retrieval_pb2.IngestProgress()
    batch: dict[str, DocumentInput] = {}
    guarded: set[str] = set()  # ids of the batch sent with refuse_wider_access
    seen: set[str] = set()
    size = 0
    async for doc in documents:
        writes.refuse_if_stopping()
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
            yield await committed(engine, list(batch.values()), progress, writer, guarded, index_changed, writes)
            progress, batch, guarded, size = retrieval_pb2.IngestProgress(), {}, set(), 0
    if batch or progress.skipped:
        yield await committed(engine, list(batch.values()), progress, writer, guarded, index_changed, writes)


async def committed(
    engine: RetrievalBackend,
    docs: list[DocumentInput],
    progress: retrieval_pb2.IngestProgress,
    writer: Principal | None,
    guarded: set[str],
    index_changed: Callable[[], None],
    writes: Writes,
) -> retrieval_pb2.IngestProgress:
    """Chunk, embed and store docs durably; progress, filled in, acknowledges them and names each stored
    document whose access they changed. guarded: the ids whose write must not widen it."""
    progress.index_version = engine.version

    def refusal(doc: DocumentInput, before: Access | None) -> str | None:
        return write_refusal(doc, before, writer, doc.id in guarded)

    stored = await asyncio.to_thread(engine.accesses_of, [d.id for d in docs]) if docs else {}
    allowed = []
    for doc in docs:  # checked before embedding too, so that a refused document costs nothing
        if reason := refusal(doc, stored.get(doc.id)):
            progress.skipped.append(retrieval_pb2.SkippedDocument(id=doc.id, reason=reason))
        else:
            allowed.append(doc)
    docs, chunked, unfit = await asyncio.to_thread(chunk_each, engine, allowed)
    progress.skipped.extend(unfit)
    if docs:
        batch = await writes.run(embedded_and_stored, engine, docs, chunked, refusal, writes.storing)
        progress.skipped.extend(batch.skipped)
        if batch.docs:
            progress.index_version = batch.version
            progress.ids.extend(d.id for d in batch.docs)
            progress.chunks = batch.chunks
            changes = access_changes(batch.docs, batch.before)
            log_access_changes(changes, writer)
            progress.access_changes.extend(changes_told(changes, batch.before, writer))
            index_changed()
            log.info("upserted", extra={"fields": {"documents": len(batch.docs), "index_version": batch.version}})
    return progress
