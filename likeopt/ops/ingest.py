"""``likeopt ingest PATH…``: stream documents to retrieval_svc with a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import grpc
from tqdm import tqdm

from likeopt.runtime.config import address_list
from likeopt.runtime.loaders import Skipped, load_paths, to_message
from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc

INGEST_TIMEOUT_S = 24 * 3600.0
"""A whole corpus is one call; on a busy 2-core machine SciFact alone took over an hour."""
CONNECT_TIMEOUT_S = 30.0
"""How long to wait for retrieval_svc to accept a connection (it may still be starting) before giving up."""


class Unreachable(Exception):
    """retrieval_svc did not accept a connection in time."""


def ingest_paths(
    paths: list[str],
    retrieval_addr: str,
    quiet: bool = False,
    access: retrieval_pb2.Access | None = None,
    expected: int | None = None,
) -> retrieval_pb2.UpsertSummary:
    """Send every readable document to retrieval_svc, each with access (who may read it; None: every reader of
    the tenant, everyone without one); print what was skipped and why. expected, the documents there are when
    known (a collection's line count), lets the progress bar say how long the rest will take."""
    skipped: list[Skipped] = []
    progress = tqdm(desc="ingesting", unit="doc", total=expected, disable=quiet, file=sys.stderr)

    def documents() -> Iterator[retrieval_pb2.Document]:
        for item in load_paths(paths):
            if isinstance(item, Skipped):
                skipped.append(item)
                continue
            progress.update(1)
            yield to_message(item, access)

    writer = address_list(retrieval_addr)[0]  # replicas beyond the first only read
    with grpc.insecure_channel(writer, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            progress.close()
            raise Unreachable(f"retrieval_svc at {writer} did not answer in {CONNECT_TIMEOUT_S:.0f} s") from None
        summary = retrieval_pb2_grpc.RetrievalServiceStub(channel).UpsertDocuments(
            documents(), timeout=INGEST_TIMEOUT_S, wait_for_ready=True
        )
    progress.close()
    if not quiet:
        print(
            f"ingested {summary.upserted} documents as {summary.chunks} chunks (index version {summary.index_version})",
            flush=True,
        )
        for item in skipped:
            print(f"  skipped {item.source}: {item.reason}", flush=True)
        for refused in summary.skipped:
            print(f"  refused {refused.id or '(no id)'}: {refused.reason}", flush=True)
    return summary


def access_of(tenant: str, users: list[str], groups: list[str]) -> retrieval_pb2.Access | None:
    """``--tenant``, ``--allow-user`` and ``--allow-group`` as one access list for every document of the run;
    None when none is given (every reader of the tenant, or everyone)."""
    if not (tenant or users or groups):
        return None
    return retrieval_pb2.Access(tenant=tenant, users=users, groups=groups)
