"""Server-Sent Events: framing, and heartbeats while the upstream is quiet.

A heartbeat comment goes out whenever no event has for ``heartbeat_s`` seconds, so
proxies' idle timeouts never cut a live answer. When the client goes away the
generator is closed, which closes the upstream iterator and so cancels the gRPC
call: generation stops.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

HEARTBEAT = b": keep-alive\n\n"


def sse_frame(event_id: int, event: str, data: dict[str, Any]) -> bytes:
    """One event; JSON never contains a raw newline, so data fits one line."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n".encode()


async def with_heartbeats(frames: AsyncGenerator[bytes, None], heartbeat_s: float) -> AsyncIterator[bytes]:
    """Relay frames, inserting a heartbeat after each quiet interval."""

    async def next_frame() -> bytes:
        return await anext(frames)

    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.create_task(next_frame())
            done, _ = await asyncio.wait({pending}, timeout=heartbeat_s)
            if not done:
                yield HEARTBEAT
                continue
            task, pending = pending, None
            try:
                frame = task.result()
            except StopAsyncIteration:
                return
            yield frame
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await frames.aclose()
