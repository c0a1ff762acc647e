"""SSE framing and heartbeats: quiet upstreams get comments, closed clients close the upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import pytest

from gateway.sse import HEARTBEAT, QUEUED_FRAMES, sse_frame, with_heartbeats


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


async def test_an_upstream_failure_reaches_the_client_after_the_frames_before_it() -> None:
    async def failing() -> AsyncGenerator[bytes, None]:
        yield b"a"
        raise RuntimeError("upstream broke")

    received = []
    with pytest.raises(RuntimeError, match="upstream broke"):
        async for frame in with_heartbeats(failing(), heartbeat_s=1.0):
            received.append(frame)
    assert received == [b"a"]


async def test_a_slow_client_holds_the_upstream_back() -> None:
    produced = 0

    async def endless() -> AsyncGenerator[bytes, None]:
        nonlocal produced
        while True:
            produced += 1
            yield b"x"

    stream = with_heartbeats(endless(), heartbeat_s=1.0)
    assert await anext(stream) == b"x"
    for _ in range(100):  # the reader runs as far as the queue lets it
        await asyncio.sleep(0)
    assert produced <= QUEUED_FRAMES + 2
    await stream.aclose()
