"""Copy an embedded store into Milvus (``likeopt migrate --to milvus``), and check the copy.

:func:`migrate` reads documents with their stored chunks and embeddings (nothing is embedded again) and
writes them through :meth:`MilvusBackend.store_embedded` in pages of whole documents, so every page is
acknowledged by Milvus and bumps the shared index version like any write. It reads one state of the store (one read
transaction), so a mesh may keep writing meanwhile: what it writes is copied by the next run.

It resumes after ``kill -9``: after each acknowledged page a marker in the meta collection records the store,
its version and the last chunk row copied. A run that finds the marker of the same store at the same version
skips every page up to that row without asking Milvus, and after it skips each document whose last chunk is
stored and whose next one is not (a page cut short by the kill is copied again: upserts are idempotent). A
marker of another store, or of this store at another version, is ignored and everything is copied again.
The collection is a copy of the store: documents it holds that the store does not (deleted from the store since
an earlier copy) are deleted from it, so running the command again after deletions converges.

A document the embedded store holds but Milvus cannot (a chunk, title or metadata over Milvus's size limits,
which the embedded engine does not have) is refused with the reason, as a live upload's would be, and the rest
of its page copied; every run names it again (resumed or not), and an older version of it in the collection is
deleted, so the collection never holds what the store no longer does.

:func:`verify` compares counts and how far searches agree: the share of each sample query's top 10 that the
embedded engine and Milvus have in common, per mode.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_svc.access import Access
from retrieval_svc.backend import ChunkHit, DocumentInput, RetrievalBackend, SearchParams
from retrieval_svc.milvus_backend import MilvusBackend
from retrieval_svc.store import Store, StoredChunk

log = logging.getLogger(__name__)

PAGE_CHUNKS = 2_000
"""Chunks written per page (whole documents, so a page may hold a few more)."""
MARKER = "migration"
"""The meta collection's key of the progress marker."""

Progress = Callable[[int, int], None]
"""Called after each page with (documents done, documents in the store)."""


@dataclass(frozen=True)
class Refused:
    """A document of the store that Milvus cannot hold, and why (a field over Milvus's size limits)."""

    id: str
    chunks: int
    reason: str


@dataclass(frozen=True)
class MigrationReport:
    """What a migration did."""

    documents: int
    chunks: int
    copied: int
    """Documents written by this run."""
    skipped: int
    """Documents an interrupted earlier run had stored already."""
    resumed: bool
    version: int
    removed: int = 0
    """Documents the collection held that the store no longer does (deleted from it since an earlier copy)."""
    refused: tuple[Refused, ...] = ()
    """Documents of the store Milvus cannot hold, in store order."""


@dataclass(frozen=True)
class StoredDocument:
    """A document of the store with its chunks in ordinal order."""

    id: str
    title: str
    metadata: dict[str, str]
    chunks: list[StoredChunk]
    access: Access = field(default_factory=Access)


def migrate(
    store_path: Path, backend: MilvusBackend, progress: Progress | None = None, page_chunks: int = PAGE_CHUNKS
) -> MigrationReport:
    """Copy the store at store_path into the loaded backend's collection; resumable (module docstring)."""
    if not store_path.is_file():
        raise FileNotFoundError(f"no embedded store at {store_path}")
    store = Store(store_path)
    try:
        with store.snapshot():  # a live writer may write, or renumber, while the copy runs
            report = _copy(store, store_path, backend, progress, page_chunks)
    finally:
        store.close()
    backend.refresh()
    return report


