"""The index version as a feed: WatchIndex streams it to clients that keep results near them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class VersionFeed:
    """The latest index version and a way to wait for the next; used on the event loop only."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.closed = False
        self._changed = asyncio.Event()

    def publish(self, version: int) -> None:
        """Announce version to every watcher (nothing happens when it is not new)."""
        if version == self.version:
            return
        self.version = version
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """End every watch (the service is shutting down)."""
        self.closed = True
        self._changed.set()

    async def watch(self) -> AsyncIterator[int]:
        """The current version (once there is one), then each new one; a slow watcher skips to the latest."""
        sent: int | None = None
        while not self.closed:
            changed = self._changed
            if self.version is not None and self.version != sent:
                sent = self.version
                yield sent
                continue
            await changed.wait()
