"""Writes to a Milvus corpus: chunk rows checked against Milvus's field sizes before anything is stored, upserts
that replace a document without leaving it out of searches meanwhile, deletes, and the version bump after each."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from likeopt.runtime.contract import shown_id
from retrieval_svc.backend import (
    DocumentInput,
    UnfitDocument,
    check_chunk_tokens,
    chunk_document,
    chunk_texts,
    embedding_text,
)
from retrieval_svc.cancellable_writes import raise_if_stopped
from retrieval_svc.milvus_access import access_row_fields
from retrieval_svc.milvus_collection import VARCHAR_BYTES, MilvusCollection
from retrieval_svc.milvus_expressions import ids_filters
from retrieval_svc.milvus_reads import MilvusReads

MAX_JSON_BYTES = 65_536
"""The most a JSON field (a chunk's metadata) holds in Milvus, in bytes of its JSON text."""
WRITE_BATCH_ROWS = 500
"""Rows sent per insert call: bounds one message's size (a chunk and its vector are a few KB)."""


@dataclass(frozen=True)
class WriteBatch:
    """One upsert call's rows, and the documents whose last rows it holds (their new chunk counts): their stale
    chunks are deleted right after it."""

    rows: slice
    finished: dict[str, int]


class MilvusWrites:
    """Chunking, storing and deleting documents; one write at a time per process (Milvus orders the writes of
    every replica), each bumping the shared version once Milvus acknowledged it."""

    def __init__(self, milvus: MilvusCollection, reads: MilvusReads, chunk_tokens: int, chunk_overlap: int) -> None:
        check_chunk_tokens(chunk_tokens, milvus.embedder)
        self.milvus, self.reads = milvus, reads
        self.chunk_tokens, self.chunk_overlap = chunk_tokens, chunk_overlap
        self._write_lock = threading.Lock()

    def prepare(self, doc: DocumentInput) -> list[str]:
        """Split a document into chunks that fit the model's window with the title, and whose rows fit Milvus's
        fields (UnfitDocument saying why if not)."""
        chunks = chunk_document(doc, self.milvus.embedder, self.chunk_tokens, self.chunk_overlap)
        if problem := self.unfit(doc, chunks):
            raise UnfitDocument(problem)
        return chunks

    def unfit(self, doc: DocumentInput, chunks: Sequence[str]) -> str | None:
        """Why doc's rows, cut into chunks, would not fit Milvus's fields (said for the writer); None when they
        fit. A migration asks before writing, since the embedded store holds documents Milvus cannot."""
        if problem := oversized_metadata(doc.metadata):
            return problem
        for ordinal, chunk in enumerate(chunks):
            if problem := oversized(text_fields(doc, ordinal, chunk, self.milvus.bm25_text)):
                return problem
        return None

    def upsert(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> int:
        """Embed, then store (replacing earlier versions of the same ids); returns the new version."""
        embeddings = self.embed(docs, chunked)
        raise_if_stopped()  # the last look before anything is stored (a write of one slice has had none)
        return self.store_embedded(docs, chunked, embeddings)

    def embed(self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]]) -> np.ndarray:
        """Every chunk's embedding, in chunk order."""
        return self.milvus.embedder.encode(chunk_texts(docs, chunked))

    def store_embedded(
        self, docs: Sequence[DocumentInput], chunked: Sequence[list[str]], embeddings: np.ndarray, bump: bool = True
    ) -> int:
        """Store documents whose chunks are embedded already (in chunk order); returns the version.

        Rows are upserted by chunk id, then the chunks a document no longer has are deleted: a document
        being replaced is never missing from searches meanwhile (delete-then-insert would leave a gap).
        Milvus has no transactions, so each document's rows go in one call (write_batches) and its stale chunks
        are deleted just after it. The version is bumped only once Milvus acknowledged every call.
        """
        rows = chunk_rows(docs, chunked, embeddings, self.milvus.bm25_text)
        with self._write_lock, self.milvus.guarded():
            # the access classes before the chunks that name them
            self.milvus.access.record([d.access for d in docs], self.milvus.timeout_s)
            for batch in write_batches([d.id for d in docs], [len(chunks) for chunks in chunked]):
                if batch.rows.stop > batch.rows.start:
                    self.milvus.call("upsert", self.milvus.name, rows[batch.rows], timeout=self.milvus.timeout_s)
                for condition in stale_chunks_filters(batch.finished):
                    self.milvus.call("delete", self.milvus.name, filter=condition, timeout=self.milvus.timeout_s)
            return self.milvus.bump_version() if bump else self.milvus.version

    def flush(self) -> None:
        """Seal what was written into indexed segments; for the end of a bulk load, not every write.

        Milvus searches rows not yet sealed without their index: milvus-lite rebuilds a BM25 index over them
        for every search (0.7 s against 13 ms after a flush, at 3,000 chunks). A real Milvus seals segments
        on its own and rate-limits flush calls.
        """
        with self.milvus.guarded():
            self.milvus.call("flush", self.milvus.name, timeout=max(self.milvus.timeout_s, 120.0))

    def delete(self, doc_ids: Sequence[str]) -> tuple[int, int]:
        """Delete documents; returns (how many of them existed, the version after)."""
        ids = sorted(set(doc_ids))
        with self._write_lock, self.milvus.guarded():
            existing = self.reads.existing(ids)
            if not existing:
                return 0, self.milvus.version
            for ids, _ in ids_filters("doc_id", existing):
                self.milvus.call("delete", self.milvus.name, filter=ids, timeout=self.milvus.timeout_s)
            return len(existing), self.milvus.bump_version()


