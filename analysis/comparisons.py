"""Beyond the explore sweep, as tables: Knee against baseline schedules (the paper's Table 5),
Knee at a shorter budget against baselines at the full one (Table 6), Knee decay shapes, and the
points an Optuna search tried.

Every difference is the first arm's *advantage* in the policy's direction (``sign * (a - b)``:
positive when Knee is better, whether the metric is an accuracy or a loss) over seeds with a 90%
t interval, paired by seed over the seeds both sides finished when they ran the same seeds or
share 3 or more and at least half of the larger side's (Welch's otherwise; see
:func:`analysis.intervals.difference_interval`). Only trials that finished their budget without
diverging are compared. The decisions built on these comparisons are the verdicts of
:mod:`analysis.robustness`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.intervals import Gap, difference_interval, equivalence, resolution
from analysis.policy import Policy
from analysis.trials import conditions, swept_budget, usable
from analysis.wording import percent
from trainables.config import KNEE_ONLY_KEYS


def schedule_table(runs: pd.DataFrame, policy: Policy | None = None) -> pd.DataFrame:
    """Per condition (peak LR, budget, ...) and schedule: seeds, mean and std of the metric,
    and Knee at the policy's explore fraction ahead of that schedule (``knee_ahead``, positive:
    Knee is better) with its interval.

    Knee's arm is labelled ``knee 50%`` (``knee 50% cosine`` when decay shapes vary too; its
    ``is_knee`` column says which rows are Knee's). Returns an empty frame when the runs hold
    Knee alone (the explore views cover it) or nothing usable; a baseline alone gets its row,
    as the only summary of its accuracy.
    """
    policy = policy or Policy()
    arms = _arms(runs, policy)
    if arms.empty or arms["is_knee"].all():
        return pd.DataFrame()
    keys = _keys(arms, exclude=("decay",))
    floor = resolution(arms[policy.metric])
    rows = []
    for key, cell in arms.groupby(keys, sort=True, dropna=False):
        knees = cell.loc[cell["is_knee"], "arm"].unique()
        for arm, group in cell.groupby("arm", sort=False):
            row = {
                **dict(zip(keys, key, strict=True)),
                "schedule": arm,
                "is_knee": bool(group["is_knee"].iloc[0]),
                **_stats(group, policy.metric),
            }
            if not row["is_knee"]:
                for knee in knees:  # one difference per Knee arm: usually just one
                    ours = cell[cell["arm"] == knee]
                    suffix = "" if len(knees) == 1 else f" ({knee})"
                    diff = _advantage(ours, group, policy, floor)
                    row.update(_diff_columns(f"knee_ahead{suffix}", diff))
            rows.append(row)
    return pd.DataFrame(rows)


def budget_table(runs: pd.DataFrame, policy: Policy | None = None) -> pd.DataFrame:
    """Knee at every budget against each baseline at the full (largest) budget: both means,
    Knee's advantage with its interval, and whether Knee at that budget ``matches`` the
    baseline (interval above ``-margin``), ``falls short`` (below it) or is ``unclear``. The
    budgets are in columns ``knee_epochs`` and ``baseline_epochs`` (``knee_steps`` and
    ``baseline_steps`` for a budget in steps). Empty when the runs sweep no budget or hold no
    baseline."""
    policy = policy or Policy()
    unit = swept_budget(runs)
    if unit is None:
        return pd.DataFrame()
    arms = _arms(runs, policy)
    keys = _keys(arms, exclude=("decay", unit))
    floor = resolution(arms[policy.metric])
    rows = []
    for key, cell in arms.groupby(keys, sort=True, dropna=False):
        full = cell[unit].max()
        baselines = cell[~cell["is_knee"] & (cell[unit] == full)]
        knees = cell[cell["is_knee"]]
        for (knee, budget), ours in knees.groupby(["arm", unit], sort=True):
            for baseline, theirs in baselines.groupby("arm", sort=True):
                diff = _advantage(ours, theirs, policy, floor)
                rows.append(
                    {
                        **dict(zip(keys, key, strict=True)),
                        "knee": knee,
                        f"knee_{unit}": int(budget),
                        "knee_mean": ours[policy.metric].mean(),
                        "baseline": baseline,
                        f"baseline_{unit}": int(full),
                        "baseline_mean": theirs[policy.metric].mean(),
                        **_diff_columns("knee_ahead", diff),
                        "decision": _match(diff, policy.margin),
                    }
                )
    return pd.DataFrame(rows)


def decay_table(
    runs: pd.DataFrame, policy: Policy | None = None, reference: str = "linear"
) -> pd.DataFrame:
    """Knee at the policy's explore fraction per decay shape: seeds, mean, std, and the shape's
    advantage over ``reference`` (the paper's linear decay) with its interval. Empty unless
    decay varies."""
    policy = policy or Policy()
    knee = _arms(runs, policy)
    knee = knee[knee["is_knee"]]
    if "decay" not in knee or knee["decay"].nunique() < 2:
        return pd.DataFrame()
    keys = _keys(knee, exclude=("decay",))
    floor = resolution(knee[policy.metric])
    rows = []
    for key, cell in knee.groupby(keys, sort=True, dropna=False):
        base = cell[cell["decay"] == reference]
        for decay, group in cell.groupby("decay", sort=True):
            row = {
                **dict(zip(keys, key, strict=True)),
                "decay": decay,
                **_stats(group, policy.metric),
            }
            if decay != reference and len(base):
                diff = _advantage(group, base, policy, floor)
                row.update(_diff_columns(f"ahead_of_{reference}", diff))
            rows.append(row)
    return pd.DataFrame(rows)


def is_search(runs: pd.DataFrame) -> bool:
    """Whether the runs come from a search (``knee-study`` tags each trial ``search=optuna``)
    rather than a grid."""
    return "search" in runs and bool((runs["search"] == "optuna").any())


def selection_metric(runs: pd.DataFrame, policy: Policy) -> str:
    """The metric a search's best points are chosen by: :attr:`Policy.selection_metric` (the
    objective's validation counterpart, ``val_acc`` for ``test_acc``) when some trial has a
    usable value of it, else the objective itself (runs that logged no validation split)."""
    chosen = policy.selection_metric
    return chosen if chosen in runs and usable(runs, chosen).any() else policy.metric


def search_summary(runs: pd.DataFrame, policy: Policy | None = None) -> tuple[pd.DataFrame, dict]:
    """The points a search tried, best first (explore fraction, peak LR, seeds ``n``, ``mean``
    and ``std`` of the policy's metric, and ``selection_mean``: the mean they are ranked by),
    and a summary: the best point, the best region (the ranges spanned by the top quarter of
    the points) and how the metric near the policy's fraction compares with elsewhere: the best
    point within ``policy.window`` of it against the best point outside, the outside point's
    advantage with its 90% interval and a decision against the margin. Both points are the best
    of their group, so the comparison is a guide, not a test at a known level.

    "Best" is by :func:`selection_metric` (``summary["selected_by"]``), so that choosing the
    points never sees the test split; every number reported and compared for them (means, the
    advantage and its interval) is the policy's metric. A trial enters when both metrics are
    usable."""
    policy = policy or Policy()
    metric, fraction, window = policy.metric, policy.fraction, policy.window
    select = selection_metric(runs, policy)
    good = runs[usable(runs, metric) & usable(runs, select)]
    good = good[good["schedule"] == "knee"] if "schedule" in good else good
    grouped = good.groupby(["explore_fraction", "peak_lr"])
    points = (
        grouped[metric]
        .agg(n="size", mean="mean", std="std")
        .assign(selection_mean=grouped[select].mean())
        .reset_index()
        .sort_values("selection_mean", ascending=policy.mode == "min", ignore_index=True)
    )
    if points.empty:
        return points, {}
    top = points.head(max(1, len(points) // 4))
    best = points.iloc[0]
    summary = {
        "points": len(points),
        "best_explore": best["explore_fraction"],
        "best_peak_lr": best["peak_lr"],
        "best_mean": best["mean"],
        "region_explore": (top["explore_fraction"].min(), top["explore_fraction"].max()),
        "region_peak_lr": (top["peak_lr"].min(), top["peak_lr"].max()),
        "region_points": len(top),
        "selected_by": select,
        "decision": "inconclusive",
    }
    inside = (points["explore_fraction"] - fraction).abs() <= window + 1e-12
    if not inside.any() or inside.all():
        where = "no point within" if not inside.any() else "every point within"
        span = f"{window * 100:.4g} explore points of {percent(fraction)}"
        return points, {**summary, "reason": f"{where} {span}"}
    near, outside = points[inside].iloc[0], points[~inside].iloc[0]

    def seeds(point: pd.Series) -> pd.DataFrame:
        at = (good["explore_fraction"] == point["explore_fraction"]) & (
            good["peak_lr"] == point["peak_lr"]
        )
        return good[at]

    gap, low, high, test = _advantage(
        seeds(outside), seeds(near), policy, resolution(good[metric])
    )[:4]
    enough = min(near["n"], outside["n"]) >= policy.min_seeds
    return points, {
        **summary,
        "near_explore": near["explore_fraction"],
        "near_peak_lr": near["peak_lr"],
        "near_mean": near["mean"],
        "outside_explore": outside["explore_fraction"],
        "outside_peak_lr": outside["peak_lr"],
        "outside_mean": outside["mean"],
        "gap": gap,
        "gap_low": low,
        "gap_high": high,
        "test": test,
        "decision": equivalence(low, high, policy.margin) if enough else "inconclusive",
        "reason": "" if enough else f"fewer than {policy.min_seeds} seeds a point",
    }


def _arms(runs: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Usable trials of Knee at the policy's fraction and of every baseline, one row per seed,
    with an ``arm`` label (for display) and ``is_knee`` (for deciding). A baseline that an older
    grid crossed with explore fractions (the same computation repeated) counts once per seed."""
    good = runs[usable(runs, policy.metric)]
    is_knee = good["schedule"] == "knee"
    knee = good[is_knee & np.isclose(good["explore_fraction"].astype(float), policy.fraction)]
    baselines = good[~is_knee]
    keys = [k for k in conditions(good) if k not in KNEE_ONLY_KEYS] if len(good) else []
    baselines = baselines.drop_duplicates([*keys, "schedule", "seed"])
    label = f"knee {percent(policy.fraction)}"
    decays = knee["decay"].nunique() > 1 if "decay" in knee else False
    knee = knee.assign(arm=label + (" " + knee["decay"].astype(str) if decays else ""))
    arms = pd.concat(
        [knee.assign(is_knee=True), baselines.assign(arm=baselines["schedule"], is_knee=False)],
        ignore_index=True,
    )
    arms.attrs = runs.attrs  # the param list, for conditions()
    return arms


def _advantage(ours: pd.DataFrame, theirs: pd.DataFrame, policy: Policy, floor: float) -> Gap:
    """How much better ``ours`` is than ``theirs`` over seeds, in the metric's direction."""
    metric = policy.metric
    return difference_interval(
        ours.set_index("seed")[metric] * policy.sign,
        theirs.set_index("seed")[metric] * policy.sign,
        policy.confidence,
        floor,
        policy.min_seeds,
    )


def _keys(arms: pd.DataFrame, exclude: tuple[str, ...]) -> list[str]:
    if arms.empty:
        return ["peak_lr"]
    return [k for k in conditions(arms) if k not in exclude and k not in KNEE_ONLY_KEYS]


def _stats(group: pd.DataFrame, metric: str) -> dict:
    values = group[metric]
    return {"n": len(values), "mean": values.mean(), "std": values.std(ddof=1)}


def _diff_columns(name: str, diff: Gap) -> dict:
    return {
        name: diff.estimate,
        f"{name}_low": diff.low,
        f"{name}_high": diff.high,
        f"{name}_test": diff.test,
    }


def _match(diff: Gap, margin: float) -> str:
    if np.isnan(diff.low):
        return "unclear"
    return "matches" if diff.low > -margin else "falls short" if diff.high < -margin else "unclear"