def _copy(
    store: Store, store_path: Path, backend: MilvusBackend, progress: Progress | None, page_chunks: int
) -> MigrationReport:
    """Copy one state of the store into the collection, page by page, resuming after the marker (migrate)."""
    source = {"store": str(store_path.resolve()), "store_version": store.version}
    marker = json.loads(backend.meta(MARKER) or "{}")
    resume = _same_source(marker, source) and backend.stats().chunks > 0  # not a collection emptied since
    resume_after = marker.get("row", 0) if resume else -1
    fields = {doc_id: (title, metadata) for doc_id, title, metadata in store.documents()}
    access = {doc_id: Access.from_json(text) for doc_id, text in store.access_lists()}
    total, chunks, copied, skipped, last_row = len(fields), 0, 0, 0, 0
    refused: list[Refused] = []
    for whole in pages(documents_of(store.chunks(), fields, access), page_chunks):
        chunks += sum(len(d.chunks) for d in whole)
        last_row = whole[-1].chunks[-1].row
        page = fitting(backend, whole, refused)  # on resumed pages too: every run names what it left out
        if last_row <= resume_after:
            skipped += len(page)
        else:
            todo = page if resume_after < 0 else incomplete(backend, page)
            skipped += len(page) - len(todo)
            copied += len(todo)
            if todo:
                write(backend, todo)
            backend.set_meta(MARKER, json.dumps({**source, "row": last_row, "complete": False}))
        if progress is not None:
            progress(copied + skipped + len(refused), total)
    removed = remove_others(backend, set(fields) - {r.id for r in refused})
    backend.flush()
    backend.set_meta(MARKER, json.dumps({**source, "row": last_row, "complete": True}))
    counts = {"copied": copied, "skipped": skipped, "removed": removed, "refused": len(refused)}
    log.info("migrated", extra={"fields": {**source, **counts}})
    return MigrationReport(total, chunks, copied, skipped, resume_after >= 0, backend.version, removed, tuple(refused))


def fitting(backend: MilvusBackend, page: list[StoredDocument], refused: list[Refused]) -> list[StoredDocument]:
    """The page's documents Milvus can hold; the others are added to refused with the reason, so one document
    over Milvus's limits neither stops the migration nor keeps its page out."""
    fit: list[StoredDocument] = []
    for doc in page:
        texts = [c.text for c in doc.chunks]
        if reason := backend.unfit(DocumentInput(doc.id, doc.title, "", doc.metadata, doc.access), texts):
            refused.append(Refused(doc.id, len(doc.chunks), reason))
        else:
            fit.append(doc)
    return fit


def remove_others(backend: MilvusBackend, kept: set[str]) -> int:
    """Delete the collection's documents that are not in kept (the store's): the collection is a copy of the
    store, so a document deleted from the store since an earlier copy goes too. Returns how many went."""
    others = sorted(backend.document_ids() - kept)
    return backend.delete(others)[0] if others else 0


def _same_source(marker: dict[str, Any], source: dict[str, Any]) -> bool:
    return marker.get("store") == source["store"] and marker.get("store_version") == source["store_version"]


def documents_of(
    chunks: Iterable[StoredChunk],
    fields: dict[str, tuple[str, dict[str, str]]],
    access: dict[str, Access] | None = None,
) -> Iterator[StoredDocument]:
    """The store's chunks (row order) grouped into documents, each with its access list (default: open).

    A document's chunks are consecutive rows (the store inserts them in one transaction); were they not,
    writing a document twice from parts would delete the first part, so that is refused.
    """
    done: set[str] = set()
    current: list[StoredChunk] = []
    for chunk in chunks:
        if current and chunk.doc_id != current[0].doc_id:
            yield _document(current, fields, done, access or {})
            current = []
        if chunk.doc_id in done:
            raise RuntimeError(f"the store's chunks of document {chunk.doc_id!r} are not consecutive rows")
        current.append(chunk)
    if current:
        yield _document(current, fields, done, access or {})


def _document(
    chunks: list[StoredChunk],
    fields: dict[str, tuple[str, dict[str, str]]],
    done: set[str],
    access: dict[str, Access],
) -> StoredDocument:
    doc_id = chunks[0].doc_id
    done.add(doc_id)
    title, metadata = fields[doc_id]
    return StoredDocument(
        doc_id, title, metadata, sorted(chunks, key=lambda c: c.ordinal), access.get(doc_id, Access())
    )


