"""How a Milvus that is down or too slow reaches callers: as BackendUnavailable naming LIKEOPT_MILVUS_URI,
at once while a recent failure is fresh (Breaker), and with pymilvus's own logging routed through ours; a
call Milvus refuses reaches them as BackendRefused."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from pymilvus.client.types import Status
from pymilvus.exceptions import MilvusException, MilvusUnavailableException

from retrieval_svc.backend import BackendRefused, BackendUnavailable

RETRY_AFTER_S = 1.0
"""After Milvus failed, calls fail at once for this long instead of each waiting out a timeout."""


def route_pymilvus_logs() -> None:
    """Send pymilvus's log records through this process's logging (JSON lines with trace ids) instead of its
    own stderr handler, without the traceback it logs for every failed call: a call that fails raises
    BackendUnavailable (or the server's error), which says the same once, where it is handled."""
    library = logging.getLogger("pymilvus")
    for handler in list(library.handlers):
        library.removeHandler(handler)
    library.propagate = True
    for noisy in ("pymilvus.decorators", "pymilvus.client.connection_manager"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""gRPC codes of a Milvus that is down or too slow; others (refused arguments, credentials) are errors."""


def unavailable(exc: BaseException) -> bool:
    """Whether a client error means Milvus is down or too slow (rather than a request it refused)."""
    if isinstance(exc, MilvusUnavailableException):
        return True
    if isinstance(exc, grpc.RpcError):
        return exc.code() in TRANSIENT  # type: ignore[attr-defined]
    if isinstance(exc, MilvusException):
        code = exc.code
        return code == Status.CONNECT_FAILED or code in TRANSIENT or "Retry timeout" in exc.message
    return False


@contextmanager
def milvus_errors(uri: str) -> Iterator[None]:
    """Turn an unreachable or silent Milvus into BackendUnavailable naming LIKEOPT_MILVUS_URI, and any other
    error it answers into BackendRefused: callers then see a status that says which, never UNKNOWN."""
    try:
        yield
    except (grpc.RpcError, MilvusException) as exc:
        if unavailable(exc):
            raise BackendUnavailable(f"Milvus at LIKEOPT_MILVUS_URI={uri} is unavailable: {exc}") from exc
        message = exc.message if isinstance(exc, MilvusException) else str(exc)
        raise BackendRefused(f"Milvus at LIKEOPT_MILVUS_URI={uri} refused the call: {message}") from exc


class Breaker:
    """Fails calls at once for a while after Milvus failed, so an outage costs each request nothing but an
    error; the first call after the pause tries Milvus again, which is how service resumes by itself."""

    def __init__(self, uri: str, retry_after_s: float = RETRY_AFTER_S) -> None:
        self.uri = uri
        self.retry_after_s = retry_after_s
        self._open_until = 0.0

    @contextmanager
    def guard(self) -> Iterator[None]:
        if time.monotonic() < self._open_until:
            raise BackendUnavailable(f"Milvus at LIKEOPT_MILVUS_URI={self.uri} is unavailable (failed just now)")
        try:
            with milvus_errors(self.uri):
                yield
        except BackendUnavailable:
            self._open_until = time.monotonic() + self.retry_after_s
            raise
