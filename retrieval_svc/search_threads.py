"""The threads retrieval_svc's CPU-bound work runs in, with the context copied so trace spans stay connected.

Searches (query embedding, index search) share one thread per core: on two cores eight concurrent searches then
finish one pair after another instead of all together at the end, which halves the median wait for the same work.
Ingestion and deletes use asyncio's default pool, so a long upload never holds a search's thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


async def in_pool(pool: ThreadPoolExecutor, func: Callable[..., T], *args: object) -> T:
    """asyncio.to_thread on a given pool: the context (the current span) goes along."""
    call = functools.partial(contextvars.copy_context().run, func, *args)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


def search_pool() -> ThreadPoolExecutor:
    """The threads searches run in: one per core, since a search's encoder and scans are one thread each (more
    only shared the cores and lengthened p95; benchmarks/README.md, "Four search threads")."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="search")
