"""Per-fraction summaries over seeds and the side views of an explore sweep: how much the
explore fraction matters at each condition, and how sharpness goes with accuracy.

Only trials that finished their budget without diverging enter a mean (see
:mod:`analysis.trials`): diverged and failed trials are counted in their own columns. The
explore-fraction views use the Knee trials (baselines have no explore phase); a study that also
sweeps other axes (epochs, decay, ...) is summarised per combination of them, so no mean ever
mixes two conditions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.trials import conditions, knee_trials, metric_outcome, usable
from analysis.wording import Unit, describe

_COUNTED = ("diverged", "stopped", "failed")
SUMMARY_COLUMNS = (
    *("n", "mean", "std", "ci_low", "ci_high"),
    *("best", "best_seed", "worst", "worst_seed", "diverged", "stopped", "failed"),
)


def explore_summary(
    runs: pd.DataFrame, metric: str = "test_acc", confidence: float = 0.95, mode: str = ""
) -> pd.DataFrame:
    """Per condition (peak LR, ...) and explore fraction over seeds: ``n`` usable seeds, mean,
    std, the ``confidence`` t interval of the mean (``ci_low``, ``ci_high``; NaN for one seed),
    the best and worst seed and their values (best: the highest for ``mode`` "max", the lowest
    for "min"; by default from the name, so the lowest sharpness or loss: see
    :func:`analysis.wording.lower_is_better`), and how many seeds ``diverged``, were
    ``stopped`` early by the scheduler or ``failed`` (crashed, killed, still running)."""
    if metric not in runs:
        raise KeyError(f"no metric {metric!r} in the runs; columns: {', '.join(runs.columns)}")
    trials = knee_trials(runs).reset_index(drop=True)  # unique labels for the masks
    keys = [*conditions(trials), "explore_fraction"]
    ok = usable(trials, metric)
    ending = metric_outcome(trials, metric)
    low_best = Unit(metric, mode).mode == "min"
    rows = []
    for key, cell in trials.groupby(keys, sort=True, dropna=False):
        good = cell[ok.loc[cell.index]]
        values = good[metric]
        n = len(values)
        mean, std = (values.mean(), values.std(ddof=1)) if n else (np.nan, np.nan)
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n) if n > 1 else np.nan
        best, worst = (None, None)
        if n:
            low, high = good.loc[values.idxmin()], good.loc[values.idxmax()]
            best, worst = (low, high) if low_best else (high, low)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "n": n,
                "mean": mean,
                "std": std,
                "ci_low": mean - half,
                "ci_high": mean + half,
                "best": best[metric] if n else np.nan,
                "best_seed": best["seed"] if n else pd.NA,
                "worst": worst[metric] if n else np.nan,
                "worst_seed": worst["seed"] if n else pd.NA,
                **{name: int((ending.loc[cell.index] == name).sum()) for name in _COUNTED},
            }
        )
    summary = pd.DataFrame(rows, columns=[*keys, *SUMMARY_COLUMNS])
    return summary.astype({"best_seed": "Int64", "worst_seed": "Int64"})


def sharpness_correlation(
    runs: pd.DataFrame, x: str = "sharpness", y: str = "test_acc", min_trials: int = 8
) -> pd.DataFrame:
    """Spearman correlation of ``x`` with ``y`` over all usable trials, and within each condition
    that has at least ``min_trials`` of them (below that, the p-value's approximation is off and
    one row per search point says nothing): columns ``scope``, ``n``, ``rho``, ``p_value``."""
    good = runs[usable(runs, x) & usable(runs, y)]
    scopes = [("all trials", good)]
    keys = conditions(good) if len(good) else ["peak_lr"]
    for key, cell in good.groupby(keys, sort=True, dropna=False):
        if len(cell) >= min_trials:
            scopes.append((describe(keys, key), cell))
    rows = []
    for scope, cell in scopes:
        enough = len(cell) >= min_trials
        rho, p = stats.spearmanr(cell[x], cell[y]) if enough else (np.nan, np.nan)
        rows.append({"scope": scope, "n": len(cell), "rho": rho, "p_value": p})
    return pd.DataFrame(rows)


def explore_sensitivity(
    runs: pd.DataFrame, metric: str = "test_acc", mode: str = ""
) -> pd.DataFrame:
    """Per condition: the best and worst explore fraction by mean ``metric`` (best: the
    lowest for ``mode`` "min", by default for a loss or sharpness) and the range between them
    (how much the choice of explore fraction matters there; always >= 0)."""
    low_best = Unit(metric, mode).mode == "min"
    summary = explore_summary(runs, metric).dropna(subset=["mean"])
    keys = conditions(knee_trials(runs))
    rows = []
    for key, cell in summary.groupby(keys, sort=True, dropna=False):
        high, low = cell.loc[cell["mean"].idxmax()], cell.loc[cell["mean"].idxmin()]
        best, worst = (low, high) if low_best else (high, low)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "best_fraction": best["explore_fraction"],
                "best_mean": best["mean"],
                "worst_fraction": worst["explore_fraction"],
                "worst_mean": worst["mean"],
                "range": high["mean"] - low["mean"],
            }
        )
    return pd.DataFrame(rows)
