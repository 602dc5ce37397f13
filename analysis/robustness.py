"""Is 50% explore robust? Per-fraction summaries over seeds, the verdict, and the side views.

Only trials that finished without diverging enter a mean: diverged and failed trials are counted
in their own columns (``diverged``, ``failed``) and weigh on the verdict explicitly, never
silently averaged in. The explore-fraction views use the Knee trials (baselines have no explore
phase); a study that also sweeps other axes (epochs, decay, ...) is summarised per combination
of them, so no mean ever mixes two conditions.

The verdict's test, at each condition (peak LR): take the explore fraction with the best mean,
and the gap ``best - fraction`` of the metric. Its 90% confidence interval is a t interval,
paired by seed when both fractions ran the same seeds (same initialisation and batch order, so
the pairing removes most of the seed noise) and Welch's otherwise. That is the two one-sided
tests (TOST) equivalence procedure at the 5% level:

* upper end below ``margin``  -> robust: the fraction is within ``margin`` of the best;
* lower end above ``margin``  -> not robust: it is worse than the best by more than ``margin``;
* otherwise                   -> inconclusive: more seeds would decide it.

Fewer than ``min_seeds`` seeds, the fraction not swept, a single fraction with enough seeds, or
no usable trials give "inconclusive", never a false "robust"; any diverged seed at the fraction
(while the best ran clean) gives "not robust". Overall: robust only when robust at every
condition, not robust when not robust at any.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.runs import REQUIRED_PARAMS

STATUSES = ("robust", "not robust", "inconclusive")
SUMMARY_COLUMNS = (
    *("n", "mean", "std", "ci_low", "ci_high"),
    *("best", "best_seed", "worst", "worst_seed", "diverged", "failed"),
)
_NOT_CONDITIONS = {*REQUIRED_PARAMS, "schedule"} - {"peak_lr"}


@dataclass(frozen=True)
class Verdict:
    """The answer to "is ``fraction`` explore robust?" and the numbers behind it."""

    status: str  # one of STATUSES
    table: pd.DataFrame  # one row per condition (peak LR): best fraction, gap, interval, decision
    explanation: str  # one sentence
    fraction: float
    margin: float
    metric: str


def conditions(runs: pd.DataFrame) -> list[str]:
    """The columns that split trials into separate experiments: peak LR first, then every other
    param that varies (epochs, decay, ...), never seed, explore fraction or schedule."""
    params = runs.attrs.get("params", ["peak_lr"])
    varying = [
        p
        for p in params
        if p not in _NOT_CONDITIONS and p != "peak_lr" and p in runs and runs[p].nunique() > 1
    ]
    return ["peak_lr", *varying]


def usable(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Trials whose final ``metric`` can be averaged: FINISHED, not diverged, metric present."""
    if metric not in runs:
        return pd.Series(False, index=runs.index)
    return (runs["status"] == "FINISHED") & ~runs["diverged"] & runs[metric].notna()


def knee_trials(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["schedule"] == "knee"] if "schedule" in runs else runs


def explore_summary(
    runs: pd.DataFrame, metric: str = "test_acc", confidence: float = 0.95
) -> pd.DataFrame:
    """Per condition (peak LR, ...) and explore fraction over seeds: ``n`` usable seeds, mean,
    std, the ``confidence`` t interval of the mean (``ci_low``, ``ci_high``; NaN for one seed),
    the best and worst seed and their values, and how many seeds ``diverged`` or ``failed``."""
    if metric not in runs:
        raise KeyError(f"no metric {metric!r} in the runs; columns: {', '.join(runs.columns)}")
    trials = knee_trials(runs).reset_index(drop=True)  # unique labels for the masks
    keys = [*conditions(trials), "explore_fraction"]
    ok = usable(trials, metric)
    rows = []
    for key, cell in trials.groupby(keys, sort=True):
        good = cell[ok.loc[cell.index]]
        values = good[metric]
        n = len(values)
        mean, std = (values.mean(), values.std(ddof=1)) if n else (np.nan, np.nan)
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n) if n > 1 else np.nan
        best, worst = (good.loc[values.idxmax()], good.loc[values.idxmin()]) if n else (None, None)
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
                "diverged": int(cell["diverged"].sum()),
                "failed": int(((cell["status"] != "FINISHED") & ~cell["diverged"]).sum()),
            }
        )
    summary = pd.DataFrame(rows, columns=[*keys, *SUMMARY_COLUMNS])
    return summary.astype({"best_seed": "Int64", "worst_seed": "Int64"})


