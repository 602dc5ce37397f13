"""The report's sections past its headline: the explore views, learning curves and
distributions, the search, the schedule, budget and decay comparisons, and sharpness. Each
function returns a list of blocks (:mod:`analysis.render`) for :func:`analysis.report.write_report`.
Every number of the objective is in its unit (``policy.unit``: an accuracy in percent and
points, anything else as logged), every table and caption names the metric.
"""

from __future__ import annotations

import pandas as pd

from analysis import comparisons, curves, plots, views
from analysis.distributions import distributions
from analysis.policy import Policy
from analysis.render import Block, FigureBlock
from analysis.summaries import explore_sensitivity, explore_summary, sharpness_correlation
from analysis.trials import conditions, knee_trials
from analysis.verdict import Verdict
from analysis.wording import Unit, percent


def explore_sections(runs: pd.DataFrame, verdict: Verdict) -> list[Block]:
    keys = conditions(knee_trials(runs))
    policy = verdict.policy
    metric, mode, unit = policy.metric, policy.mode, policy.unit
    return [
        *([views.verdict_view(verdict.table, keys, unit)] if verdict.kind == "explore" else []),
        f"## {unit.title} against explore fraction",
        FigureBlock(
            "accuracy_vs_explore.png",
            f"{unit.name} vs explore fraction",
            plots.explore_curve(runs, metric, verdict.fraction, mode),
        ),
        f"{_in_unit(unit)}: mean ± 95% CI half-width over seeds (n usable seeds).",
        views.cells(explore_summary(runs, metric, mode=mode), keys, unit.value),
        "## How much the explore fraction matters",
        _range_caption(unit),
        views.sensitivity_view(explore_sensitivity(runs, metric, mode), keys, unit),
        FigureBlock(
            "accuracy_heatmap.png",
            f"mean {unit.title.lower()} by explore fraction and peak LR",
            plots.explore_heatmap(runs, metric, mode),
        ),
    ]


def _range_caption(unit: Unit) -> str:
    if unit.percent:
        return f"Range: best minus worst explore fraction's mean {unit.name}, in points."
    return f"Range: how far the best explore fraction's mean {unit.metric} is from the worst's."


def _in_unit(unit: Unit) -> str:
    """A caption's opening: ``Test accuracy in percent``, ``val_loss (lower is better)``."""
    return f"{unit.opening} in percent" if unit.percent else unit.label


def curve_sections(runs: pd.DataFrame, history: pd.DataFrame | None, policy: Policy) -> list[Block]:
    """The learning curves (when there is a history of two epochs or more: one is no curve)
    and the final values' distributions over seeds, of the policy's metric."""
    fraction, metric, mode, unit = policy.fraction, policy.metric, policy.mode, policy.unit
    blocks: list[Block] = []
    if history is not None and history["epoch"].nunique() > 1:
        if unit.percent:
            axis = (
                f"{_in_unit(unit)} (when the first epochs' climb would squash the rest, its "
                "axis starts where the curves are after a fifth of training, and says so)"
            )
        else:
            axis = f"{unit.label} (on a log scale when it spans more than {plots.LOG_SPAN:g}x)"
        blocks += [
            "## Learning curves",
            FigureBlock(
                "learning_curves.png",
                f"{unit.name}, training loss and LR against epoch per explore fraction",
                curves.learning_curves(history, runs, fraction, metric, mode),
            ),
            "Per explore fraction, the median over its finished seeds at each epoch (n in the "
            "legend: seeds per panel, a range when the panels differ; past "
            f"{curves.HISTORY_RUNS:,} finished trials each line draws its lowest-numbered "
            "seeds, n of how many) and, shaded, their "
            f"interquartile range (25th to 75th percentile); {percent(fraction)} explore drawn "
            "thicker, baseline schedules grey and dashed. Diverged, failed and unfinished trials "
            f"are left out. {axis}; training loss on a log scale; the LR is that of each "
            "epoch's last step.",
        ]
    return [
        *blocks,
        "## Distributions over seeds",
        FigureBlock(
            "distributions.png",
            f"final {unit.name} and sharpness over seeds per explore fraction",
            distributions(runs, fraction, metric, mode),
        ),
        "Every usable seed's final value, one dot each (spread sideways so equal values stay "
        f"apart), the black bar its median; {percent(fraction)} explore shaded where it was "
        "run. Above a fraction, how many of its seeds diverged, were stopped early or failed: "
        "they have no final value to show.",
    ]


