"""Checks on the documents a write brings, by the caller and what is stored: whether each may be stored, who may
read it, and which stored documents' readers a write changed (reported to the writer and logged as an audit trail).
"""

from __future__ import annotations

import logging
import re

from likeopt.runtime.contract import MAX_DOCUMENT_CHARS, MAX_ID_CHARS, WIDER_ACCESS_REFUSED
from likeopt.runtime.principal import Principal
from likeopt.v1 import retrieval_pb2
from retrieval_svc.access import Access
from retrieval_svc.backend import DocumentInput, RetrievalBackend, UnfitDocument

log = logging.getLogger(__name__)

LOGGED_IDS = 20
"""At most this many ids in a log line: a large delete still logs one line of bounded size."""


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


UNSEEN_READERS = "not shown: the writer may not read the document it replaced"
"""An access change's ``before`` as told to a writer who may not read the document it replaced (a tenant's writer
replaces any document of its tenant): who may read a document is something about it, and its caller may learn
nothing of a document hidden from it. The log's audit line keeps the whole list."""
UNCHECKABLE_WIDENING = (
    "the writer may not read the stored document, so whether this write widens its readers cannot be told to it:"
    " write it without refuse_wider_access to replace it"
)
"""Why a guarded write over a document its writer may not read is refused whatever its access: refused only when it
widened, it would tell the writer, one probe at a time, who may read that document."""


def hidden_from(writer: Principal | None, access: Access) -> bool:
    """Whether a stored document of this access is one the writer may not read (never for the API key, or a caller
    inside the mesh, which read everything)."""
    return writer is not None and not access.readable_by(writer.reader)


def write_refusal(doc: DocumentInput, before: Access | None, writer: Principal | None, guarded: bool) -> str | None:
    """Why doc may not replace the stored document whose access is before (None: there is none), or None.

    A writer whose token names a tenant may not replace another tenant's document; a write that asked not to widen
    who may read a stored document (Document.refuse_wider_access) may not widen it, and, not being told who may
    read one hidden from its writer, may not replace that one.
    """
    if before is None:
        return None
    if writer is not None and writer.tenant and before.tenant != writer.tenant:
        return f"a document of another tenant than {writer.tenant!r} has this id"
    if guarded and hidden_from(writer, before):
        return UNCHECKABLE_WIDENING
    if guarded and doc.access.widens(before):
        return f'{WIDER_ACCESS_REFUSED}: "{before.described()}" → "{doc.access.described()}"'
    return None


def access_changes(docs: list[DocumentInput], stored: dict[str, Access]) -> list[retrieval_pb2.AccessChange]:
    """One message per document of docs that replaced a stored one of another access list (the audit log's)."""
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


def changes_told(
    changes: list[retrieval_pb2.AccessChange], stored: dict[str, Access], writer: Principal | None
) -> list[retrieval_pb2.AccessChange]:
    """The changes as the writer's reply names them: the list before is UNSEEN_READERS where the writer may not
    read the document it replaced (that it replaced one, and whether it let in more readers, it is still told)."""
    told = []
    for change in changes:
        shown = retrieval_pb2.AccessChange()
        shown.CopyFrom(change)
        if hidden_from(writer, stored[change.id]):
            shown.before = UNSEEN_READERS
        told.append(shown)
    return told


def log_access_changes(changes: list[retrieval_pb2.AccessChange], writer: Principal | None) -> None:
    """A WARNING per change, the audit trail of who may read what: the id, both lists and the writer (none: the
    API key, or a caller inside the mesh such as likeopt ingest); never the text."""
    who = writer_fields(writer)
    for change in changes:
        fields = {"doc_id": change.id, "before": change.before, "after": change.after, "widened": change.widened}
        log.warning("document access changed", extra={"fields": {**fields, **who}})


def writer_fields(writer: Principal | None) -> dict[str, str]:
    """Who wrote, for a log line (writer empty: the API key, or a caller inside the mesh such as likeopt ingest)."""
    return {"writer": writer.subject, "writer_tenant": writer.tenant} if writer is not None else {"writer": ""}


def log_deleted(ids: list[str], deleted: int, index_version: int, writer: Principal | None) -> None:
    """An INFO line per delete, as each upsert has one, so operators see what was deleted and by whom: the count
    deleted, the ids asked for (the first LOGGED_IDS, and how many more) and the writer."""
    fields = {
        "documents": deleted,
        "ids": ids[:LOGGED_IDS],
        "ids_not_logged": max(0, len(ids) - LOGGED_IDS),
        "index_version": index_version,
    }
    log.info("deleted", extra={"fields": {**fields, **writer_fields(writer)}})
