"""Writes that can be abandoned: the embedding of an ingestion stops when the call that asked is cancelled, or when
the service stops (a quarter of its grace into the drain: service.WRITES_FINISH_WITHIN_S).

A cancelled gRPC call cancels its coroutine, but not the worker thread doing the write: without this a client
that gave up on a large document left retrieval_svc embedding it for minutes, and then storing it. A stopping
service likewise waits for its worker threads before it closes the store, so a batch still being embedded kept
it running past the launcher's grace (and it was killed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

STOP: ContextVar[threading.Event | None] = ContextVar("likeopt_embedding_stop", default=None)
"""Set by a write that may be abandoned (Writes.run); asyncio.to_thread carries it to encode."""


class EncodingStopped(Exception):
    """The write that asked for these vectors was abandoned; nothing of it is stored."""


class WritesStopped(EncodingStopped):
    """The service is stopping: the write was abandoned (or not begun) and nothing of it is stored."""


def raise_if_stopped() -> None:
    """EncodingStopped once the write being embedded (see STOP) was abandoned."""
    stop = STOP.get()
    if stop is not None and stop.is_set():
        raise EncodingStopped("the write was abandoned while its texts were embedded")


class Writes:
    """The writes running in this process, so that a stopping service abandons them rather than waiting for them:
    the clients that sent them are told what was stored, and send the rest again once it is back."""

    def __init__(self) -> None:
        self._running: set[threading.Event] = set()
        self.stopping = False
        self.storing = threading.Lock()
        """Held by a write while it checks its documents against the store and stores them (checked_store.py)."""

    def stop_all(self) -> None:
        """Abandon every running write at its next slice and refuse new ones (WRITES_FINISH_WITHIN_S into the drain)."""
        self.stopping = True
        for stop in list(self._running):
            stop.set()

    def refuse_if_stopping(self) -> None:
        """WritesStopped once the service is stopping: a write begun now could not finish before it exits."""
        if self.stopping:
            raise WritesStopped("retrieval_svc is stopping")

    async def run(self, write: Callable[..., T], *args: object) -> T:
        """Run a write in a thread. If its caller is cancelled meanwhile (a client that left) or the service
        begins to stop, the embedding it is doing stops at its next slice (STOP) and nothing of it is stored;
        the latter raises WritesStopped."""
        self.refuse_if_stopping()
        stop = threading.Event()
        token = STOP.set(stop)  # copied into the thread's context by to_thread
        self._running.add(stop)
        try:
            return await asyncio.to_thread(write, *args)
        except asyncio.CancelledError:
            stop.set()
            log.info("write cancelled by its caller; what it was embedding is not stored")
            raise
        except EncodingStopped:
            self.refuse_if_stopping()
            raise
        finally:
            self._running.discard(stop)
            STOP.reset(token)
