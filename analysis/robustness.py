"""Is 50% explore robust? Per-fraction summaries over seeds, the verdict, and the side views.

Only trials that finished without diverging enter a mean: diverged and failed trials are counted
in their own columns (``diverged``, ``failed``) and weigh on the verdict explicitly, never
silently averaged in. The explore-fraction views use the Knee trials (baselines have no explore
phase); a study that also sweeps other axes (epochs, decay, ...) is summarised per combination
of them, so no mean ever mixes two conditions.

The verdict's test, at each condition (peak LR): compare the fraction with every other explore
fraction that has enough seeds. For each, the gap ``other - fraction`` of the metric gets a t
interval, paired by seed over the seeds both ran when they share at least ``min_seeds`` of them
and at least half of the larger side's (same initialisation and batch order, so the pairing
removes most of the seed noise; a seed that failed on one side only is left out of the pairs
rather than costing the pairing), and Welch's otherwise. The standard deviation is never taken
below the metric's resolution (one test image, read off the data): with accuracies in steps of
one image, three identical differences are luck, not certainty.

* robust: every gap's 90% upper bound is below ``margin``. An intersection-union test: each
  one-sided test at 5%, so no fraction beats ``fraction`` by more than the margin (5% level).
* not robust: some gap's lower bound is above ``margin`` at a Bonferroni-corrected level (one-
  sided 5% / number of comparisons), so picking the largest of several noisy gaps does not
  make a flat curve look not robust.
* otherwise inconclusive: more seeds would decide it.

Divergence weighs separately, since a diverged seed has no accuracy to compare: against each
other fraction swept at the condition, a one-sided Fisher exact test asks whether the fraction's
finished seeds diverge more often. When one does so at the Bonferroni-corrected level (5% /
number of other fractions), the condition is "not robust". More often but not significantly
(1 of 10 seeds against 0 of 10: p = 0.5) leaves the accuracy decision standing and is said in
its reason: capping "robust" on any excess would, with a divergence rate shared by every
fraction, cap it in most studies (about 4 in 10 at a 5% rate over five fractions and ten seeds),
and more seeds would make that worse, not better.

Fewer than ``min_seeds`` seeds, the fraction not swept, no other fraction to compare with, or no
usable trials (or no Knee trials at all) give "inconclusive", never a false "robust". Overall:
robust only when robust at every condition, not robust when not robust at any.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.intervals import difference_interval, resolution
from analysis.runs import REQUIRED_PARAMS, AnalysisError
from analysis.wording import describe, percent

STATUSES = ("robust", "not robust", "inconclusive")
SUMMARY_COLUMNS = (
    *("n", "mean", "std", "ci_low", "ci_high"),
    *("best", "best_seed", "worst", "worst_seed", "diverged", "failed"),
)
_NOT_CONDITIONS = {*REQUIRED_PARAMS, "schedule"} - {"peak_lr"}
# The train() keys a study may sweep or vary, for frames that lost load_runs' param list.
KNOWN_CONDITIONS = [
    *("peak_lr", "epochs", "decay", "batch_size", "model", "dataset", "optimizer"),
    *("momentum", "weight_decay", "warmup_fraction"),
]
ALPHA = 0.05  # one-sided level of each test: a 90% two-sided interval


def lower_is_better(metric: str) -> bool:
    """Sharpness (flatter minima generalise better, as in the paper) and losses: the best seed
    is the lowest. Accuracies: the highest."""
    return metric == "sharpness" or metric.endswith("loss")


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
    params = runs.attrs.get("params", KNOWN_CONDITIONS)  # a frame read back from runs.csv
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
    the best and worst seed and their values (best: the highest accuracy, but the lowest
    sharpness or loss, see :func:`lower_is_better`), and how many seeds ``diverged`` or
    ``failed``."""
    if metric not in runs:
        raise KeyError(f"no metric {metric!r} in the runs; columns: {', '.join(runs.columns)}")
    trials = knee_trials(runs).reset_index(drop=True)  # unique labels for the masks
    keys = [*conditions(trials), "explore_fraction"]
    ok = usable(trials, metric)
    low_best = lower_is_better(metric)
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
    if trials.empty:
        ran = ", ".join(sorted(runs["schedule"].unique())) if "schedule" in runs else ""
        name = f"{percent(fraction)} explore"
        explanation = (
            f"{name}: inconclusive, no Knee trials to judge ({name} was not run; "
            f"schedules run: {ran or 'none'})."
        )
        return Verdict("inconclusive", pd.DataFrame(), explanation, fraction, margin, metric)
    keys = conditions(trials)
    ok = usable(trials, metric)
    _refuse_repeated_seeds(trials[ok], [*keys, "explore_fraction"])
    floor = resolution(trials.loc[ok, metric])
    rows = [
        {
            **dict(zip(keys, key, strict=True)),
            **_decide(cell, ok, fraction, margin, metric, min_seeds, floor),
        }
        for key, cell in trials.groupby(keys, sort=True, dropna=False)
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
    cell: pd.DataFrame,
    ok: pd.Series,
    fraction: float,
    margin: float,
    metric: str,
    min_seeds: int,
    floor: float,
) -> dict:
    """The decision at one condition and the numbers behind it (see the module docstring)."""
    good = cell[ok.loc[cell.index]]
    by_fraction = good.groupby("explore_fraction")[metric]
    means, counts = by_fraction.mean(), by_fraction.size()
    at = np.isclose(cell["explore_fraction"], fraction)
    mine = good[np.isclose(good["explore_fraction"], fraction)].set_index("seed")[metric]
    row = {
        "best_fraction": float(means.idxmax()) if len(means) else np.nan,
        "fraction_mean": mine.mean() if len(mine) else np.nan,
        "versus": np.nan,  # the other fraction behind the decision
        "versus_mean": np.nan,
        "gap": np.nan,  # versus - fraction
        "gap_low": np.nan,
        "gap_high": np.nan,
        "confidence": np.nan,
        "comparisons": 0,
        "n_fraction": len(mine),
        "diverged": int(cell.loc[at, "diverged"].sum()),
        "diverged_p": np.nan,  # one-sided Fisher p: does the fraction diverge more often?
        "test": "",
        "decision": "inconclusive",
        "reason": "",
    }
    if not at.any():
        return {**row, "reason": "not swept"}
    others = [f for f in counts.index[counts >= min_seeds] if not np.isclose(f, fraction)]
    diverging = _divergence(cell, fraction)
    if diverging:
        row["diverged_p"] = diverging.p
        if diverging.significant:
            return {**row, "decision": "not robust", "reason": diverging.reason}
    if len(mine) < min_seeds:
        return {**row, "reason": f"{len(mine)} usable seed(s) at the fraction, need {min_seeds}"}
    if not others:
        return {**row, "reason": f"no other fraction with {min_seeds}+ usable seeds to compare"}

    def gaps(confidence: float) -> pd.DataFrame:
        found = {
            other: difference_interval(
                good[good["explore_fraction"] == other].set_index("seed")[metric],
                mine,
                confidence,
                floor,
                min_seeds,
            )
            for other in others
        }
        return pd.DataFrame(found, index=["gap", "gap_low", "gap_high", "test"]).T

    plain_level, strict_level = 1 - 2 * ALPHA, 1 - 2 * ALPHA / len(others)  # Bonferroni
    plain, strict = gaps(plain_level), gaps(strict_level)
    if (strict["gap_low"] > margin).any():
        decision, level, table = "not robust", strict_level, strict
        versus = strict["gap_low"].astype(float).idxmax()  # the clearest win over the fraction
    else:
        decision = "robust" if (plain["gap_high"] < margin).all() else "inconclusive"
        level, table = plain_level, plain
        versus = plain["gap_high"].astype(float).idxmax()  # the closest call
    row.update(table.loc[versus].to_dict(), versus=versus, versus_mean=means[versus])
    row.update(confidence=level, comparisons=len(others))
    reason = _REASONS[decision]
    if diverging:  # more often, but not significantly: said, and left to the reader
        reason = f"{reason}; {diverging.reason}"
    return {**row, "decision": decision, "reason": reason}


