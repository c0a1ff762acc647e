"""Background cache writes in batches: the first at once, the rest per window, outside any trace."""

from __future__ import annotations

import asyncio

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from likeopt.caching import write_batches
from likeopt.caching.write_batches import WriteBatches
from likeopt.v1 import cache_pb2

LONG_WINDOW_S = 3600.0
"""Longer than any test: whatever is sent before close() was sent without waiting for a window."""


class Recorder:
    """A send function that records each batch's keys and whether it ran inside a trace."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.in_a_trace: list[bool] = []

    async def __call__(self, writes: list[cache_pb2.SetRequest]) -> None:
        self.in_a_trace.append(trace.get_current_span().get_span_context().is_valid)
        self.batches.append([w.key for w in writes])


def write(key: str, size: int = 1) -> cache_pb2.SetRequest:
    return cache_pb2.SetRequest(namespace="search", key=key, value=b"x" * size)


async def settle() -> None:
    """Let the sender task run as far as it can without time passing."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_the_first_write_goes_at_once_and_the_rest_wait_for_the_window_or_close() -> None:
    sent = Recorder()
    batches = WriteBatches(sent, LONG_WINDOW_S)
    batches.add(write("a"))
    await settle()
    assert sent.batches == [["a"]]
    for key in "bcd":
        batches.add(write(key))
    await settle()
    assert sent.batches == [["a"]]  # inside the window: held
    await asyncio.wait_for(batches.close(timeout_s=5), 10)
    assert sent.batches == [["a"], ["b", "c", "d"]]


async def test_after_a_quiet_window_the_next_write_goes_at_once_again() -> None:
    sent = Recorder()
    batches = WriteBatches(sent, 0.01)
    batches.add(write("a"))
    assert batches._sender is not None
    await asyncio.wait_for(batches._sender, 10)  # the window passes with nothing queued: the sender ends
    batches.add(write("b"))
    await settle()
    assert sent.batches == [["a"], ["b"]]
    await batches.close(timeout_s=5)


async def test_batches_are_bounded_in_bytes() -> None:
    sent = Recorder()
    batches = WriteBatches(sent, LONG_WINDOW_S)
    batches.add(write("first"))
    await settle()
    third = write_batches.MAX_BATCH_BYTES // 3
    for key, size in [("a", third), ("b", third), ("c", third), ("d", 1), ("e", 2), ("huge", 2 * third * 3)]:
        batches.add(write(key, size))
    await asyncio.wait_for(batches.close(timeout_s=5), 10)
    assert sent.batches == [["first"], ["a", "b", "c", "d"], ["e"], ["huge"]]


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_when_cache_svc_cannot_keep_up_the_oldest_writes_are_dropped_and_counted() -> None:
    dropped = counted("likeopt_cache_batched_writes_total", result="dropped")
    sent_before = counted("likeopt_cache_batched_writes_total", result="sent")
    sent = Recorder()
    batches = WriteBatches(sent, LONG_WINDOW_S)
    for n in range(write_batches.MAX_QUEUED + 5):  # nothing is sent before the loop yields
        batches.add(write(str(n)))
    await asyncio.wait_for(batches.close(timeout_s=5), 10)
    keys = [key for batch in sent.batches for key in batch]
    assert len(keys) == write_batches.MAX_QUEUED and keys[0] == "5" and keys[-1] == str(write_batches.MAX_QUEUED + 4)
    assert counted("likeopt_cache_batched_writes_total", result="dropped") - dropped == 5
    assert counted("likeopt_cache_batched_writes_total", result="sent") - sent_before == write_batches.MAX_QUEUED


async def test_a_batch_is_sent_outside_the_trace_of_the_request_that_started_it() -> None:
    sent = Recorder()
    batches = WriteBatches(sent, LONG_WINDOW_S)
    with TracerProvider().get_tracer("test").start_as_current_span("request"):
        batches.add(write("a"))
    await asyncio.wait_for(batches.close(timeout_s=5), 10)
    assert sent.in_a_trace == [False]
