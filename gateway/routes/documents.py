"""Documents: list and read them, add or replace (JSON, or multipart files read by the loaders), delete, and the
index's status."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Annotated

from fastapi import Path, Query
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from gateway.auth import Reader, Writer, reader, writer
from gateway.bodies import declared_over, parse, read_body, refuse_encoded, request_body, too_large
from gateway.errors import BODY_STATUSES, UPSTREAM_STATUSES, ApiError, error_responses, upstream_call
from gateway.models import (
    Access,
    AccessChange,
    DeleteResponse,
    Document,
    DocumentChunk,
    DocumentList,
    DocumentSummary,
    IndexStatus,
    Skipped,
    StoredDocument,
    UploadForm,
    UpsertRequest,
    UpsertResponse,
)
from gateway.routes import api_router
from gateway.state import Running
from likeopt.runtime.contract import LIST_LIMIT, MAX_ID_CHARS, MAX_LISTED_IDS, MAX_UPLOAD_FILES, shown_id
from likeopt.runtime.loaders import Skipped as SkippedFile
from likeopt.runtime.loaders import load_content, to_message
from likeopt.runtime.principal import forwarded
from likeopt.v1 import retrieval_pb2

WRITE_TIMEOUT_S = 600.0
STATUS_TIMEOUT_S = 5.0

DocumentId = Annotated[
    str,
    Path(
        description="The document's id (it may contain '/', also sent as %2F; never a '.' or '..' segment).",
        max_length=MAX_ID_CHARS,
    ),
]

reads = api_router("documents", reader, 401, *UPSTREAM_STATUSES)
writes = api_router("documents", writer, 401, 403, *UPSTREAM_STATUSES)


@reads.get("/index", summary="Index size, version and model", response_model=IndexStatus)
async def index_status(principal: Reader, gateway: Running) -> IndexStatus:
    """Documents and chunks the caller may read, the index version, the embedding model and vector index."""
    request = retrieval_pb2.GetIndexStatusRequest()
    status = await upstream_call(
        gateway.upstreams.retrieval_writer.GetIndexStatus(
            request, timeout=STATUS_TIMEOUT_S, metadata=forwarded(principal)
        )
    )
    return IndexStatus(
        documents=status.documents,
        chunks=status.chunks,
        index_version=status.index_version,
        embedding_model=status.embedding_model,
        embedding_dim=status.embedding_dim,
        vector_index=status.vector_index,
        ready=status.ready,
    )


@reads.get(
    "/documents",
    summary="List documents, a page at a time",
    response_model=DocumentList,
    responses={
        431: {"description": "Envoy refused a request line over its limit (many or long ids): ask in smaller batches"}
    },
)
async def list_documents(
    principal: Reader,
    gateway: Running,
    limit: Annotated[int, Query(ge=LIST_LIMIT.low, le=LIST_LIMIT.high, description="Most in the page.")] = (
        LIST_LIMIT.default
    ),
    after_id: Annotated[str, Query(description="The previous page's next_after_id; empty: the first page.")] = "",
    ids: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_LISTED_IDS,
            description="Only the documents with these ids (repeat the parameter): which of them you may still read.",
        ),
    ] = None,
) -> DocumentList:
    """Only the documents the caller may read (LIKEOPT_AUTH=jwt), in id order."""
    request = retrieval_pb2.ListDocumentsRequest(limit=limit, after_id=after_id, ids=ids or ())
    page = await upstream_call(
        gateway.upstreams.retrieval_writer.ListDocuments(
            request, timeout=STATUS_TIMEOUT_S, metadata=forwarded(principal)
        )
    )
    documents = [
        DocumentSummary(id=d.id, title=d.title, metadata=dict(d.metadata), chunks=d.chunks) for d in page.documents
    ]
    return DocumentList(
        documents=documents, next_after_id=page.next_after_id, total=page.total, index_version=page.index_version
    )


@reads.get("/documents/{doc_id:path}", summary="One document, chunk by chunk", response_model=StoredDocument)
async def get_document(
    doc_id: DocumentId,
    principal: Reader,
    gateway: Running,
) -> StoredDocument:
    """404 when no document the caller may read has this id."""
    request = retrieval_pb2.GetDocumentRequest(id=doc_id)
    doc = await upstream_call(
        gateway.upstreams.retrieval_writer.GetDocument(request, timeout=STATUS_TIMEOUT_S, metadata=forwarded(principal))
    )
    chunks = [DocumentChunk(chunk_id=c.chunk_id, text=c.text) for c in doc.chunks]
    return StoredDocument(
        id=doc.id, title=doc.title, metadata=dict(doc.metadata), chunks=chunks, index_version=doc.index_version
    )


@writes.post(
    "/documents",
    summary="Add or replace documents (JSON, or multipart files in the field `files`)",
    response_model=UpsertResponse,
    responses=error_responses(*BODY_STATUSES),
    openapi_extra=request_body({"application/json": UpsertRequest, "multipart/form-data": UploadForm}),
)
async def upsert_documents(request: Request, principal: Writer, gateway: Running) -> UpsertResponse:
    """Documents retrieval_svc cannot store, and files that hold no text, are listed in ``skipped``."""
    limit = gateway.config.max_request_bytes
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):  # media types ignore case
        messages, skipped = await uploaded_documents(request, limit)
    else:
        body = parse(UpsertRequest, await read_body(request, limit))
        messages, skipped = [document_message(d) for d in body.documents], []
    upsert = gateway.upstreams.retrieval_writer.UpsertDocuments(
        iter(messages), timeout=WRITE_TIMEOUT_S, metadata=forwarded(principal)
    )
    summary = await upstream_call(upsert)
    gateway.wrote(summary.index_version)
    skipped += [Skipped(id=s.id, reason=s.reason) for s in summary.skipped]
    changes = [AccessChange(id=c.id, before=c.before, after=c.after, widened=c.widened) for c in summary.access_changes]
    return UpsertResponse(
        upserted=summary.upserted,
        chunks=summary.chunks,
        index_version=summary.index_version,
        skipped=skipped,
        access_changes=changes,
    )


@writes.delete(
    "/documents/{doc_id:path}",
    summary="Delete a document from every index",
    response_model=DeleteResponse,
)
async def delete_document(
    doc_id: DocumentId,
    principal: Writer,
    gateway: Running,
) -> DeleteResponse:
    """404 when no document the caller may read has this id; 403 when it may read it but not delete it (a writer
    whose token names a tenant deletes only that tenant's documents)."""
    request = retrieval_pb2.DeleteDocumentsRequest(ids=[doc_id])
    reply = await upstream_call(
        gateway.upstreams.retrieval_writer.DeleteDocuments(
            request, timeout=WRITE_TIMEOUT_S, metadata=forwarded(principal)
        )
    )
    gateway.wrote(reply.index_version)
    if reply.deleted == 0 and reply.skipped:
        raise ApiError(403, "PERMISSION_DENIED", reply.skipped[0].reason)
    if reply.deleted == 0:
        raise ApiError(404, "NOT_FOUND", f"no document with id {shown_id(doc_id)}")
    return DeleteResponse(deleted=reply.deleted, index_version=reply.index_version)


def access_message(access: Access) -> retrieval_pb2.Access:
    """retrieval_svc checks the names themselves and what the writer's tenant allows."""
    return retrieval_pb2.Access(tenant=access.tenant, users=access.users, groups=access.groups)


def document_message(document: Document) -> retrieval_pb2.Document:
    message = retrieval_pb2.Document(
        id=document.id, title=document.title, text=document.text, metadata=document.metadata
    )
    if document.access is not None:
        message.access.CopyFrom(access_message(document.access))
    return message


FORM_ESCAPES = {"%22": '"', "%0A": "\n", "%0D": "\r"}
"""What browsers (and httpx) escape in a multipart file name, as the HTML standard says: only these three."""


def form_filename(sent: str) -> str:
    """A file name as the user named it: the form's escapes undone, so ``say "hi".txt`` keeps its quotes."""
    for escape, character in FORM_ESCAPES.items():
        sent = sent.replace(escape, character)
    return sent


async def uploaded_documents(request: Request, max_bytes: int) -> tuple[list[retrieval_pb2.Document], list[Skipped]]:
    """Documents from the ``files`` fields of a multipart upload, and the files that gave none."""
    refuse_encoded(request.headers)
    if declared_over(request.headers, max_bytes):
        raise too_large(max_bytes)
    messages: list[retrieval_pb2.Document] = []
    skipped: list[Skipped] = []
    try:
        async with request.form(max_files=MAX_UPLOAD_FILES, max_part_size=max_bytes) as form:
            refuse_unknown_fields(form.keys())
            uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            if not uploads:
                raise ApiError(422, "INVALID_ARGUMENT", "no files in the 'files' field")
            access = form_access(form.get("access"))
            for upload in uploads:
                name = form_filename(upload.filename or "upload")
                data = await upload.read(max_bytes + 1)
                loaded = await asyncio.to_thread(lambda n=name, d=data: list(load_content(n, d, doc_id=n)))
                for item in loaded:
                    if isinstance(item, SkippedFile):
                        skipped.append(Skipped(id=item.source, reason=item.reason))
                    else:
                        messages.append(to_message(item, access))
    except MultiPartException as exc:
        raise ApiError(400, "BAD_MULTIPART", exc.message) from None
    except HTTPException as exc:  # Starlette's own refusal of a form it cannot parse (no boundary, say)
        raise ApiError(400, "BAD_MULTIPART", str(exc.detail)) from None
    return messages, skipped


def refuse_unknown_fields(names: Iterable[str]) -> None:
    """A misspelt ``access`` field would store every file for the writer's whole tenant, so it is refused."""
    unknown = sorted(set(names) - set(UploadForm.model_fields))
    if unknown:
        raise ApiError(422, "INVALID_ARGUMENT", f"unknown form field {unknown[0]!r}: expected 'files' and 'access'")


def form_access(field: object) -> retrieval_pb2.Access | None:
    """The ``access`` field of a multipart upload (JSON, as in a JSON upload), for every file of it."""
    if field is None:
        return None
    if not isinstance(field, str):
        raise ApiError(422, "INVALID_ARGUMENT", "the 'access' field must be JSON text")
    try:
        return access_message(parse(Access, field))
    except ApiError as exc:
        raise ApiError(422, "INVALID_ARGUMENT", f"the 'access' field: {exc.message}") from None
