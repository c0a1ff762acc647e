"""Whether the retrieval backend's server (Milvus) answers: retrieval_svc's health and a gauge follow it."""

from __future__ import annotations

import logging

from prometheus_client import Gauge

from retrieval_svc.backend import BackendUnavailable

log = logging.getLogger("retrieval_svc")

BACKEND_REACHABLE = Gauge(
    "likeopt_retrieval_backend_reachable",
    "1 while the retrieval backend's server (Milvus) answered the last time it was asked, 0 while it is away:"
    " retrieval_svc is NOT_SERVING then, and this says why (an embedded backend is always 1).",
)


class Reachability:
    """Whether the backend's server answered the last time it was asked: retrieval_svc's health follows it, so
    readiness checks and Envoy see NOT_SERVING while Milvus is away (every call would answer UNAVAILABLE), and the
    gauge tells Prometheus that the backend, not the process, is the cause."""

    def __init__(self) -> None:
        self.now = True
        self.problem = ""
        """The last failure while away (GetIndexStatus.waiting_for tells clients waiting for the index); empty
        while the server answers."""
        BACKEND_REACHABLE.set(1)

    def answered(self) -> None:
        self.now, self.problem = True, ""
        BACKEND_REACHABLE.set(1)

    def failed(self, exc: BackendUnavailable) -> None:
        was, self.now, self.problem = self.now, False, str(exc)
        BACKEND_REACHABLE.set(0)
        if was:
            log.error("retrieval backend unreachable", extra={"fields": {"error": str(exc)}})
