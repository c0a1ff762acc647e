"""A readers-writer lock: searches share the index, writes have it alone.

Searches used to take the index one at a time, so while one search thread was in FAISS or BM25's numpy
work (both release the GIL) the other waited for the lock with a core free; on a large collection the
locked part (dense and lexical search, about 20 ms at 500,000 chunks) outgrows the query embedding, which
runs outside it. The standard library has no such lock, and the PyPI packages that offer one are
unmaintained, so this is the small writer-preferring one the engine needs: a waiting writer (an upsert or
a replica catching up) stops new readers from entering, so a steady stream of searches cannot starve it.
Neither side is reentrant, and a reader must not ask for the write side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Any number of readers at once, or one writer."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._readers = 0
        self._writers_waiting = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock shared for the block; waits while a writer holds it or waits for it."""
        with self._changed:
            self._changed.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                if not self._readers:
                    self._changed.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lock alone for the block; waits for the readers inside to leave, and for other writers."""
        with self._changed:
            self._writers_waiting += 1
            try:
                self._changed.wait_for(lambda: not self._writing and not self._readers)
            finally:
                self._writers_waiting -= 1
                self._changed.notify_all()  # readers held back for this writer re-check, should it have given up
            self._writing = True
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
