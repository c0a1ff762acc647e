"""Percentile summaries and histograms of the bench (the percentile itself: test_percentiles.py)."""

from __future__ import annotations

import pytest

from likeopt.ops.bench.stats import histogram, summary_ms


def test_summary_is_in_milliseconds_with_max() -> None:
    figures = summary_ms([0.001, 0.002, 0.003, 0.1])
    assert set(figures) == {"p50", "p95", "p99", "max"}
    assert figures["p50"] == pytest.approx(2.5)
    assert figures["max"] == pytest.approx(100.0)
    assert summary_ms([], quantiles=(50, 95)) == {"p50": None, "p95": None, "max": None}


def test_histogram_counts_every_value_once_and_puts_the_largest_in_the_last_bin() -> None:
    values = [0.0, 1.0, 1.5, 2.0, 9.99, 10.0]
    bins = histogram(values, bins=5)
    assert [count for _, _, count in bins] == [3, 1, 0, 0, 2]
    assert bins[0][0] == 0.0 and bins[-1][1] == pytest.approx(10.0)


def test_histogram_of_equal_values_and_of_nothing() -> None:
    assert sum(count for _, _, count in histogram([2.0, 2.0, 2.0], bins=4)) == 3
    assert histogram([], bins=4) == []
    with pytest.raises(ValueError):
        histogram([1.0], bins=0)
