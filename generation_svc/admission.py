"""Fair, bounded admission to a model that can run one generation at a time.

Requests are served first come, first served (asyncio.Lock wakes waiters in FIFO
order and never lets a newcomer jump the queue). At most ``limit`` may wait: one
more is refused at once with RESOURCE_EXHAUSTED and an estimate of when to retry,
rather than piling up until every caller's deadline has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from prometheus_client import Counter, Gauge

from generation_svc.backends import AnswerFailed

QUEUE_LENGTH = Gauge("likeopt_generation_queue_length", "Answers waiting for the local model.")
RUNNING = Gauge("likeopt_generation_running", "Answers the local model is generating now (0 or 1).")
REJECTED = Counter("likeopt_generation_rejected_total", "Answers refused because the local model's queue was full.")


class Admission:
    """One runs, up to ``limit`` wait in arrival order, the rest are refused."""

    def __init__(self, limit: int, typical_run_s: float = 2.0) -> None:
        self.limit = limit
        self.typical_run_s = typical_run_s
        self._lock = asyncio.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    def retry_after_s(self) -> float:
        """How long until a place is likely free: the queue ahead times a typical run."""
        return round((self._waiting + 1) * self.typical_run_s, 1)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this caller's turn, run the body, then let the next caller in."""
        if self._lock.locked() and self._waiting >= self.limit:
            REJECTED.inc()
            retry = self.retry_after_s()
            raise AnswerFailed(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the model is busy ({self._waiting} {'answer' if self._waiting == 1 else 'answers'} waiting); retry in"
                f" about {retry:g} s",
                retry_after_s=retry,
            )
        self._waiting += 1
        QUEUE_LENGTH.inc()
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
            QUEUE_LENGTH.dec()
        started = time.perf_counter()
        RUNNING.inc()
        try:
            yield
        finally:
            RUNNING.dec()
            # A running average keeps the retry hint close to how long answers really take.
            self.typical_run_s = 0.8 * self.typical_run_s + 0.2 * (time.perf_counter() - started)
            self._lock.release()
