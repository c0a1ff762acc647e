"""Single-flight: concurrent identical misses share one computation instead of stampeding."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs at most one computation per key at a time; later callers await the first one's result."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """The result of compute() for key, shared with every concurrent caller of the same key.

        A caller that is cancelled does not cancel the computation for the others. One that comes after the
        computation finished gets a new one, even before the finished one is forgotten: a caller may need a result
        computed after it came (a catch-up that read the store after a write it was told of).
        """
        future = self._inflight.get(key)
        if future is None or future.done():  # finished, its done callback not run yet: no longer in flight
            future = asyncio.ensure_future(compute())
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(future)

    def _landed(self, key: Hashable, future: asyncio.Future[T]) -> None:
        """Forget future once done, unless a later computation of key has taken its place already."""
        if self._inflight.get(key) is future:
            del self._inflight[key]

    def __len__(self) -> int:
        return len(self._inflight)
