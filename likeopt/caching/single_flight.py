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

        A caller that is cancelled does not cancel the computation for the others.
        """
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(compute())
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(future)

    def __len__(self) -> int:
        return len(self._inflight)