def search_section(runs: pd.DataFrame, verdict: Verdict) -> list[Block]:
    policy = verdict.policy
    points, found = comparisons.search_summary(runs, policy)
    if not found or points.empty:
        return []
    unit, chosen = policy.unit, found["selected_by"]
    low, high = found["region_explore"]
    lr_low, lr_high = found["region_peak_lr"]
    top = points.head(10)
    table = {
        "explore": top["explore_fraction"].map(percent),
        "peak LR": top["peak_lr"],
        "seeds (n)": top["n"],
        f"mean ({unit.short})": unit.column(top["mean"]),
        f"std ({unit.short})": [unit.value(v) if pd.notna(v) else "" for v in top["std"]],
    }
    by, ranked = "", ""
    if chosen != policy.metric:  # the mean the points were ranked by, beside the reported one
        by = Unit(chosen, policy.mode)
        table[f"{chosen} mean ({by.short})"] = by.column(top["selection_mean"])
        by, ranked = f" (by mean {chosen})", f", ranked by mean {chosen} (its own column)"
    return [
        "## Search",
        f"{found['points']} points, {_seeds_per_point(points['n'])}. The best quarter{by} "
        f"({found['region_points']} points) spans explore {percent(low)} to {percent(high)} "
        f"and peak LR {lr_low:.3g} to {lr_high:.3g}; the best point: explore "
        f"{percent(found['best_explore'])}, peak LR {found['best_peak_lr']:.3g}, "
        f"{_named(unit, found['best_mean'], chosen != policy.metric)}.",
        FigureBlock(
            "search_landscape.png",
            "search points: explore fraction vs peak LR",
            plots.search_landscape(
                points, policy.metric, verdict.fraction, policy.window, policy.mode, chosen
            ),
        ),
        f"The ten best points{ranked}: mean and std of {unit.name} over their usable seeds"
        f"{', in percent' if unit.percent else ''}.",
        pd.DataFrame(table),
    ]


def _named(unit: Unit, value: float, name: bool) -> str:
    """``98.33%``, or ``test accuracy 98.33%`` where another metric chose the point."""
    return f"{unit.name} {unit.with_unit(value)}" if name else unit.with_unit(value)


def _seeds_per_point(n: pd.Series) -> str:
    """How many usable seeds each search point has, as the data say."""
    low, high = int(n.min()), int(n.max())
    if low == high:
        return f"each over {low} usable seed{'s' * (low != 1)}"
    return f"each over {low} to {high} usable seeds"


def comparison_sections(runs: pd.DataFrame, policy: Policy, kind: str) -> list[Block]:
    blocks: list[Block] = []
    fraction, unit = percent(policy.fraction), policy.unit
    means = f"mean ± std over seeds{' in percent' if unit.percent else ''}"
    schedules = comparisons.schedule_table(runs, policy)
    if len(schedules) and schedules["is_knee"].any():
        blocks += [
            "## Knee against baseline schedules",
            f"{unit.opening} per schedule (Knee at {fraction} explore), {means}, and "
            f"how far Knee is ahead of each baseline in {unit.points} with its 90% interval "
            f"(positive: Knee is better{_direction(unit)}).",
            views.difference_view(schedules, "knee_ahead", unit),
        ]
    elif len(schedules):
        blocks += [
            "## Baseline schedules",
            f"{unit.opening} per schedule, {means} (no Knee trial at {fraction} "
            "explore to compare them with).",
            views.difference_view(schedules, "knee_ahead", unit),
        ]
    budgets = comparisons.budget_table(runs, policy)
    if len(budgets):
        blocks += [
            "## Training budget",
            "Does Knee at a shorter budget match a baseline at the full budget? How far Knee is "
            f"ahead in {unit.points}, 90% interval; *matches* when the interval lies above "
            f"-{_margin(policy)}, *falls short* when below it.",
            views.budget_view(budgets, unit),
        ]
    decays = comparisons.decay_table(runs, policy)
    if len(decays):
        blocks += [
            "## Decay shape of the exploit phase",
            f"Knee at {fraction} explore per decay shape; how far each shape is ahead of linear "
            f"(the paper's) in {unit.points} with its 90% interval.",
            views.difference_view(decays, "ahead_of_linear", unit),
        ]
    return blocks


def _direction(unit: Unit) -> str:
    """``, a lower val_loss`` where better is not higher: what "ahead" means."""
    return "" if unit.mode == "max" else f", a lower {unit.metric}"


def _margin(policy: Policy) -> str:
    """The margin as the budget caption says it: ``0.20 points``, ``0.01 val_loss``."""
    unit = policy.unit
    return f"{unit.value(policy.margin)} {unit.points}"


def sharpness_sections(runs: pd.DataFrame, fraction: float, explore: bool) -> list[Block]:
    if "sharpness" not in runs or runs["sharpness"].isna().all():
        return []
    blocks: list[Block] = []
    if explore:
        blocks += [
            "## Sharpness against explore fraction",
            "Keskar sharpness of the final weights: the largest loss rise in a small box "
            "around them, in percent (lower is flatter); mean ± 95% CI half-width (n).",
            FigureBlock(
                "sharpness_vs_explore.png",
                "sharpness vs explore fraction",
                plots.explore_curve(runs, "sharpness", fraction),
            ),
            views.cells(explore_summary(runs, "sharpness"), conditions(knee_trials(runs)), _three),
        ]
    if "test_acc" not in runs:  # the scatter and its correlation are against test accuracy
        return blocks
    return [
        *blocks,
        "## Sharpness and accuracy",
        "Spearman rank correlation of sharpness with test accuracy (negative: flatter minima "
        "generalise better).",
        sharpness_correlation(runs).round({"rho": 3, "p_value": 4}),
        FigureBlock(
            "sharpness_vs_accuracy.png",
            "sharpness vs test accuracy",
            plots.sharpness_accuracy_scatter(runs),
        ),
    ]


def _three(value: float) -> str:
    """Sharpness as its tables show it: three decimals."""
    return f"{value:.3f}"
