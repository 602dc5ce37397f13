"""The report's sections past its headline: the explore views, learning curves and
distributions, the search, the schedule, budget and decay comparisons, and sharpness. Each
function returns a list of blocks (:mod:`analysis.render`) for :func:`analysis.report.write_report`.
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
from analysis.wording import percent


def explore_sections(runs: pd.DataFrame, verdict: Verdict) -> list[Block]:
    keys = conditions(knee_trials(runs))
    return [
        *([views.verdict_view(verdict.table, keys)] if verdict.kind == "explore" else []),
        "## Accuracy against explore fraction",
        FigureBlock(
            "accuracy_vs_explore.png",
            "test accuracy vs explore fraction",
            plots.explore_curve(runs, "test_acc", verdict.fraction),
        ),
        "Test accuracy in percent: mean ± 95% CI half-width over seeds (n usable seeds).",
        views.cells(explore_summary(runs, "test_acc"), keys, 100, 2),
        "## How much the explore fraction matters",
        "Range: best minus worst explore fraction's mean test accuracy, in points.",
        views.sensitivity_view(explore_sensitivity(runs), keys),
        FigureBlock(
            "accuracy_heatmap.png",
            "mean accuracy by explore fraction and peak LR",
            plots.explore_heatmap(runs, "test_acc"),
        ),
    ]


def curve_sections(
    runs: pd.DataFrame, history: pd.DataFrame | None, fraction: float
) -> list[Block]:
    """The learning curves (when there is a history of two epochs or more: one is no curve)
    and the final values' distributions over seeds."""
    blocks: list[Block] = []
    if history is not None and history["epoch"].nunique() > 1:
        blocks += [
            "## Learning curves",
            FigureBlock(
                "learning_curves.png",
                "test accuracy, training loss and LR against epoch per explore fraction",
                curves.learning_curves(history, runs, fraction),
            ),
            "Per explore fraction, the median over its finished seeds at each epoch (n in the "
            "legend: seeds per panel, a range when the panels differ; past "
            f"{curves.HISTORY_RUNS:,} finished trials each line draws its lowest-numbered "
            "seeds, n of how many) and, shaded, their "
            f"interquartile range (25th to 75th percentile); {percent(fraction)} explore drawn "
            "thicker, baseline schedules grey and dashed. Diverged, failed and unfinished trials "
            "are left out. Test accuracy in percent (when the first epochs' climb would "
            "squash the rest, its axis starts where the curves are after a fifth of training, "
            "and says so); training loss on a log scale; the LR is that of each epoch's last "
            "step.",
        ]
    return [
        *blocks,
        "## Distributions over seeds",
        FigureBlock(
            "distributions.png",
            "final test accuracy and sharpness over seeds per explore fraction",
            distributions(runs, fraction),
        ),
        "Every usable seed's final value, one dot each (spread sideways so equal values stay "
        f"apart), the black bar its median; {percent(fraction)} explore shaded where it was "
        "run. Above a fraction, how many of its seeds diverged, were stopped early or failed: "
        "they have no final value to show.",
    ]


def search_section(runs: pd.DataFrame, verdict: Verdict) -> list[Block]:
    points, found = comparisons.search_summary(runs, verdict.policy)
    if not found or points.empty:
        return []
    low, high = found["region_explore"]
    lr_low, lr_high = found["region_peak_lr"]
    top = points.head(10)
    top = pd.DataFrame(
        {
            "explore": top["explore_fraction"].map(percent),
            "peak LR": top["peak_lr"],
            "seeds (n)": top["n"],
            "mean (%)": (top["mean"] * 100).round(2),
            "std (%)": [f"{v * 100:.2f}" if pd.notna(v) else "" for v in top["std"]],
        }
    )
    return [
        "## Search",
        f"{found['points']} points, {_seeds_per_point(points['n'])}. The best quarter "
        f"({found['region_points']} points) spans explore {percent(low)} to {percent(high)} "
        f"and peak LR {lr_low:.3g} to {lr_high:.3g}; the best point: explore "
        f"{percent(found['best_explore'])}, peak LR {found['best_peak_lr']:.3g}, "
        f"{found['best_mean'] * 100:.2f}%.",
        FigureBlock(
            "search_landscape.png",
            "search points: explore fraction vs peak LR",
            plots.search_landscape(points, fraction=verdict.fraction),
        ),
        "The ten best points: mean and std of test accuracy over their usable seeds, in percent.",
        top,
    ]


def _seeds_per_point(n: pd.Series) -> str:
    """How many usable seeds each search point has, as the data say."""
    low, high = int(n.min()), int(n.max())
    if low == high:
        return f"each over {low} usable seed{'s' * (low != 1)}"
    return f"each over {low} to {high} usable seeds"


def comparison_sections(runs: pd.DataFrame, policy: Policy, kind: str) -> list[Block]:
    blocks: list[Block] = []
    fraction = percent(policy.fraction)
    schedules = comparisons.schedule_table(runs, policy)
    if len(schedules) and schedules["is_knee"].any():
        blocks += [
            "## Knee against baseline schedules",
            f"Test accuracy per schedule (Knee at {fraction} explore), mean ± std over seeds in "
            "percent, and how far Knee is ahead of each baseline in points with its 90% "
            "interval (positive: Knee is better).",
            views.difference_view(schedules, "knee_ahead"),
        ]
    elif len(schedules):
        blocks += [
            "## Baseline schedules",
            "Test accuracy per schedule, mean ± std over seeds in percent (no Knee trial at "
            f"{fraction} explore to compare them with).",
            views.difference_view(schedules, "knee_ahead"),
        ]
    budgets = comparisons.budget_table(runs, policy)
    if len(budgets):
        blocks += [
            "## Training budget",
            "Does Knee at a shorter budget match a baseline at the full budget? How far Knee is "
            f"ahead in points, 90% interval; *matches* when the interval lies above "
            f"-{policy.margin * 100:.2f} points, *falls short* when below it.",
            views.budget_view(budgets),
        ]
    decays = comparisons.decay_table(runs, policy)
    if len(decays):
        blocks += [
            "## Decay shape of the exploit phase",
            f"Knee at {fraction} explore per decay shape; how far each shape is ahead of linear "
            "(the paper's) in points with its 90% interval.",
            views.difference_view(decays, "ahead_of_linear"),
        ]
    return blocks


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
            views.cells(explore_summary(runs, "sharpness"), conditions(knee_trials(runs)), 1, 3),
        ]
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