@dataclass(frozen=True)
class _Diverging:
    """The fraction's seeds diverged more often than another fraction's."""

    p: float  # the smallest one-sided Fisher exact p over the other fractions
    significant: bool  # p below ALPHA / number of other fractions (Bonferroni)
    reason: str  # the counts and the test, in words


def _divergence(cell: pd.DataFrame, fraction: float) -> _Diverging | None:
    """Do the fraction's seeds diverge more often than another fraction's at this condition?
    One-sided Fisher exact test against every other fraction swept there, Bonferroni-corrected
    over them; None when the fraction diverged no more often than every other fraction. Only
    trials with an outcome count: a diverged trial is FINISHED, a failed or stopped one is
    neither diverged nor calm."""
    finished = cell[cell["status"] == "FINISHED"]
    counts = finished.groupby("explore_fraction")["diverged"].agg(["sum", "size"])
    at = np.isclose(counts.index, fraction)
    if not at.any() or counts.loc[at, "sum"].iloc[0] == 0 or at.all():
        return None
    mine, others = counts[at].iloc[0], counts[~at]
    rate = mine["sum"] / mine["size"]
    if (others["sum"] / others["size"]).min() >= rate:
        return None
    p_values = pd.Series(
        {
            other: stats.fisher_exact(
                [
                    [mine["sum"], mine["size"] - mine["sum"]],
                    [theirs["sum"], theirs["size"] - theirs["sum"]],
                ],
                alternative="greater",
            ).pvalue
            for other, theirs in others.iterrows()
        }
    )
    calm, level = p_values.idxmin(), ALPHA / len(others)
    p, theirs = float(p_values[calm]), others.loc[calm]
    significant = p < level
    return _Diverging(
        p,
        significant,
        f"{int(mine['sum'])} of {int(mine['size'])} seeds diverged, {int(theirs['sum'])} of "
        f"{int(theirs['size'])} at {percent(calm)}: one-sided Fisher p = {p:.2g}, "
        f"{'below' if significant else 'not below'} {level:.3g}",
    )


