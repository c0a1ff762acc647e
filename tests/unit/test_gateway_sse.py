"""SSE framing and heartbeats: quiet upstreams get comments, closed clients close the upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

from gateway.sse import HEARTBEAT, sse_frame, with_heartbeats


def test_frame_has_id_event_and_one_data_line() -> None:
    frame = sse_frame(7, "delta", {"text": "line one\nline two"}).decode()
    lines = frame.split("\n")
    assert lines[:2] == ["id: 7", "event: delta"]
    assert json.loads(lines[2].removeprefix("data: ")) == {"text": "line one\nline two"}
    assert frame.endswith("\n\n") and frame.count("\n") == 4


async def test_heartbeats_fill_quiet_gaps_and_frames_pass_through() -> None:
    async def slow() -> AsyncGenerator[bytes, None]:
        yield b"a"
        await asyncio.sleep(0.35)
        yield b"b"

    received = [frame async for frame in with_heartbeats(slow(), heartbeat_s=0.1)]
    assert received[0] == b"a" and received[-1] == b"b"
    assert received.count(HEARTBEAT) >= 2
    assert set(received[1:-1]) == {HEARTBEAT}


async def test_closing_the_stream_closes_the_upstream() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"x"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    stream = with_heartbeats(endless(), heartbeat_s=1.0)
    assert await anext(stream) == b"x"
    await stream.aclose()
    assert closed.is_set()
