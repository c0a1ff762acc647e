"""Background cache writes sent together: at most one call per window while writes keep coming.

Each write to cache_svc was one gRPC call and one Redis command, and under load those cost
more CPU than the data they carry: storing an uncached search's result was about 2 of the
mesh's 18 ms of CPU per search (benchmarks/README.md, "search results written to cache_svc in
batches"). So the first write after a quiet window is sent at once, and the ones that follow
wait for the window to end and go as one ``SetMany``: a quiet client sees no delay, a busy one
makes one call per window.

A batch belongs to no single request, so it is sent outside every request's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from likeopt.v1 import cache_pb2

MAX_BATCH_BYTES = 4 * 1024 * 1024
"""Values per call, at most (one larger value goes alone): far below gRPC's message limit."""
MAX_QUEUED = 10_000
"""Writes waiting, at most: when cache_svc cannot keep up the oldest are dropped (a cache may lose entries)."""

Send = Callable[[list[cache_pb2.SetRequest]], Awaitable[None]]

WRITES = Counter(
    "likeopt_cache_batched_writes_total",
    "Cache writes queued to go in batches, by what became of them (sent, or dropped when cache_svc fell behind).",
    ["result"],
)
BATCHES = Counter("likeopt_cache_write_batches_total", "SetMany calls made for batched cache writes.")


class WriteBatches:
    """Queues writes and sends them through ``send`` in batches, one batch per ``window_s`` at most."""

    def __init__(self, send: Send, window_s: float) -> None:
        self._send = send
        self._window_s = window_s
        self._queue: deque[cache_pb2.SetRequest] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def add(self, write: cache_pb2.SetRequest) -> None:
        """Queue a write; it is sent now if nothing was sent within the window, else at the window's end."""
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            WRITES.labels("dropped").inc()
        self._queue.append(write)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), context=contextvars.Context())

    def withdraw(self, namespace: str, keys: set[str]) -> None:
        """Drop the queued writes of these keys: they are being deleted, and must not land after it."""
        self._queue = deque(w for w in self._queue if w.namespace != namespace or w.key not in keys)

    async def close(self, timeout_s: float) -> None:
        """Send what is queued without waiting out the window; give up after timeout_s."""
        self._closing.set()
        if self._sender is not None:
            await asyncio.wait({self._sender}, timeout=timeout_s)

    async def _send_all(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                BATCHES.inc()
                WRITES.labels("sent").inc(len(batch))
                await self._send(batch)
                if not self._closing.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), self._window_s)
        finally:
            self._sender = None

    def _next_batch(self) -> list[cache_pb2.SetRequest]:
        batch = [self._queue.popleft()]
        size = len(batch[0].value)
        while self._queue and size + len(self._queue[0].value) <= MAX_BATCH_BYTES:
            size += len(self._queue[0].value)
            batch.append(self._queue.popleft())
        return batch
