"""Waiting for retrieval_svc to load its index before a command writes to it.

retrieval_svc opens its port before its store and indexes are loaded (or before its Milvus answers), and
refuses writes meanwhile with "the index is still loading". A script that starts the mesh and then ingests
would fail on that; ``likeopt ingest`` waits instead, saying once what it waits for and, when the loading
cannot go on by itself (Milvus unreachable), why.
"""

from __future__ import annotations

import sys
import time

import grpc

from likeopt.v1 import retrieval_pb2, retrieval_pb2_grpc

LOAD_PATIENCE_S = 600.0
"""How long ``likeopt ingest`` waits for the index by default: a large store takes minutes to load."""
POLL_S = 1.0
STATUS_TIMEOUT_S = 10.0


class NotLoaded(Exception):
    """retrieval_svc did not load its index within the patience given."""


def wait_until_loaded(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, writer: str, patience_s: float, quiet: bool = False
) -> None:
    """Return once retrieval_svc at writer says its index is ready; raise NotLoaded past patience_s. A status
    that cannot be asked (an older retrieval_svc, an error) lets the write go ahead and report for itself."""
    deadline = time.monotonic() + patience_s
    said = ""
    while True:
        try:
            status = stub.GetIndexStatus(retrieval_pb2.GetIndexStatusRequest(), timeout=STATUS_TIMEOUT_S)
        except grpc.RpcError:
            return
        if status.ready:
            return
        why = f" (it waits for: {status.waiting_for})" if status.waiting_for else ""
        if time.monotonic() >= deadline:
            raise NotLoaded(f"retrieval_svc at {writer} has not loaded its index in {patience_s:.0f} s{why}")
        line = f"retrieval_svc at {writer} is still loading its index{why}; waiting up to {patience_s:.0f} s"
        if line != said and not quiet:
            print(line, file=sys.stderr)
            said = line
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