def pages(documents: Iterable[StoredDocument], page_chunks: int) -> Iterator[list[StoredDocument]]:
    """Whole documents, about page_chunks chunks a page."""
    page: list[StoredDocument] = []
    size = 0
    for doc in documents:
        page.append(doc)
        size += len(doc.chunks)
        if size >= page_chunks:
            yield page
            page, size = [], 0
    if page:
        yield page


def incomplete(backend: MilvusBackend, page: list[StoredDocument]) -> list[StoredDocument]:
    """The page's documents Milvus does not hold whole: their last chunk is missing, or a chunk past it is
    there (an older, longer version)."""
    probes = [f"{d.id}#{n}" for d in page for n in (len(d.chunks) - 1, len(d.chunks))]
    stored = backend.stored_chunks(probes)
    return [d for d in page if f"{d.id}#{len(d.chunks) - 1}" not in stored or f"{d.id}#{len(d.chunks)}" in stored]


def write(backend: MilvusBackend, documents: list[StoredDocument]) -> int:
    """Store documents with their stored embeddings; returns the new version."""
    vectors = np.vstack([c.embedding for d in documents for c in d.chunks])
    if vectors.shape[1] != backend.embedder.dim:
        raise ValueError(
            f"the store holds {vectors.shape[1]}-dimensional embeddings; the model makes {backend.embedder.dim}"
        )
    docs = [DocumentInput(d.id, d.title, "", d.metadata, d.access) for d in documents]
    return backend.store_embedded(docs, [[c.text for c in d.chunks] for d in documents], vectors)


@dataclass(frozen=True)
class VerifyReport:
    """Counts on both sides, and the mean share of the top 10 both return, per search mode."""

    embedded_documents: int
    embedded_chunks: int
    milvus_documents: int
    milvus_chunks: int
    parity: dict[str, float]
    refused_documents: int = 0
    """Documents of the store the migration refused (Milvus cannot hold them), with their chunks below."""
    refused_chunks: int = 0

    @property
    def counts_match(self) -> bool:
        """Milvus holds the store less what the migration refused."""
        expected = (self.embedded_documents - self.refused_documents, self.embedded_chunks - self.refused_chunks)
        return expected == (self.milvus_documents, self.milvus_chunks)


def verify(
    embedded: RetrievalBackend,
    backend: MilvusBackend,
    sample_queries: Sequence[str],
    modes: Sequence[str] = ("bm25", "dense", "hybrid"),
    refused: Sequence[Refused] = (),
) -> VerifyReport:
    """Compare a loaded embedded engine with the Milvus copy of its store, which lacks the refused documents.

    Both search with the same query vector, so the figure measures the indexes alone: BM25 differs by
    Milvus's per-segment statistics, dense by an approximate index past its size.
    """
    own = embedded.stats()
    stats = backend.stats()
    parity: dict[str, float] = {}
    left_out = {r.id for r in refused}
    for mode in modes:
        params = SearchParams(top_k=10, mode=mode, fusion="rrf", rrf_k=60, alpha=0.5)
        shares = []
        for query in sample_queries:
            vector = backend.embed_query(query) if mode != "bm25" else None
            ours = chunk_ids([h for h in embedded.search(query, params, vector) if h.doc_id not in left_out])
            theirs = chunk_ids(backend.search(query, params, vector))
            shares.append(len(set(ours) & set(theirs)) / max(len(ours), len(theirs)) if ours or theirs else 1.0)
        parity[mode] = sum(shares) / len(shares) if shares else 1.0
    lacking = (len(refused), sum(r.chunks for r in refused))
    return VerifyReport(own.documents, own.chunks, stats.documents, stats.chunks, parity, *lacking)


def chunk_ids(hits: Sequence[ChunkHit]) -> list[str]:
    """``doc_id#ordinal`` of each hit, as chunk ids are written everywhere."""
    return [f"{hit.doc_id}#{hit.ordinal}" for hit in hits]
