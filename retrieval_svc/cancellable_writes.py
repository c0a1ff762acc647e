"""Writes a client can abandon: the embedding of a large ingestion stops when the call that asked is cancelled.

A cancelled gRPC call cancels its coroutine, but not the worker thread doing the write: without this a client
that gave up on a large document left retrieval_svc embedding it for minutes, and then storing it.
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
"""Set by a write that its caller may cancel (retrieval_svc.ingestion); asyncio.to_thread carries it to encode."""


class EncodingStopped(Exception):
    """The write that asked for these vectors was cancelled; nothing of it is stored."""


def raise_if_stopped() -> None:
    """EncodingStopped once the write being embedded (see STOP) was cancelled."""
    stop = STOP.get()
    if stop is not None and stop.is_set():
        raise EncodingStopped("the write was cancelled while its texts were embedded")


async def stoppable(write: Callable[..., T], *args: object) -> T:
    """Run a write in a thread; if its caller is cancelled meanwhile (a client that left), the embedding it is
    doing stops at its next slice (STOP) and nothing of it is stored."""
    stop = threading.Event()
    token = STOP.set(stop)  # copied into the thread's context by to_thread
    try:
        return await asyncio.to_thread(write, *args)
    except asyncio.CancelledError:
        stop.set()
        log.info("write cancelled by its caller; what it was embedding is not stored")
        raise
    finally:
        STOP.reset(token)
