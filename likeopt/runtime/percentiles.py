"""The one percentile every figure uses: the dashboard, ``likeopt bench``, ``likeopt eval`` and benchmarks/.

Three hand-written versions used to disagree (two interpolated, the dashboard took the
nearest rank), so the dashboard and the bench could print different p95s for the same
requests. numpy's default, linear interpolation between the closest ranks, is what
most tools report, so a figure here can be compared with one computed elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) of values by linear interpolation (numpy's default); None when empty.

    None rather than 0 or NaN, so "no samples" cannot be mistaken for a measurement.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    samples = np.fromiter(values, dtype=float)
    if samples.size == 0:
        return None
    return float(np.percentile(samples, q))
