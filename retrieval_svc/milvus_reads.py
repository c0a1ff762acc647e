"""Reads of a Milvus corpus that are not searches: which ids are stored, document listings and one document's
chunks read page by page, access lists, and counts (milvus_collection holds the connection they read through)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pymilvus.client.constants import ITERATOR_SESSION_TS_FIELD

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentChunks, DocumentSummary, IndexStats
from retrieval_svc.milvus_access import NOTHING, READERS_FIELD, both
from retrieval_svc.milvus_collection import SEARCH_DEPTH_LIMIT, MilvusCollection
from retrieval_svc.milvus_expressions import id_batches, ids_filter, ids_filters, quoted

LIST_BATCH_ROWS = 1_000
"""Rows per page of a read that pages (_batches): listing documents, reading one document's chunks."""
SUMMARY = ["doc_id", "title", "metadata"]
"""The fields of a document's first chunk a listing reads."""


class MilvusReads:
    """The chunk collection's reads by id, listings, documents and counts; searches read rows by id and counts
    through it too."""

    def __init__(self, milvus: MilvusCollection) -> None:
        self.milvus = milvus

    def existing(self, doc_ids: Sequence[str]) -> list[str]:
        """Which of doc_ids are stored (each stored document has a chunk 0)."""
        return sorted(self._present("doc_id", doc_ids, "ordinal == 0"))

    def stored_chunks(self, chunk_ids: Sequence[str]) -> set[str]:
        """Which of chunk_ids are stored."""
        return self._present("chunk_id", chunk_ids)

    def _present(self, field: str, values: Sequence[str], condition: str = "") -> set[str]:
        """The values of field (unique per row under condition) that some row has."""
        with self.milvus.guarded():
            return {str(row[field]) for row in self.rows_by_ids(field, values, [field], condition)}

    def rows_by_ids(
        self, field: str, values: Sequence[str], output_fields: list[str], condition: str = ""
    ) -> list[dict[str, Any]]:
        """The rows whose field is one of values and that condition passes, a filter's worth of values a query
        (ids_filters: none grows with the number of values), each query asking for a row per value it lists."""
        rows: list[dict[str, Any]] = []
        for ids, count in ids_filters(field, values):
            rows += self.milvus.call(
                "query",
                self.milvus.name,
                filter=both(ids, condition),
                output_fields=output_fields,
                limit=count,
                consistency_level=self.milvus.consistency_level,
                timeout=self.milvus.timeout_s,
            )
        return rows

    def list_documents(
        self, after_id: str, limit: int, reader: Reader | None = None, ids: Sequence[str] = ()
    ) -> tuple[list[DocumentSummary], int]:
        """Up to limit documents whose ids sort after after_id, in id order, and how many are stored in all;
        with a reader, of those it may read only; with ids, of those documents only.

        Milvus queries have no order: the first chunks after after_id are read in batches and the smallest
        ids kept, so a page costs one pass over the later documents (an administrative read, not a search).
        With ids, whose first chunks are few, one query reads them all (what a conversation read asks).
        """
        readable = self.milvus.readable(reader)
        if readable is NOTHING:
            return [], 0
        firsts = both("ordinal == 0", readable)
        with self.milvus.guarded():
            if ids:
                rows = self._firsts_of(ids, firsts)
                total = len(rows)
                smallest = sorted((r for r in rows if r["doc_id"] > after_id), key=lambda r: r["doc_id"])[:limit]
            else:
                total, smallest = self.count(firsts), []
                for batch in self._batches(both(firsts, f"doc_id > {quoted(after_id)}" if after_id else ""), SUMMARY):
                    smallest = sorted([*smallest, *batch], key=lambda row: row["doc_id"])[:limit]
            counts = self._chunk_counts([row["doc_id"] for row in smallest])
        page = [
            DocumentSummary(row["doc_id"], row["title"], dict(row["metadata"] or {}), counts.get(row["doc_id"], 0))
            for row in smallest
        ]
        return page, total

    def _firsts_of(self, doc_ids: Sequence[str], condition: str) -> list[dict[str, Any]]:
        """The first chunks (SUMMARY's fields) of those of doc_ids stored under condition: one row each at most."""
        return self.rows_by_ids("doc_id", doc_ids, SUMMARY, condition)

    def document_ids(self) -> set[str]:
        """Every stored document's id: one pass over the first chunks, for a migration to compare with its store."""
        with self.milvus.guarded():
            return {str(row["doc_id"]) for batch in self._batches("ordinal == 0", ["doc_id"]) for row in batch}

    def _batches(self, condition: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """The rows under condition in batches of about LIST_BATCH_ROWS, in chunk id order (inside milvus.guarded()).

        Paged by chunk id as pymilvus's query_iterator pages, but with the last id quoted: its cursor goes
        unescaped into the next filter (milvus-io/pymilvus#1960), so an id holding a quote or a backslash ended
        the listing with an error. Only a query marked ``iterator`` returns the rows of smallest chunk id (a plain
        one returns any rows that match), and with ``reduce_stop_for_best`` Milvus may return fewer rows than asked
        while more follow, or a few more: only an empty batch ends the listing. Pages after the first read the
        first page's snapshot, as query_iterator's do (snapshot_of).
        """
        fields = [*fields, "chunk_id"]
        batch = self._page(condition, fields, None, {})
        snapshot = snapshot_of(batch)
        while batch:
            yield batch
            batch = self._page(condition, fields, max(str(row["chunk_id"]) for row in batch), snapshot)

    def _page(self, condition: str, fields: list[str], after: str | None, snapshot: dict[str, int]) -> Any:
        """The rows under condition whose chunk ids follow after (from the first without it): a page of _batches."""
        return self.milvus.call(
            "query",
            self.milvus.name,
            filter=both(f"chunk_id > {quoted(after)}" if after is not None else "", condition),
            output_fields=fields,
            limit=LIST_BATCH_ROWS,
            iterator="True",  # a string, as query_iterator sends it (the request holds strings only)
            reduce_stop_for_best=True,
            consistency_level=self.milvus.consistency_level,
            timeout=self.milvus.timeout_s,
            **snapshot,
        )

    def _chunk_counts(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """How many chunks each of doc_ids has, a filter's worth of ids at a time (id_batches)."""
        counts: dict[str, int] = {}
        for batch in id_batches(doc_ids):
            counts.update(self._chunks_of(batch))
        return counts

    def _chunks_of(self, doc_ids: list[str]) -> dict[str, int]:
        """How many chunks each of doc_ids has, their rows' doc_id counted here. A query returns at most
        SEARCH_DEPTH_LIMIT rows, so one that returns that many may have left some out: then the ids are counted
        again in halves, and a single document by Milvus's count(*)."""
        ids = ids_filter("doc_id", doc_ids)
        rows = self.milvus.call(
            "query",
            self.milvus.name,
            filter=ids,
            output_fields=["doc_id"],
            limit=SEARCH_DEPTH_LIMIT,
            consistency_level=self.milvus.consistency_level,
            timeout=self.milvus.timeout_s,
        )
        if len(rows) < SEARCH_DEPTH_LIMIT:
            return dict(Counter(str(row["doc_id"]) for row in rows))
        if len(doc_ids) == 1:
            return {doc_ids[0]: self.count(ids)}
        half = len(doc_ids) // 2
        return {**self._chunks_of(doc_ids[:half]), **self._chunks_of(doc_ids[half:])}

    def accesses_of(self, doc_ids: Sequence[str]) -> dict[str, Access]:
        """The access of each of doc_ids that is stored, read from its first chunk's reader keys."""
        with self.milvus.guarded():
            rows = self.rows_by_ids("doc_id", doc_ids, ["doc_id", READERS_FIELD], "ordinal == 0")
        return {str(r["doc_id"]): Access.from_keys(r[READERS_FIELD] or ()) for r in rows}

    def get_document(self, doc_id: str, reader: Reader | None = None) -> DocumentChunks | None:
        """The document with all its chunks in order, or None when there is none with that id (that reader may
        read: a hidden document and a missing one look the same). Read page by page (_batches): a long document
        (a 50 MB text makes tens of thousands of chunks) has more than one query returns (SEARCH_DEPTH_LIMIT)."""
        readable = self.milvus.readable(reader)
        if readable is NOTHING:
            return None
        condition = both(ids_filter("doc_id", [doc_id]), readable)
        with self.milvus.guarded():
            pages = self._batches(condition, ["ordinal", "title", "text", "metadata"])
            rows = [row for page in pages for row in page]
        if not rows:
            return None
        rows.sort(key=lambda row: row["ordinal"])
        first = rows[0]
        return DocumentChunks(
            doc_id, first["title"], dict(first["metadata"] or {}), [(int(r["ordinal"]), r["text"]) for r in rows]
        )

    def stats(self, reader: Reader | None = None) -> IndexStats:
        """Counts for GetIndexStatus: documents are distinct doc ids (each has a chunk 0), chunks are rows; with
        a reader, only those it may read."""
        readable = self.milvus.readable(reader)
        with self.milvus.guarded():
            chunks = self.count(readable) if readable is not NOTHING else 0
            documents = self.count(both("ordinal == 0", readable)) if readable is not NOTHING else 0
            index = self.milvus.client.describe_index(self.milvus.name, "dense", timeout=self.milvus.timeout_s) or {}
        kind = f"milvus:{index.get('index_type', self.milvus.dense_index)}"
        return IndexStats(documents, chunks, chunks, chunks, kind, self.milvus.load_seconds)

    def count(self, condition: str) -> int:
        """How many chunks condition passes (every chunk for an empty one), by Milvus's count(*)."""
        rows = self.milvus.call(
            "query",
            self.milvus.name,
            filter=condition,
            output_fields=["count(*)"],
            consistency_level=self.milvus.consistency_level,
            timeout=self.milvus.timeout_s,
        )
        return int(rows[0]["count(*)"]) if rows else 0


def snapshot_of(first_page: Any) -> dict[str, int]:
    """The query arguments that read a paged read's later pages at the snapshot its first page was read at.

    Milvus answers an ``iterator`` query that names no timestamp with the one it read at (session_ts, in pymilvus's
    ``extra``), and reads a later one naming it as ``guarantee_timestamp`` at exactly that timestamp: the pages
    are one snapshot, and none waits for newer writes as Strong would (up to a sync interval a page). A server that
    answers none (milvus-lite) gets none back, and each page is read at the consistency level.
    """
    session_ts = int((getattr(first_page, "extra", None) or {}).get(ITERATOR_SESSION_TS_FIELD) or 0)
    return {"guarantee_timestamp": session_ts} if session_ts > 0 else {}
