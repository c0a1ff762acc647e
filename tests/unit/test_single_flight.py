"""SingleFlight shares one computation among concurrent callers of the same key."""

from __future__ import annotations

import asyncio

import pytest

from likeopt.caching.single_flight import SingleFlight


async def test_fifty_concurrent_callers_share_one_computation() -> None:
    calls = 0
    gate = asyncio.Event()

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "value"

    flight: SingleFlight[str] = SingleFlight()
    waiters = [asyncio.create_task(flight.run("k", compute)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == ["value"] * 50
    assert calls == 1
    assert len(flight) == 0


async def test_different_keys_compute_separately_and_later_calls_recompute() -> None:
    calls: list[str] = []

    async def compute(key: str) -> str:
        calls.append(key)
        return key.upper()

    flight: SingleFlight[str] = SingleFlight()
    assert await asyncio.gather(flight.run("a", lambda: compute("a")), flight.run("b", lambda: compute("b"))) == [
        "A",
        "B",
    ]
    assert await flight.run("a", lambda: compute("a")) == "A"
    assert calls == ["a", "b", "a"]


async def test_errors_reach_every_waiter_and_cancelling_one_waiter_spares_the_rest() -> None:
    gate = asyncio.Event()

    async def failing() -> str:
        await gate.wait()
        raise RuntimeError("boom")

    flight: SingleFlight[str] = SingleFlight()
    first = asyncio.create_task(flight.run("k", failing))
    second = asyncio.create_task(flight.run("k", failing))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    with pytest.raises(RuntimeError, match="boom"):
        await second
    assert first.cancelled()


async def test_a_caller_after_the_computation_finished_gets_a_new_one_even_before_it_is_forgotten() -> None:
    """A finished computation's done callback runs on a later turn of the loop: a caller in between, on the same
    turn, must not be handed the old result (it may have been computed before what that caller must see)."""
    computed = 0

    async def compute() -> int:
        nonlocal computed
        computed += 1
        return computed

    flight: SingleFlight[int] = SingleFlight()
    first = asyncio.ensure_future(flight.run("k", compute))
    await asyncio.sleep(0)  # the first call starts the computation
    await asyncio.sleep(0)  # which finishes; its done callback runs on the next turn
    assert await flight.run("k", compute) == 2  # on the turn the first finished, before its callback forgot it
    assert await first == 1 and len(flight) == 0
