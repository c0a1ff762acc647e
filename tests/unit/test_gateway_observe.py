"""The gateway's rolling window: rates and percentiles (interpolated, as the bench's) over the last minute."""

from __future__ import annotations

import pytest

from gateway.observe import RollingWindow
from likeopt.ops.bench.stats import summary_ms


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_interpolate_like_the_bench() -> None:
    window = RollingWindow(span_s=60, clock=FakeClock())
    values = [float(value) for value in range(1, 101)]
    for value in values:
        window.add(value)
    for q in (0, 50, 95, 99, 100):
        assert window.percentile(q) == pytest.approx(summary_ms(values, quantiles=(q,))[f"p{q}"] / 1000)
    assert window.percentile(95) == pytest.approx(95.05)


def test_old_samples_leave_the_window() -> None:
    clock = FakeClock()
    window = RollingWindow(span_s=10, clock=clock)
    for _ in range(20):
        window.add(0.5)
    assert window.rate() == 2.0
    clock.now += 11
    assert window.rate() == 0.0
    assert window.percentile(50) is None
