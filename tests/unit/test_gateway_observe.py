"""The gateway's rolling window: rates and nearest-rank percentiles over the last minute."""

from __future__ import annotations

from gateway.observe import RollingWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_use_nearest_rank() -> None:
    window = RollingWindow(span_s=60, clock=FakeClock())
    for value in range(1, 101):
        window.add(float(value))
    assert window.percentile(50) == 50.0
    assert window.percentile(95) == 95.0
    assert window.percentile(100) == 100.0
    assert window.percentile(0) == 1.0


def test_old_samples_leave_the_window() -> None:
    clock = FakeClock()
    window = RollingWindow(span_s=10, clock=clock)
    for _ in range(20):
        window.add(0.5)
    assert window.rate() == 2.0
    clock.now += 11
    assert window.rate() == 0.0
    assert window.percentile(50) is None
