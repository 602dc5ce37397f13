"""The statistics every comparison in a report shares: the difference of two metrics over
seeds with its t interval (paired by seed where the seeds allow), the decision that interval
gives against a margin, and a metric's resolution (the floor under its standard deviations).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def equivalence(low: float, high: float, margin: float) -> str:
    """The decision on a gap's interval: robust when wholly below ``margin``, not robust when
    wholly above it, inconclusive otherwise (or when the interval is unknown)."""
    if high < margin:
        return "robust"
    if low > margin:
        return "not robust"
    return "inconclusive"


def difference_interval(
    a: pd.Series,
    b: pd.Series,
    confidence: float = 0.90,
    sd_floor: float = 0.0,
    min_pairs: int = 3,
) -> tuple[float, float, float, str]:
    """Mean of ``a - b`` and its ``confidence`` t interval, for two samples indexed by seed:
    paired by seed over the seeds both ran when they ran the same seeds, or share at least
    ``min_pairs`` of them and at least half of the larger side's (a seed on one side only is
    then left out: a few failed seeds cost no pairing, but pairs are not bought with most of the
    data), Welch's otherwise.
    Standard deviations are taken as at least ``sd_floor`` (the metric's resolution). Returns
    (difference, low, high, test): the test is "paired t", "paired t on N shared seeds" when
    some seeds were left out, or "Welch t"; NaN bounds with fewer than two values a side."""
    quantile = 0.5 + confidence / 2
    shared = a.index.intersection(b.index)
    same = set(a.index) == set(b.index)
    if same or len(shared) >= max(min_pairs, max(len(a), len(b)) / 2):
        test = "paired t" if same else f"paired t on {len(shared)} shared seeds"
        diff = a.reindex(shared) - b.reindex(shared)
        n = len(diff)
        if n < 2:
            return (float(diff.mean()) if n else np.nan), np.nan, np.nan, test
        sd = max(float(diff.std(ddof=1)), sd_floor)
        half = stats.t.ppf(quantile, n - 1) * sd / np.sqrt(n)
        return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half), test
    gap = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return gap, np.nan, np.nan, "Welch t"
    va = max(float(a.std(ddof=1)), sd_floor) ** 2 / len(a)
    vb = max(float(b.std(ddof=1)), sd_floor) ** 2 / len(b)
    if va + vb == 0:
        return gap, gap, gap, "Welch t"
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    half = stats.t.ppf(quantile, df) * np.sqrt(va + vb)
    return gap, gap - half, gap + half, "Welch t"


def resolution(values: pd.Series) -> float:
    """The smallest step between distinct values of a metric (one test image for an accuracy:
    1/540 on digits), 0 when fewer than two distinct values."""
    distinct = np.unique(np.round(values.dropna().to_numpy(dtype=float), 9))
    steps = np.diff(distinct)
    steps = steps[steps > 1e-7]
    return float(steps.min()) if len(steps) else 0.0
