"""Beyond the explore sweep: Knee against baseline schedules (the paper's Table 5), Knee at a
shorter budget against baselines at the full one (Table 6), Knee decay shapes, and the region an
Optuna search found best.

Every difference is a mean over seeds with a 90% t interval, paired by seed over the seeds both
sides finished when they ran the same seeds or share 3 or more and at least half of the larger
side's (Welch's otherwise; see :func:`analysis.intervals.difference_interval`), so it reads like
the verdict. Only trials that finished without diverging are compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.intervals import difference_interval, equivalence, resolution
from analysis.robustness import Verdict, conditions, usable
from analysis.wording import percent
from trainables.train import KNEE_ONLY_KEYS


def schedule_table(runs: pd.DataFrame, metric: str = "test_acc", fraction: float = 0.5):
    """Per condition (peak LR, budget, ...) and schedule: seeds, mean and std of ``metric``, and
    Knee at explore ``fraction`` minus that schedule (``knee_minus``) with its interval.

    Knee's arm is labelled ``knee 50%`` (``knee 50% cosine`` when decay shapes vary too).
    Returns an empty frame when the runs hold Knee alone (the explore views cover it) or
    nothing usable; a baseline alone gets its row, as the only summary of its accuracy.
    """
    arms = _arms(runs, metric, fraction)
    keys = _keys(arms, exclude=("decay",))
    floor = resolution(arms[metric])
    if arms.empty or (arms["schedule"] == "knee").all():
        return pd.DataFrame()
    rows = []
    for key, cell in arms.groupby(keys, sort=True, dropna=False):
        knees = [arm for arm in cell["arm"].unique() if arm.startswith("knee")]
        for arm, group in cell.groupby("arm", sort=False):
            row = {**dict(zip(keys, key, strict=True)), "schedule": arm, **_stats(group, metric)}
            if not arm.startswith("knee"):
                for knee in knees:  # one difference per Knee arm: usually just one
                    seeds = cell[cell["arm"] == knee].set_index("seed")[metric]
                    theirs = group.set_index("seed")[metric]
                    diff = difference_interval(seeds, theirs, 0.90, floor)
                    suffix = "" if len(knees) == 1 else f" ({knee})"
                    row.update(_diff_columns(f"knee_minus{suffix}", diff))
            rows.append(row)
    return pd.DataFrame(rows)


def budget_table(
    runs: pd.DataFrame, metric: str = "test_acc", fraction: float = 0.5, margin: float = 0.002
) -> pd.DataFrame:
    """Knee at every budget (``epochs``) against each baseline at the full (largest) budget:
    both means, Knee minus baseline with its interval, and whether Knee at that budget
    ``matches`` the baseline (interval above ``-margin``), ``falls short`` (below it) or is
    ``unclear``. Empty when the runs sweep no budget or hold no baseline."""
    if "epochs" not in runs or runs["epochs"].nunique() < 2:
        return pd.DataFrame()
    arms = _arms(runs, metric, fraction)
    keys = _keys(arms, exclude=("decay", "epochs"))
    floor = resolution(arms[metric])
    rows = []
    for key, cell in arms.groupby(keys, sort=True, dropna=False):
        full = cell["epochs"].max()
        baselines = cell[~cell["arm"].str.startswith("knee") & (cell["epochs"] == full)]
        knees = cell[cell["arm"].str.startswith("knee")]
        for (knee, epochs), ours in knees.groupby(["arm", "epochs"], sort=True):
            for baseline, theirs in baselines.groupby("arm", sort=True):
                diff = difference_interval(
                    ours.set_index("seed")[metric], theirs.set_index("seed")[metric], 0.90, floor
                )
                rows.append(
                    {
                        **dict(zip(keys, key, strict=True)),
                        "knee": knee,
                        "knee_epochs": int(epochs),
                        "knee_mean": ours[metric].mean(),
                        "baseline": baseline,
                        "baseline_epochs": int(full),
                        "baseline_mean": theirs[metric].mean(),
                        **_diff_columns("knee_minus", diff),
                        "decision": _match(diff, margin),
                    }
                )
    return pd.DataFrame(rows)


def decay_table(
    runs: pd.DataFrame, metric: str = "test_acc", fraction: float = 0.5, reference: str = "linear"
) -> pd.DataFrame:
    """Knee at explore ``fraction`` per decay shape: seeds, mean, std, and the shape minus
    ``reference`` (the paper's linear decay) with its interval. Empty unless decay varies."""
    knee = _arms(runs, metric, fraction)
    knee = knee[knee["schedule"] == "knee"]
    if "decay" not in knee or knee["decay"].nunique() < 2:
        return pd.DataFrame()
    keys = _keys(knee, exclude=("decay",))
    floor = resolution(knee[metric])
    rows = []
    for key, cell in knee.groupby(keys, sort=True, dropna=False):
        base = cell[cell["decay"] == reference].set_index("seed")[metric]
        for decay, group in cell.groupby("decay", sort=True):
            row = {**dict(zip(keys, key, strict=True)), "decay": decay, **_stats(group, metric)}
            if decay != reference and len(base):
                diff = difference_interval(group.set_index("seed")[metric], base, 0.90, floor)
                row.update(_diff_columns(f"minus_{reference}", diff))
            rows.append(row)
    return pd.DataFrame(rows)


def is_search(runs: pd.DataFrame) -> bool:
    """Whether the runs come from a search (``knee-study`` tags each trial ``search=optuna``)
    rather than a grid."""
    return "search" in runs and bool((runs["search"] == "optuna").any())


def search_summary(
    runs: pd.DataFrame,
    metric: str = "test_acc",
    fraction: float = 0.5,
    window: float = 0.1,
    margin: float = 0.002,
) -> tuple[pd.DataFrame, dict]:
    """The points a search tried, best first (explore fraction, peak LR, seeds, mean, std), and
    a summary: the best point, the best region (the ranges spanned by the top quarter of the
    points) and how accuracy near ``fraction`` compares with elsewhere: the best point within
    ``window`` of it against the best point outside, the gap ``outside - near`` with its 90%
    interval and a decision against ``margin`` as in the verdict. Both points are the best of
    their group, so the comparison is a guide, not a test at a known level."""
    good = runs[usable(runs, metric)]
    good = good[good["schedule"] == "knee"] if "schedule" in good else good
    points = (
        good.groupby(["explore_fraction", "peak_lr"])[metric]
        .agg(n="size", mean="mean", std="std")
        .reset_index()
        .sort_values("mean", ascending=False, ignore_index=True)
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
        "decision": "inconclusive",
    }
    inside = (points["explore_fraction"] - fraction).abs() <= window + 1e-12
    if not inside.any() or inside.all():
        where = "no point within" if not inside.any() else "every point within"
        return points, {**summary, "reason": f"{where} {window:.0%} of {fraction:.0%} explore"}
    near, outside = points[inside].iloc[0], points[~inside].iloc[0]

    def seeds(point: pd.Series) -> pd.Series:
        at = (good["explore_fraction"] == point["explore_fraction"]) & (
            good["peak_lr"] == point["peak_lr"]
        )
        return good[at].set_index("seed")[metric]

    floor = resolution(good[metric])
    gap, low, high, test = difference_interval(seeds(outside), seeds(near), 0.90, floor)
    enough = min(near["n"], outside["n"]) >= 3
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
        "decision": equivalence(low, high, margin) if enough else "inconclusive",
        "reason": "" if enough else "fewer than 3 seeds a point",
    }


