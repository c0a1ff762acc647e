"""One conversation's turns are taken one at a time in this process, and a deletion is never undone.

A turn is its conversation as loaded when the question came, plus the answer, saved whole when the answer ends.
Two questions on one conversation at once each saved their own copy and the last write won (a turn lost), and a
deletion while a question was being answered was undone by that answer's save. Here a question waits for the
one before it on the same conversation, and a deletion marks the question in flight, whose turn is then not
saved. Replicas of generation_svc do not share these locks: across them the last write still wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Turn:
    """The holder of one conversation's lock: whether its turn may be saved (not when the conversation was
    deleted while it ran, nor when it could not be loaded, as saving would replace the turns it did not see)."""

    save: bool = True


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    holder: Turn | None = None


class TurnLocks:
    """An asyncio lock per conversation key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @asynccontextmanager
    async def held(self, key: str) -> AsyncIterator[Turn]:
        """Hold key's lock for the block (a new conversation nobody else knows, the empty key, needs none)."""
        turn = Turn()
        if not key:
            yield turn
            return
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
                entry.holder = turn
                try:
                    yield turn
                finally:
                    entry.holder = None
        finally:
            entry.users -= 1
            if not entry.users:
                del self._entries[key]

    def deleted(self, key: str) -> None:
        """The conversation was deleted: the question being answered on it must not save it again."""
        entry = self._entries.get(key)
        if entry is not None and entry.holder is not None:
            entry.holder.save = False

    def __len__(self) -> int:
        return len(self._entries)
