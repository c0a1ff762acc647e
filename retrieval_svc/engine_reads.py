"""Reading the embedded engine's documents rather than searching them: a page of the listing, one document with its
chunks, their access lists and the index's counts, each of what the reader may read when a reader is given."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentChunks, DocumentSummary, IndexStats
from retrieval_svc.engine_indexes import EngineIndexes


class EngineReads(EngineIndexes):
    """Listings, documents and counts; each read holds the index shared."""

    def list_documents(
        self, after_id: str, limit: int, reader: Reader | None = None, ids: Sequence[str] = ()
    ) -> tuple[list[DocumentSummary], int]:
        """Up to limit documents whose ids sort after after_id, in id order, and how many there are in all; with a
        reader, of the documents it may read only; with ids, of those documents only."""
        with self._index_lock.reading():
            listed = sorted({doc_id for doc_id in ids if doc_id in self.documents}) if ids else self._sorted_ids()
            start = bisect.bisect_right(listed, after_id) if after_id else 0
            if reader is None:
                chosen, total = listed[start : start + limit], len(listed)
            else:
                visible = self.access.readable(reader, self.version)
                chosen = [doc_id for doc_id in listed[start:] if visible(doc_id)][:limit]
                total = sum(1 for doc_id in listed if visible(doc_id))
            page = [
                DocumentSummary(doc_id, *self.documents[doc_id], chunks=len(self.rows_by_doc.get(doc_id, ())))
                for doc_id in chosen
            ]
            return page, total

    def _sorted_ids(self) -> list[str]:
        """Document ids in order; sorted again only after a write, as pages are read one after another."""
        key = (self.version, len(self.documents))
        if self._id_order[0] != key:
            self._id_order = (key, sorted(self.documents))
        return self._id_order[1]

    def accesses_of(self, doc_ids: Sequence[str]) -> dict[str, Access]:
        """The access of each of doc_ids that is stored."""
        with self._index_lock.reading():
            return {d: self.access.access_of(d) for d in doc_ids if d in self.documents}

    def get_document(self, doc_id: str, reader: Reader | None = None) -> DocumentChunks | None:
        """The document with its chunks in order, or None when there is none with that id (that reader may read:
        a hidden document and a missing one look the same)."""
        with self._index_lock.reading():
            if doc_id not in self.documents:
                return None
            if reader is not None and not self.access.readable(reader, self.version)(doc_id):
                return None
            title, metadata = self.documents[doc_id]
            refs = sorted((self.chunks[row] for row in self.rows_by_doc.get(doc_id, ())), key=lambda r: r.ordinal)
            return DocumentChunks(doc_id, title, dict(metadata), [(r.ordinal, r.text) for r in refs])

    def stats(self, reader: Reader | None = None) -> IndexStats:
        """Counts for GetIndexStatus; a reader's are of what it may read (the index's own sizes are not shown)."""
        with self._index_lock.reading():
            if reader is not None:
                visible = self.access.readable(reader, self.version)
                documents = sum(1 for doc_id in self.documents if visible(doc_id))
                chunks = len(self.access.mask(reader, self.version))
                return IndexStats(documents, chunks, chunks, chunks, self.vectors.kind, self.load_seconds)
            return IndexStats(
                documents=len(self.documents),
                chunks=len(self.chunks),
                bm25_chunks=len(self.bm25),
                vector_chunks=len(self.vectors),
                vector_index=self.vectors.kind,
                load_seconds=self.load_seconds,
            )