def robustness_verdict(
    runs: pd.DataFrame,
    fraction: float = 0.5,
    margin: float = 0.002,
    metric: str = "test_acc",
    min_seeds: int = 3,
) -> Verdict:
    """Is explore ``fraction`` within ``margin`` (in ``metric`` units: 0.002 = 0.2 accuracy
    points) of the best explore fraction at every condition? See the module docstring for the
    test; ``verdict.table`` has the numbers behind each decision."""
    trials = knee_trials(runs).reset_index(drop=True)  # unique labels for the masks
    keys = conditions(trials)
    ok = usable(trials, metric)
    rows = [
        {
            **dict(zip(keys, key, strict=True)),
            **_decide(cell, ok, fraction, margin, metric, min_seeds),
        }
        for key, cell in trials.groupby(keys, sort=True)
    ]
    table = pd.DataFrame(rows)
    if table.empty:
        status = "inconclusive"
    elif (table["decision"] == "not robust").any():
        status = "not robust"
    elif (table["decision"] == "robust").all():
        status = "robust"
    else:
        status = "inconclusive"
    explanation = _explain(status, table, keys, fraction, margin, metric)
    return Verdict(status, table, explanation, fraction, margin, metric)


def _decide(
    cell: pd.DataFrame, ok: pd.Series, fraction: float, margin: float, metric: str, min_seeds: int
) -> dict:
    """The decision at one condition and the numbers behind it."""
    good = cell[ok.loc[cell.index]]
    by_fraction = good.groupby("explore_fraction")[metric]
    counts, means = by_fraction.size(), by_fraction.mean()
    at = np.isclose(cell["explore_fraction"], fraction)
    row = {
        "best_fraction": np.nan,
        "best_mean": np.nan,
        "fraction_mean": np.nan,
        "gap": np.nan,
        "gap_low": np.nan,
        "gap_high": np.nan,
        "n_best": 0,
        "n_fraction": int(np.isclose(good["explore_fraction"], fraction).sum()),
        "diverged": int(cell.loc[at, "diverged"].sum()),
        "test": "",
        "decision": "inconclusive",
        "reason": "",
    }
    if not at.any():
        return {**row, "reason": "not swept"}
    enough = means[counts >= min_seeds]
    if enough.empty:
        return {**row, "reason": f"fewer than {min_seeds} usable seeds per fraction"}
    if len(enough) < 2:  # 50% against itself proves nothing
        return {**row, "reason": "one explore fraction only, nothing to compare"}
    best_fraction = float(enough.idxmax())
    best = good[good["explore_fraction"] == best_fraction].set_index("seed")[metric]
    mine = good[np.isclose(good["explore_fraction"], fraction)].set_index("seed")[metric]
    row.update(best_fraction=best_fraction, best_mean=best.mean(), n_best=len(best))
    row["fraction_mean"] = mine.mean() if len(mine) else np.nan
    best_diverged = int(cell.loc[cell["explore_fraction"] == best_fraction, "diverged"].sum())
    if row["diverged"] > best_diverged:
        n_at = int(at.sum())
        return {**row, "decision": "not robust", "reason": f"{row['diverged']} of {n_at} diverged"}
    if len(mine) < min_seeds:
        return {**row, "reason": f"{len(mine)} usable seed(s) at the fraction, need {min_seeds}"}
    gap, low, high, test = difference_interval(best, mine)
    row.update(gap=gap, gap_low=low, gap_high=high, test=test)
    decision = equivalence(low, high, margin)
    return {**row, "decision": decision, "reason": _REASONS[decision]}


_REASONS = {
    "robust": "interval below the margin",
    "not robust": "interval above the margin",
    "inconclusive": "interval straddles the margin",
}


def equivalence(low: float, high: float, margin: float) -> str:
    """The decision on a gap's interval: robust when wholly below ``margin``, not robust when
    wholly above it, inconclusive otherwise (or when the interval is unknown)."""
    if high < margin:
        return "robust"
    if low > margin:
        return "not robust"
    return "inconclusive"


def difference_interval(
    a: pd.Series, b: pd.Series, confidence: float = 0.90
) -> tuple[float, float, float, str]:
    """Mean of ``a - b`` and its ``confidence`` t interval, for two samples indexed by seed:
    paired by seed when both ran the same seeds, Welch's otherwise. Returns (difference, low,
    high, "paired t" or "Welch t"); NaN bounds when there are too few values."""
    if set(a.index) == set(b.index):
        diff = a - b.reindex(a.index)
        if len(diff) and np.ptp(diff) == 0:  # identical differences: the interval is the point
            return float(diff.mean()), float(diff.mean()), float(diff.mean()), "paired t"
        if len(diff) < 2:
            return float(diff.mean()) if len(diff) else np.nan, np.nan, np.nan, "paired t"
        interval = stats.ttest_rel(a, b.reindex(a.index)).confidence_interval(confidence)
        return float(diff.mean()), float(interval.low), float(interval.high), "paired t"
    gap = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return gap, np.nan, np.nan, "Welch t"
    if a.std() == 0 and b.std() == 0:
        return gap, gap, gap, "Welch t"
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return gap, float(interval.low), float(interval.high), "Welch t"