_REASONS = {
    "robust": "interval below the margin",
    "not robust": "interval above the margin",
    "inconclusive": "interval straddles the margin",
}


def _refuse_repeated_seeds(good: pd.DataFrame, keys: list[str]) -> None:
    """Two usable runs of one seed at one point (two studies in one experiment, most likely)
    would be counted as two seeds: refuse them rather than report a false precision."""
    repeated = good[good.duplicated([*keys, "seed"], keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        at = ", ".join(f"{k}={first[k]}" for k in [*keys, "seed"])
        raise AnalysisError(
            f"{len(repeated)} runs repeat a seed (e.g. {at}): the experiment holds more than one "
            "study; analyse one (parent_run_id, or knee-study report STUDY_DIR)"
        )


def _explain(
    status: str, table: pd.DataFrame, keys: list[str], fraction: float, margin: float, metric: str
) -> str:
    name, limit = f"{percent(fraction)} explore", f"the {_amount(margin, metric, '-point')} margin"
    if table.empty:
        return f"{name}: inconclusive, no usable trials."
    if status == "robust":
        return (
            f"{name} is robust: at every {_plural(keys, 1)} ({len(table)}) no other explore "
            f"fraction beats it by more than {_amount(margin, metric)} (90% upper bounds below "
            f"the margin against each of {_span(table['comparisons'])} fractions; "
            f"{_span(table['n_fraction'])} seeds each)."
        )
    rows = table[table["decision"] == status]
    where = " and ".join(_where(row, keys, metric) for _, row in rows.iterrows())
    if status == "not robust":
        worse = f": another fraction beats it by more than {limit}"
        return f"{name} is not robust {where}{worse if rows['gap'].notna().all() else ''}."
    straddles = rows["reason"] == _REASONS["inconclusive"]
    hints = []
    if straddles.any():
        hints.append(f"an interval that straddles {limit} needs more seeds to decide")
    if (rows["gap"].notna() & ~straddles).any():  # below the margin, but seeds diverged
        hints.append(
            "its seeds diverged more often than another fraction's: not significantly, but a "
            "failure that robust would have to rule out"
        )
    if not hints:
        hints.append(
            f"robust means no other fraction beats it by more than {_amount(margin, metric)}"
        )
    return f"{name}: inconclusive {where}; {'; '.join(hints)}."


def _where(row: pd.Series, keys: list[str], metric: str) -> str:
    at = f"at {describe(keys, [row[k] for k in keys])}"
    if np.isnan(row["gap"]):
        return f"{at} ({row['reason']})"
    why = "" if row["reason"] in _REASONS.values() else f"; {row['reason']}"
    return (
        f"{at} ({percent(row['versus'])} minus it: {_amount(row['gap'], metric)}, "
        f"{percent(row['confidence'])} interval {_amount(row['gap_low'], metric, '')} to "
        f"{_amount(row['gap_high'], metric, '')}{why})"
    )


def _span(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return f"{low}" if low == high else f"{low}-{high}"


def _amount(value: float, metric: str, unit: str = " points") -> str:
    """Accuracies are fractions: say gaps in points (0.002 -> 0.20 points)."""
    if metric.endswith("acc"):
        return f"{round(value * 100, 2) or 0.0:.2f}{unit}"  # never "-0.00"
    return f"{value:.4g}"


def _plural(keys: list[str], count: int = 2) -> str:
    label = "peak LR" if keys == ["peak_lr"] else "condition"
    return label if count == 1 else f"{label}s"


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


def explore_sensitivity(runs: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Per condition: the best and worst explore fraction by mean ``metric`` and the range
    between them (how much the choice of explore fraction matters there)."""
    summary = explore_summary(runs, metric).dropna(subset=["mean"])
    keys = conditions(knee_trials(runs))
    rows = []
    for key, cell in summary.groupby(keys, sort=True, dropna=False):
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
