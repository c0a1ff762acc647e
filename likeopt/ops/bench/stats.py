"""Latency statistics: percentile summaries and histograms over raw samples.

Every sample is kept (a run is bounded in time and count), so percentiles are exact
order statistics, not estimates from pre-set buckets; they come from likeopt.runtime.percentiles,
the one definition the dashboard and ``likeopt eval`` use too.
"""

from __future__ import annotations

from collections.abc import Sequence

from likeopt.runtime.percentiles import percentile


def summary_ms(seconds: Sequence[float], quantiles: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """``{"p50": …, "p95": …, "p99": …, "max": …}`` in milliseconds, rounded to microseconds."""
    figures: dict[str, float | None] = {f"p{q}": _ms(percentile(seconds, q)) for q in quantiles}
    figures["max"] = _ms(max(seconds)) if seconds else None
    return figures


def histogram(values: Sequence[float], bins: int = 30) -> list[tuple[float, float, int]]:
    """Counts in ``bins`` equal-width bins from the smallest to the largest value: (low, high, count)."""
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    if not values:
        return []
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return [(low + i * width, low + (i + 1) * width, count) for i, count in enumerate(counts)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