def _explain(
    status: str, table: pd.DataFrame, keys: list[str], fraction: float, margin: float, metric: str
) -> str:
    name, limit = f"{fraction:.0%} explore", f"the {_amount(margin, metric, '-point')} margin"
    if table.empty:
        return f"{name}: inconclusive, no usable trials."
    if status == "robust":
        return (
            f"{name} is robust: at every {_plural(keys, 1)} ({len(table)}) its mean {metric} is "
            f"within {_amount(margin, metric)} of the best explore fraction (90% interval of "
            f"the gap below the margin; {_seeds(table)})."
        )
    rows = table[table["decision"] == status]
    where = " and ".join(_where(row, keys, metric) for _, row in rows.iterrows())
    if status == "not robust":
        worse = f": worse than the best fraction by more than {limit}"
        return f"{name} is not robust {where}{worse if rows['gap'].notna().all() else ''}."
    hint = (
        f"an interval that straddles {limit} needs more seeds to decide"
        if rows["gap"].notna().any()
        else f"robust means within {_amount(margin, metric)} of the best fraction"
    )
    return f"{name}: inconclusive {where}; {hint}."


def _where(row: pd.Series, keys: list[str], metric: str) -> str:
    at = f"at {describe(keys, [row[k] for k in keys])}"
    if np.isnan(row["gap"]):
        return f"{at} ({row['reason']})"
    return (
        f"{at} (trails {row['best_fraction']:.0%} by {_amount(row['gap'], metric)}, 90% "
        f"interval {_amount(row['gap_low'], metric, '')} to {_amount(row['gap_high'], metric, '')})"
    )


def describe(keys: list[str], values) -> str:
    """A condition in words: ``peak LR 0.05, decay cosine``."""
    words = {"peak_lr": "peak LR"}
    return ", ".join(
        f"{words.get(k, k.replace('_', ' '))} {f'{v:g}' if isinstance(v, float) else v}"
        for k, v in zip(keys, values, strict=True)
    )


def _amount(value: float, metric: str, unit: str = " points") -> str:
    """Accuracies are fractions: say gaps in points (0.002 -> 0.20 points)."""
    if metric.endswith("acc"):
        return f"{value * 100:.2f}{unit}"
    return f"{value:.4g}"


def _plural(keys: list[str], count: int = 2) -> str:
    label = "peak LR" if keys == ["peak_lr"] else "condition"
    return label if count == 1 else f"{label}s"


def _seeds(table: pd.DataFrame) -> str:
    low, high = int(table["n_fraction"].min()), int(table["n_fraction"].max())
    return f"{low} seeds each" if low == high else f"{low}-{high} seeds each"


def sharpness_correlation(
    runs: pd.DataFrame, x: str = "sharpness", y: str = "test_acc"
) -> pd.DataFrame:
    """Spearman correlation of ``x`` with ``y`` over all usable trials and within each
    condition: columns ``scope``, ``n``, ``rho``, ``p_value`` (NaN with fewer than 3 trials)."""
    good = runs[usable(runs, x) & usable(runs, y)]
    scopes = [("all trials", good)]
    keys = conditions(good) if len(good) else ["peak_lr"]
    for key, cell in good.groupby(keys, sort=True):
        scopes.append((describe(keys, key), cell))
    rows = []
    for scope, cell in scopes:
        rho, p = stats.spearmanr(cell[x], cell[y]) if len(cell) >= 3 else (np.nan, np.nan)
        rows.append({"scope": scope, "n": len(cell), "rho": rho, "p_value": p})
    return pd.DataFrame(rows)


def explore_sensitivity(runs: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Per condition: the best and worst explore fraction by mean ``metric`` and the range
    between them (how much the choice of explore fraction matters there)."""
    summary = explore_summary(runs, metric).dropna(subset=["mean"])
    keys = conditions(knee_trials(runs))
    rows = []
    for key, cell in summary.groupby(keys, sort=True):
        best, worst = cell.loc[cell["mean"].idxmax()], cell.loc[cell["mean"].idxmin()]
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "best_fraction": best["explore_fraction"],
                "best_mean": best["mean"],
                "worst_fraction": worst["explore_fraction"],
                "worst_mean": worst["mean"],
                "range": best["mean"] - worst["mean"],
            }
        )
    return pd.DataFrame(rows)