def text_fields(doc: DocumentInput, ordinal: int, chunk: str, bm25_text: Callable[[str], str]) -> dict[str, Any]:
    """A chunk row's VARCHAR fields (and its ordinal); ``search_text`` is bm25_text of the text the chunk is
    embedded as."""
    return {
        "chunk_id": f"{doc.id}#{ordinal}",
        "doc_id": doc.id,
        "ordinal": ordinal,
        "title": doc.title,
        "text": chunk,
        "search_text": bm25_text(embedding_text(doc.title, chunk)),
    }


def oversized(row: dict[str, Any]) -> str | None:
    """Which VARCHAR field of a chunk row is longer than Milvus stores, said for the writer; None if none is."""
    for name, most in VARCHAR_BYTES.items():
        size = len(row[name].encode())
        if size > most:
            where = "" if name in ("doc_id", "title") else f" of chunk {row['ordinal']}"
            return f"{name}{where} is {size:,} bytes in UTF-8; Milvus stores at most {most:,}"
    return None


def oversized_metadata(metadata: dict[str, str]) -> str | None:
    """Why a document's metadata does not fit Milvus's JSON field, said for the writer; None when it fits."""
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    return (
        f"metadata is {size:,} bytes as JSON; Milvus stores at most {MAX_JSON_BYTES:,}"
        if size > MAX_JSON_BYTES
        else None
    )


def chunk_rows(
    docs: Sequence[DocumentInput],
    chunked: Sequence[list[str]],
    embeddings: np.ndarray,
    bm25_text: Callable[[str], str] = str,
) -> list[dict]:
    """One row per chunk; a document with a field over Milvus's size limits is refused (UnfitDocument naming
    it) before anything is written."""
    if len(embeddings) != sum(len(chunks) for chunks in chunked):
        raise ValueError(f"{len(embeddings)} embeddings for {sum(len(c) for c in chunked)} chunks")
    rows: list[dict] = []
    for doc, chunks in zip(docs, chunked, strict=True):
        if problem := oversized_metadata(doc.metadata):
            raise UnfitDocument(f"document {shown_id(doc.id)}: {problem}")
        for ordinal, chunk in enumerate(chunks):
            row = text_fields(doc, ordinal, chunk, bm25_text)
            if problem := oversized(row):
                raise UnfitDocument(f"document {shown_id(doc.id)}: {problem}")
            row["dense"] = embeddings[len(rows)].astype(np.float32).tolist()
            rows.append({**row, "metadata": doc.metadata, **access_row_fields(doc.access)})
    return rows


def write_batches(doc_ids: Sequence[str], sizes: Sequence[int], limit: int = WRITE_BATCH_ROWS) -> list[WriteBatch]:
    """The upserts for documents of sizes rows each, in order: at most limit rows a call, never cut between two
    rows of one document unless that document alone has more than limit."""
    batches: list[WriteBatch] = []
    start = end = 0
    finished: dict[str, int] = {}
    for doc_id, size in zip(doc_ids, sizes, strict=True):
        if end > start and end - start + size > limit:
            batches.append(WriteBatch(slice(start, end), finished))
            start, finished = end, {}
        end += size
        while end - start > limit:
            batches.append(WriteBatch(slice(start, start + limit), {}))
            start += limit
        finished[doc_id] = size
    if finished:
        batches.append(WriteBatch(slice(start, end), finished))
    return batches


def stale_chunks_filters(counts: dict[str, int]) -> list[str]:
    """Delete conditions for the chunks past each document's new chunk count: documents with the same count
    share conditions (ids_filters)."""
    by_count: dict[int, list[str]] = {}
    for doc_id, count in sorted(counts.items()):
        by_count.setdefault(count, []).append(doc_id)
    return [
        f"ordinal >= {count} and {ids}"
        for count, doc_ids in sorted(by_count.items())
        for ids, _ in ids_filters("doc_id", doc_ids)
    ]
