"""A batch of documents embedded, then checked against the store and stored as one step.

A write's documents are checked (another tenant's id, a widening it asked to refuse) before their slow embedding, so
a refused one costs nothing; but the store can change while they embed, another tenant storing one of their ids
meanwhile. Stored on the strength of the first check, the later write would replace that tenant's document, both
writers told "upserted" and no access change named. So the checks run again on the accesses stored just before the
batch is, while no other write of this process checks or stores, and only what still passes is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from likeopt.v1 import retrieval_pb2
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentInput, RetrievalBackend
from retrieval_svc.cancellable_writes import raise_if_stopped

Refusal = Callable[[DocumentInput, Access | None], str | None]
"""Why a document may not replace the stored one of that access (None: there is none), or None."""


@dataclass
class StoredBatch:
    """What of a batch was stored, what it replaced, and what the checks at the store refused."""

    docs: list[DocumentInput]
    chunks: int
    version: int
    before: dict[str, Access]
    """The access stored under each id of the batch just before it was stored, for those there was one."""
    skipped: list[retrieval_pb2.SkippedDocument]


def embedded_and_stored(
    engine: RetrievalBackend,
    docs: Sequence[DocumentInput],
    chunked: Sequence[list[str]],
    refusal: Refusal,
    storing: threading.Lock,
) -> StoredBatch:
    """Embed docs, then, holding storing (every write's check and store in this process), check each against the
    stored access of its id and store those that pass (in a worker thread, as Writes.run runs it)."""
    embeddings = engine.embed(docs, chunked)
    raise_if_stopped()  # the last look before anything is stored
    ends = np.cumsum([len(chunks) for chunks in chunked])
    with storing:
        before = engine.accesses_of([doc.id for doc in docs])
        kept, skipped = [], []
        for n, doc in enumerate(docs):
            if reason := refusal(doc, before.get(doc.id)):
                skipped.append(retrieval_pb2.SkippedDocument(id=doc.id, reason=reason))
            else:
                kept.append(n)
        if not kept:
            return StoredBatch([], 0, engine.version, {}, skipped)
        rows = np.concatenate([np.arange(ends[n] - len(chunked[n]), ends[n]) for n in kept])
        stored_docs, stored_chunks = [docs[n] for n in kept], [chunked[n] for n in kept]
        version = engine.store_embedded(stored_docs, stored_chunks, embeddings[rows])
    return StoredBatch(stored_docs, len(rows), version, before, skipped)
