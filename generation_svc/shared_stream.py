"""Single flight for streams: concurrent identical questions generate once, and all watch it live.

likeopt.caching.single_flight shares a finished result; an answer must reach every caller
token by token, so here the first caller's stream runs in its own task, recording
its events, and every caller (the first included) replays the record and then
follows it as it grows. When the last caller leaves, the generation is cancelled,
so a cancelled answer stops the model even when it was shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    """One running stream: the events so far, and how it ended."""

    def __init__(self) -> None:
        self.events: list[T] = []
        self.finished = False
        self.failure: BaseException | None = None
        self.changed = asyncio.Event()
        self.watchers = 0
        self.task: asyncio.Task[None] | None = None

    async def record(self, source: AsyncIterator[T]) -> None:
        try:
            async for event in source:
                self.events.append(event)
                self.changed.set()
        except Exception as exc:  # every watcher re-raises it
            self.failure = exc
        finally:
            self.finished = True
            self.changed.set()


class SharedStreams(Generic[T]):
    """Runs at most one stream per key at a time; later callers join it from the start."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def watch(self, key: Hashable, start: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Every event of the stream for key, starting it with start() when none is running."""
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight()
            self._flights[key] = flight
            flight.task = asyncio.create_task(flight.record(start()))
            flight.task.add_done_callback(lambda _: self._forget(key, flight))
        flight.watchers += 1
        try:
            seen = 0
            while True:
                while seen < len(flight.events):
                    seen += 1
                    yield flight.events[seen - 1]
                if flight.finished:
                    break
                flight.changed.clear()
                await flight.changed.wait()
            if flight.failure is not None:
                raise flight.failure
        finally:
            flight.watchers -= 1
            if flight.watchers == 0 and flight.task is not None and not flight.task.done():
                flight.task.cancel()
                self._forget(key, flight)

    def _forget(self, key: Hashable, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
