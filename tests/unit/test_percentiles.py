"""The one percentile: numpy's linear interpolation, shared by the dashboard, the bench and eval."""

from __future__ import annotations

import numpy as np
import pytest

from likeopt.runtime.percentiles import percentile


def test_percentile_interpolates_between_closest_ranks_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    skewed = [0.001, 0.002, 0.002, 0.004, 0.250]
    assert percentile(skewed, 95) == pytest.approx(float(np.percentile(skewed, 95)))


def test_percentile_ignores_input_order_takes_any_iterable_and_handles_one_value() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile((v for v in (3.0, 1.0)), 50) == 2.0
    assert percentile([7.0], 99) == 7.0


def test_no_samples_is_none_not_a_number() -> None:
    assert percentile([], 50) is None


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="0-100"):
        percentile([1.0], q)
