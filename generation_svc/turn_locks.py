"""One conversation's turns are taken one at a time in this process.

A turn is its conversation as loaded when the question came, plus the answer, saved whole when the answer is
done. Two questions on one conversation at once each saved their own copy and the last write won (a turn lost),
and a deletion while a question was being answered was undone by that answer's save. Here a question waits for
the one before it on the same conversation, and a deletion for the question in flight. Replicas of
generation_svc do not share these locks: across them the last write still wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TurnLocks:
    """An asyncio lock per conversation key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def held(self, key: str) -> AsyncIterator[None]:
        """Hold key's lock for the block (no lock for the empty key: a new conversation nobody else knows)."""
        if not key:
            yield
            return
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
