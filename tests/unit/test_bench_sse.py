"""The bench's incremental SSE reader: events come out whole however the bytes are split."""

from __future__ import annotations

import json

import pytest

from gateway.sse import HEARTBEAT, sse_frame
from likeopt.ops.bench.sse import Event, SseParser

STREAM = (
    sse_frame(1, "retrieval", {"hits": []})
    + HEARTBEAT
    + sse_frame(2, "delta", {"text": "Gr\u00fc\u00dfe, \u4e16\u754c"})
    + sse_frame(3, "done", {"cached": True})
)


def parse_in_pieces(data: bytes, size: int) -> list[Event]:
    parser = SseParser()
    events: list[Event] = []
    for start in range(0, len(data), size):
        events += parser.feed(data[start : start + size])
    return events


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_gateway_frames_parse_whatever_the_chunking(size: int) -> None:
    events = parse_in_pieces(STREAM, size)
    assert [(e.event, e.id) for e in events] == [("retrieval", "1"), ("delta", "2"), ("done", "3")]
    assert json.loads(events[1].data) == {"text": "Gr\u00fc\u00dfe, \u4e16\u754c"}


def test_an_event_is_dispatched_only_at_its_blank_line() -> None:
    parser = SseParser()
    assert parser.feed(b"event: delta\ndata: {}\n") == []
    assert parser.feed(b"\n") == [Event("delta", "{}")]


@pytest.mark.parametrize("size", [1, 5, 100])
def test_crlf_and_cr_line_ends_and_multi_line_data(size: int) -> None:
    data = b"event: a\r\ndata: one\r\ndata: two\r\n\r\ndata: plain\r\rid: 9\ndata:x\n\n"
    events = parse_in_pieces(data, size)
    assert events == [Event("a", "one\ntwo"), Event("message", "plain"), Event("message", "x", "9")]


def test_comments_alone_dispatch_nothing() -> None:
    assert SseParser().feed(b": keep-alive\n\n: again\n\n") == []
