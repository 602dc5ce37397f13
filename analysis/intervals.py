"""The statistics every comparison in a report shares: the difference of two metrics over
seeds with its t interval (paired by seed where the seeds allow), the difference of two
divergence rates with its Newcombe interval, the decision an interval gives against a margin,
how many seeds would decide an open question, and a metric's resolution (the floor under its
standard deviations).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats


@lru_cache(maxsize=4096)
def _t(quantile: float, df: float) -> float:
    """Student's t quantile; cached, since a study asks for the same few thousands of times
    (scipy's ppf costs a fraction of a millisecond a call)."""
    return float(stats.t.ppf(quantile, df))


@lru_cache(maxsize=256)
def _z(quantile: float) -> float:
    return float(stats.norm.ppf(quantile))


class Gap(NamedTuple):
    """``a - b`` over seeds and its interval. ``spread`` and ``n`` are what the interval's
    half-width came from (half = t * spread / sqrt(n), n seeds a side), for
    :func:`seeds_needed`."""

    estimate: float
    low: float
    high: float
    test: str
    spread: float = np.nan
    n: int = 0


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
) -> Gap:
    """Mean of ``a - b`` and its ``confidence`` t interval, for two samples indexed by seed:
    paired by seed over the seeds both ran when they ran the same seeds, or share at least
    ``min_pairs`` of them and at least half of the larger side's (a seed on one side only is
    then left out: a few failed seeds cost no pairing, but pairs are not bought with most of the
    data), Welch's otherwise.
    Standard deviations are taken as at least ``sd_floor`` (the metric's resolution). The test
    is "paired t", "paired t on N shared seeds" when some seeds were left out, or "Welch t";
    NaN bounds with fewer than two values a side."""
    quantile = 0.5 + confidence / 2
    shared = a.index.intersection(b.index)
    same = set(a.index) == set(b.index)
    if same or len(shared) >= max(min_pairs, max(len(a), len(b)) / 2):
        test = "paired t" if same else f"paired t on {len(shared)} shared seeds"
        diff = a.reindex(shared) - b.reindex(shared)
        n = len(diff)
        if n < 2:
            return Gap(float(diff.mean()) if n else np.nan, np.nan, np.nan, test, np.nan, n)
        sd = max(float(diff.std(ddof=1)), sd_floor)
        half = _t(quantile, n - 1) * sd / np.sqrt(n)
        mean = float(diff.mean())
        return Gap(mean, mean - half, mean + half, test, sd, n)
    gap = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Gap(gap, np.nan, np.nan, "Welch t", np.nan, min(len(a), len(b)))
    sa, sb = max(float(a.std(ddof=1)), sd_floor), max(float(b.std(ddof=1)), sd_floor)
    va, vb = sa**2 / len(a), sb**2 / len(b)
    spread, n = float(np.hypot(sa, sb)), min(len(a), len(b))
    if va + vb == 0:
        return Gap(gap, gap, gap, "Welch t", spread, n)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    half = _t(quantile, df) * np.sqrt(va + vb)
    return Gap(gap, gap - half, gap + half, "Welch t", spread, n)


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion (``confidence`` two-sided)."""
    if n == 0:
        return 0.0, 1.0
    z = _z(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(k1: int, n1: int, k2: int, n2: int, confidence: float) -> Gap:
    """``k1/n1 - k2/n2`` and its interval by Newcombe's hybrid score method (his method 10:
    Wilson intervals of each rate, combined), which keeps its level at 0 of n and n of n where
    the plain Wald interval collapses to a point."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, confidence), wilson(k2, n2, confidence)
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Gap(float(d), float(low), float(high), "Newcombe score", np.nan, min(n1, n2))


def seeds_needed(gap: Gap, margin: float, confidence: float, most: int = 1000) -> int | None:
    """Seeds a side that would put ``gap``'s interval wholly on one side of ``margin`` if the
    estimate and the spread stayed as observed: below it when the estimate is below the margin,
    above it otherwise. None when the spread is unknown or the estimate sits on the margin."""
    distance = abs(margin - gap.estimate)
    if not (np.isfinite(gap.spread) and distance > 0):
        return None
    if gap.spread == 0:
        return max(gap.n, 2)
    quantile = 0.5 + confidence / 2

    def enough(n: int) -> bool:
        return _t(quantile, n - 1) * gap.spread / np.sqrt(n) < distance

    low, high = max(gap.n, 2), most
    if not enough(high):
        return None
    while low < high:  # the half-width shrinks as n grows: bisect for the first n that fits
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle + 1, high)
    return low


def resolution(values: pd.Series) -> float:
    """The smallest step between distinct values of a metric (one test image for an accuracy:
    1/540 on digits), 0 when fewer than two distinct values."""
    distinct = np.unique(np.round(values.dropna().to_numpy(dtype=float), 9))
    steps = np.diff(distinct)
    steps = steps[steps > 1e-7]
    return float(steps.min()) if len(steps) else 0.0