def _arms(runs: pd.DataFrame, metric: str, fraction: float) -> pd.DataFrame:
    """Usable trials of Knee at ``fraction`` and of every baseline, one row per seed, with an
    ``arm`` label. A baseline that an older grid crossed with explore fractions (the same
    computation repeated) counts once per seed."""
    good = runs[usable(runs, metric)]
    knee = good[(good["schedule"] == "knee") & np.isclose(good["explore_fraction"], fraction)]
    baselines = good[good["schedule"] != "knee"]
    keys = [k for k in conditions(good) if k not in KNEE_ONLY_KEYS] if len(good) else []
    baselines = baselines.drop_duplicates([*keys, "schedule", "seed"])
    label = f"knee {fraction:.0%}"
    decays = knee["decay"].nunique() > 1 if "decay" in knee else False
    knee = knee.assign(arm=label + (" " + knee["decay"].astype(str) if decays else ""))
    arms = pd.concat([knee, baselines.assign(arm=baselines["schedule"])], ignore_index=True)
    arms.attrs = runs.attrs  # the param list, for conditions()
    return arms


def _keys(arms: pd.DataFrame, exclude: tuple[str, ...]) -> list[str]:
    if arms.empty:
        return ["peak_lr"]
    return [k for k in conditions(arms) if k not in exclude and k not in KNEE_ONLY_KEYS]


def _stats(group: pd.DataFrame, metric: str) -> dict:
    values = group[metric]
    return {"n": len(values), "mean": values.mean(), "std": values.std(ddof=1)}


def _diff_columns(name: str, diff: tuple[float, float, float, str]) -> dict:
    value, low, high, test = diff
    return {name: value, f"{name}_low": low, f"{name}_high": high, f"{name}_test": test}


def _match(diff: tuple[float, float, float, str], margin: float) -> str:
    _, low, high, _ = diff
    if np.isnan(low):
        return "unclear"
    return "matches" if low > -margin else "falls short" if high < -margin else "unclear"


def search_verdict(
    runs: pd.DataFrame,
    fraction: float = 0.5,
    margin: float = 0.002,
    metric: str = "test_acc",
    window: float = 0.1,
) -> Verdict:
    """The verdict for a search study, where points do not share explore fractions: does the
    best point within ``window`` of ``fraction`` come within ``margin`` of the best point
    outside it? ``verdict.table`` holds the search's points, best first."""
    points, found = search_summary(runs, metric, fraction, window, margin)
    name = f"{percent(fraction)} explore"
    if "gap" not in found:
        why = found.get("reason", "no usable trials")
        return Verdict(
            "inconclusive", points, f"{name}: inconclusive, {why}.", fraction, margin, metric
        )
    status = found["decision"]
    near = f"explore {percent(found['near_explore'])}, peak LR {found['near_peak_lr']:.3g}"
    outside = f"explore {percent(found['outside_explore'])}, peak LR {found['outside_peak_lr']:.3g}"
    lead = {
        "robust": f"{name} is robust in this search",
        "not robust": f"{name} is not robust in this search",
        "inconclusive": f"{name}: inconclusive in this search",
    }[status]
    explanation = (
        f"{lead}: the best point beyond {window:.0%} of it ({outside}) minus the best point "
        f"within ({near}) is {found['gap'] * 100:.2f} points (90% interval "
        f"{found['gap_low'] * 100:.2f} to {found['gap_high'] * 100:.2f}), against a "
        f"{margin * 100:.2f}-point margin{'; ' + found['reason'] if found['reason'] else ''}."
    )
    return Verdict(status, points, explanation, fraction, margin, metric)
