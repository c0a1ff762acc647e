"""``likeopt ingest PATH…``: stream documents to retrieval_svc with a progress bar.

The documents go through IngestDocuments, which acknowledges each batch once it is durable, so a run that fails
part way (retrieval_svc stopping, its Milvus going away) can say how many of its documents are stored.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import grpc
from tqdm import tqdm

from likeopt.ops.index_loading import LOAD_PATIENCE_S, wait_until_loaded
from likeopt.runtime.addresses import address_list
from likeopt.runtime.contract import WIDER_ACCESS_REFUSED
from likeopt.runtime.grpc_client import MAX_MESSAGE_BYTES, cut_off_by_stop
from likeopt.runtime.loaders import Skipped, document_path, earlier_ids, load_paths, to_message
from likeopt.runtime.principal import PRINCIPAL_HEADER, tenant_reader_header
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc
from likeopt.v1.retrieval_pb2 import GetDocumentRequest

INGEST_TIMEOUT_S = 24 * 3600.0
"""A whole corpus is one call; on a busy 2-core machine SciFact alone took over an hour."""
LOOKUP_SLICE = 64
"""Earlier ids looked up at once after a run (GetDocument calls in flight together)."""
CONNECT_TIMEOUT_S = 30.0
"""How long to wait for retrieval_svc to accept a connection (it may still be starting) before giving up."""
ACCESS_LINES = 20
"""Documents the report names per kind of access news (changed, refused for widening); the rest are counted:
retrieval_svc's log names every change."""


class Unreachable(Exception):
    """retrieval_svc did not accept a connection in time."""


class IngestFailed(Exception):
    """The upload failed part way; the message names the gRPC status, retrieval_svc's words and how many of the
    run's documents were acknowledged as stored before that."""

    def __init__(self, writer: str, error: grpc.RpcError, confirmed: retrieval_pb2.UpsertSummary) -> None:
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (error.details() if isinstance(error, grpc.Call) else "").rstrip(".") or "(no message)"
        stored = confirmed_stored(confirmed)
        if cut_off_by_stop(code, details):
            failure, remedy = "stopped before it answered (its grace for the calls in flight ran out)", "it is back"
        else:
            failure, remedy = f"failed the upload with {code.name}: {details}", "that is fixed"
        super().__init__(
            f"retrieval_svc at {writer} {failure}. {stored}; run the command again once {remedy} (a document"
            " stored already is replaced, not duplicated)"
        )


class Interrupted(Exception):
    """Stopped by Ctrl-C (SIGINT); the message says how many of the run's documents were confirmed stored."""

    def __init__(self, confirmed: retrieval_pb2.UpsertSummary) -> None:
        super().__init__(
            f"interrupted. {confirmed_stored(confirmed)}; run the command again to store the rest (a document stored"
            " already is replaced, not duplicated)"
        )


def confirmed_stored(confirmed: retrieval_pb2.UpsertSummary) -> str:
    """How many of the run's documents retrieval_svc acknowledged as stored before the run ended early."""
    if not confirmed.upserted:
        return "none of this run's documents was confirmed stored"
    return (
        f"{confirmed.upserted} documents of this run were confirmed stored before that (index version"
        f" {confirmed.index_version}); the others may not be"
    )


def ingest_paths(
    paths: list[str],
    retrieval_addr: str,
    quiet: bool = False,
    access: retrieval_pb2.Access | None = None,
    expected: int | None = None,
    tenant_claim: str = "tenant",
    change_access: bool = False,
    load_patience_s: float = LOAD_PATIENCE_S,
) -> retrieval_pb2.UpsertSummary:
    """Send every readable document to retrieval_svc, each with access (who may read it; None: every reader of
    the tenant, everyone without one); print what was skipped and why, and whose readers changed. A document
    stored already that would gain readers or move to another tenant is refused unless change_access: a run
    without access options must not open what an earlier run restricted. expected, the documents there are when
    known (a collection's line count), lets the progress bar say how long the rest will take. An index still
    loading is waited for, up to load_patience_s (NotLoaded past it), before any file is read."""
    skipped: list[Skipped] = []

    def documents(progress: tqdm) -> Iterator[retrieval_pb2.Document]:
        for item in load_paths(paths):
            if isinstance(item, Skipped):
                skipped.append(item)
                continue
            progress.update(1)
            message = to_message(item, access)
            message.refuse_wider_access = not change_access
            yield message

    writer = address_list(retrieval_addr)[0]  # replicas beyond the first only read
    with grpc.insecure_channel(writer, options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            raise Unreachable(f"retrieval_svc at {writer} did not answer in {CONNECT_TIMEOUT_S:.0f} s") from None
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        summary = retrieval_pb2.UpsertSummary()
        try:
            wait_until_loaded(stub, writer, load_patience_s, quiet)
            with tqdm(desc="ingesting", unit="doc", total=expected, disable=quiet, file=sys.stderr) as progress:
                acknowledgements = stub.IngestDocuments(
                    documents(progress), timeout=INGEST_TIMEOUT_S, wait_for_ready=True
                )
                add_up(acknowledgements, summary)
        except grpc.RpcError as exc:
            raise IngestFailed(writer, exc, summary) from None
        except KeyboardInterrupt:
            raise Interrupted(summary) from None
        tenant = access.tenant if access is not None else ""
        reader = ((PRINCIPAL_HEADER, tenant_reader_header(tenant, tenant_claim, "likeopt-ingest")),)
        left_beside = [] if quiet else other_copies(stub, paths, reader)
    if not quiet:
        report(summary, skipped, left_beside)
    return summary


@dataclass(frozen=True)
class OtherCopy:
    """A file of the run that is also stored under the id releases before ids were paths gave it (its bare name),
    which is also the id an upload through the API or web UI gives it: nothing stored tells the two apart."""

    doc_id: str
    other_id: str
    same_text: bool
    """Whether that copy holds the chunks this run stored, or other text (an older version of the file)."""


def other_copies(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, paths: list[str], reader: tuple[tuple[str, str], ...]
) -> list[OtherCopy]:
    """Each file of the run also stored under its earlier id (earlier_ids): that copy keeps its text and readers
    beside this run's, and searches find both, which is worth saying when a run meant to replace or restrict it.
    Looked up as reader (the run's tenant): another tenant's document of that id is not this file's copy."""
    pairs = list(earlier_ids(paths).items())
    found: list[OtherCopy] = []
    for start in range(0, len(pairs), LOOKUP_SLICE):
        part = pairs[start : start + LOOKUP_SLICE]
        others = stored_chunks(stub, [other for _, other in part], reader)
        present = [(pair, chunks) for pair, chunks in zip(part, others, strict=True) if chunks is not None]
        ours = stored_chunks(stub, [doc_id for (doc_id, _), _ in present], reader)
        found += [
            OtherCopy(doc_id, other, chunks == own)
            for ((doc_id, other), chunks), own in zip(present, ours, strict=True)
        ]
    return found


def stored_chunks(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, ids: list[str], reader: tuple[tuple[str, str], ...]
) -> list[list[str] | None]:
    """The chunk texts of each stored document of ids, looked up together; None for one not found (or whose
    lookup failed: nothing to point out)."""
    lookups = [
        stub.GetDocument.future(GetDocumentRequest(id=doc_id), timeout=CONNECT_TIMEOUT_S, metadata=reader)
        for doc_id in ids
    ]
    found: list[list[str] | None] = []
    for lookup in lookups:
        try:
            found.append([chunk.text for chunk in lookup.result().chunks])
        except grpc.RpcError:
            found.append(None)
    return found


def report(summary: retrieval_pb2.UpsertSummary, skipped: list[Skipped], left_beside: list[OtherCopy]) -> None:
    """What the run stored, passed over, was refused, and left beside another copy of the same file."""
    version = f" (index version {summary.index_version})" if summary.index_version else ""
    print(f"ingested {summary.upserted} documents as {summary.chunks} chunks{version}", flush=True)
    for item in skipped:
        print(f"  skipped {item.source}: {item.reason}", flush=True)
    for refused in summary.skipped:
        if not refused.reason.startswith(WIDER_ACCESS_REFUSED):
            print(f"  refused {refused.id or '(no id)'}: {refused.reason}", flush=True)
    for line in access_lines(summary) + copy_lines(left_beside):
        print(line, flush=True)


def copy_lines(copies: list[OtherCopy]) -> list[str]:
    """The report's lines on files also stored under another id, ACCESS_LINES at most, and how to delete one."""
    lines = [
        f"  the same file is also stored as {c.other_id!r} ({how_named(c.other_id)}): searches show both until you"
        f" delete one (DELETE {document_path(c.other_id)})"
        if c.same_text
        else f"  also stored as {c.other_id!r} with other text ({how_named(c.other_id)}): that copy keeps its text and"
        f" readers beside {c.doc_id!r} until you delete it (DELETE {document_path(c.other_id)})"
        for c in copies
    ]
    return capped(lines, "are also stored under another id")


def how_named(other_id: str) -> str:
    """Who gives a file the id other_id: an upload through the API or web UI names a file by its name alone, as
    releases before ids were paths named a file given itself; a path inside a folder only those releases gave."""
    if "/" in other_id:
        return "its path inside the folder, as releases before ids were paths named a folder's files"
    return "its name alone, as an upload through the API or web UI names a file, and releases before ids were paths did"


def access_lines(summary: retrieval_pb2.UpsertSummary) -> list[str]:
    """The report's lines on readers: documents refused because the run would have widened who may read them
    (with what to do), then documents whose readers the run changed; ACCESS_LINES of each at most."""
    widening = [s for s in summary.skipped if s.reason.startswith(WIDER_ACCESS_REFUSED)]
    lines = capped([f"  refused {s.id}: {s.reason}" for s in widening], "refused for the same reason")
    if widening:
        lines.append(
            "  (these keep their readers: run again with --change-access to give them this run's access list, or"
            " with the --tenant and --allow-* options they were ingested with)"
        )
    changed = [
        f'  readers changed for {c.id}: "{c.before}" → "{c.after}"{" (more readers now)" if c.widened else ""}'
        for c in summary.access_changes
    ]
    return lines + capped(changed, "had their readers changed (retrieval_svc's log names each)")


def capped(lines: list[str], what: str) -> list[str]:
    """At most ACCESS_LINES of lines, and a line counting the others."""
    if len(lines) <= ACCESS_LINES:
        return lines
    return [*lines[:ACCESS_LINES], f"  … and {len(lines) - ACCESS_LINES} more documents {what}"]


def add_up(acknowledgements: Iterable[retrieval_pb2.IngestProgress], summary: retrieval_pb2.UpsertSummary) -> None:
    """Sum each acknowledged batch into summary as it arrives, as UpsertDocuments would answer at the end: kept
    up to date so that a failure later in the run still knows what was stored. An id sent twice is one document."""
    stored: set[str] = set()
    for batch in acknowledgements:
        stored.update(batch.ids)
        summary.upserted = len(stored)
        summary.chunks += batch.chunks
        summary.index_version = max(summary.index_version, batch.index_version)
        summary.skipped.extend(batch.skipped)
        summary.access_changes.extend(batch.access_changes)


def access_of(tenant: str, users: list[str], groups: list[str]) -> retrieval_pb2.Access | None:
    """``--tenant``, ``--allow-user`` and ``--allow-group`` as one access list for every document of the run;
    None when none is given (every reader of the tenant, or everyone)."""
    if not (tenant or users or groups):
        return None
    return retrieval_pb2.Access(tenant=tenant, users=users, groups=groups)
