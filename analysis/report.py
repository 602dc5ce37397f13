"""The study report: the verdict, the numbers behind it and the figures, as Markdown and HTML.

``write_report`` writes into one folder::

    report.md     the report, figures linked
    report.html   the same, self-contained (figures embedded): mail it, open it anywhere
    summary.csv   per condition and explore fraction, for test_acc_* and sharpness_*: n, mean,
                  std, ci_low, ci_high, best and worst seed (best_seed, worst_seed) and
                  their values (best, worst), diverged, failed; the best seed is the one
                  with the highest accuracy but the lowest sharpness (flatter is better)
    runs.csv      one row per trial, as load_runs returned it
    *.png         the figures

Both documents are rendered from one list of blocks (analysis/render.py), so they never
disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import comparisons, curves, plots
from analysis.intervals import resolution
from analysis.render import Block, FigureBlock, write_documents
from analysis.robustness import (
    Verdict,
    conditions,
    explore_sensitivity,
    explore_summary,
    knee_trials,
    robustness_verdict,
    sharpness_correlation,
    usable,
)
from analysis.runs import AnalysisError
from analysis.wording import describe, label, percent

METRIC = "test_acc"  # the metric every verdict is about
METHOD = (
    "Method: at each peak LR, the fraction is compared with every other explore fraction that "
    "has 3 or more usable seeds: each gap (the other's mean minus the fraction's) gets a t "
    "interval, paired by seed over the seeds both finished when they share 3 or more and at "
    "least half of the larger side's (Welch's otherwise), its standard deviation never taken "
    "below the accuracy's resolution (one test image). Robust there when every gap's 90% upper "
    "bound lies below the margin (an intersection-union test at the 5% level); not robust when "
    "some gap's lower bound lies above the margin at a Bonferroni-corrected level; inconclusive "
    "otherwise, or when fewer than 3 seeds finished. Divergence is tested on its own: not robust "
    "when a one-sided Fisher exact test finds seeds diverging more often at the fraction than at "
    "another fraction, at 5% Bonferroni-corrected over the other fractions (more often but not "
    "significantly is said in the decision's reason). Diverged and failed trials are counted, "
    "never averaged in."
)
SEARCH_METHOD = (
    "Method: the search ran each suggested point (explore fraction, peak LR) over the seeds. The "
    "best point within the shaded window around the fraction is compared with the best point "
    "outside it: their gap (outside minus within) gets a 90% t interval, paired by seed over "
    "the seeds both finished when they share 3 or more and at least half of the larger side's "
    "(Welch's otherwise). Robust when the whole interval lies below the margin, not robust when "
    "it lies above, inconclusive when it straddles the margin, when either point has fewer than "
    "3 usable seeds or when no point (or every point) lies in the window. Both points are the "
    "best of their group, so this is a guide, not a test at a known level. Diverged and failed "
    "trials are counted, never averaged in."
)
FIGURES = (
    "accuracy_vs_explore.png",
    "accuracy_heatmap.png",
    "search_landscape.png",
    "sharpness_vs_explore.png",
    "sharpness_vs_accuracy.png",
    "learning_curves.png",
    "distributions.png",
)
FILES = ("report.md", "report.html", "summary.csv", "runs.csv", *FIGURES)  # all a report writes
CI_CELLS = "mean ± 95% CI half-width (n)"  # the explore tables' cells
STD_CELLS = "mean ± std (n)"  # the schedule and decay tables' cells


def write_report(
    runs: pd.DataFrame,
    out: Path,
    title: str,
    fraction: float = 0.5,
    margin: float = 0.002,
    history: pd.DataFrame | None = None,
) -> Verdict:
    """Analyse ``runs`` (from :func:`analysis.runs.load_runs`) and write the report into ``out``
    (created if needed); returns the verdict.

    ``history`` (from :func:`analysis.runs.load_history`, at least ``curves.METRICS`` of the
    trials ``curves.needed(runs)`` names) adds the learning curves to a grid study's report;
    without it (or with fewer than two epochs in it) that section is left out.

    A grid over explore fractions gets the explore-fraction verdict; a search (trials tagged
    ``search=optuna``) gets the search verdict: is the best point near ``fraction`` within
    ``margin`` of the best point away from it. Sections on schedules, budgets and decay shapes
    appear when the study swept them. A study with no usable Knee trial (baseline schedules
    only) gets an inconclusive verdict, no explore-fraction sections and no summary.csv, and
    the sections that do apply. A study where no trial can be used (all diverged or failed)
    gets a short inconclusive report; runs without a ``test_acc`` metric raise
    :class:`~analysis.runs.AnalysisError` before anything is written.
    """
    if METRIC not in runs:
        raise AnalysisError(f"the runs have no {METRIC} metric; metrics found: {_metrics(runs)}")
    _clear(out)  # a figure or table this report does not write must not survive from the last
    if not usable(runs, METRIC).any():
        return _write_inconclusive(runs, out, title, fraction, margin)
    search = comparisons.is_search(runs)
    # Explore-fraction views need a usable Knee trial: a study of baselines alone has none.
    knee = usable(knee_trials(runs), METRIC).any()
    if search:
        verdict = comparisons.search_verdict(runs, fraction, margin)
    else:
        verdict = robustness_verdict(runs, fraction=fraction, margin=margin)
    runs.to_csv(out / "runs.csv", index=False)
    if knee:
        _summary_table(runs).to_csv(out / "summary.csv", index=False)
    if search:
        method, explore = [SEARCH_METHOD], _search_section(runs, verdict)
    elif knee:
        method, explore = [METHOD], _explore_sections(runs, verdict)
    else:
        method, explore = [], []
    blocks = [
        f"# {title}",
        f"**Verdict: {verdict.status}.** {verdict.explanation}",
        " ".join([f"Margin: {verdict.margin * 100:.2f} accuracy points.", *method]),
        _trial_counts(runs) + " " + _resolution(runs),
        *explore,
        *(_curve_sections(runs, history, fraction) if knee and not search else []),
        *_comparison_sections(runs, fraction, margin),
        *_sharpness_sections(runs, fraction, explore=knee and not search),
        *_left_out_section(runs),
    ]
    files = [
        *(["summary.csv (per condition and explore fraction)"] if knee else []),
        "runs.csv (one row per trial)",
        *(["the PNG figures"] if any(isinstance(b, FigureBlock) for b in blocks) else []),
    ]
    blocks.append(f"Files: {', '.join(files)}.")
    write_documents(blocks, out, title)
    return verdict


def _clear(out: Path) -> None:
    """An empty report folder: made if missing, an earlier report's files removed (only those:
    ``out`` may be a folder of the user's)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (out / name).unlink(missing_ok=True)


def _write_inconclusive(
    runs: pd.DataFrame, out: Path, title: str, fraction: float, margin: float
) -> Verdict:
    """The report of a study with no usable trial: the counts and the trials, no figures."""
    explanation = f"{percent(fraction)} explore: inconclusive, no usable trials."
    verdict = Verdict("inconclusive", pd.DataFrame(), explanation, fraction, margin, METRIC)
    runs.to_csv(out / "runs.csv", index=False)
    blocks: list[Block] = [
        f"# {title}",
        f"**Verdict: {verdict.status}.** {verdict.explanation}",
        _trial_counts(runs) + " Every trial diverged or failed: there is nothing to average.",
        *_left_out_section(runs),
        "Files: runs.csv (one row per trial).",
    ]
    write_documents(blocks, out, title)
    return verdict


def _metrics(runs: pd.DataFrame) -> str:
    """The metric columns of ``runs`` (everything but the params and the run's own columns)."""
    params = set(runs.attrs.get("params", ()))
    own = ("run_id", "status", "diverged", "search")
    found = [c for c in runs if c not in params and c not in own]
    return ", ".join(sorted(found)) or "none"


def verdict_line(verdict: Verdict) -> str:
    """The one line a terminal shows: ``verdict: ROBUST: 50% explore is robust: ...``."""
    return f"verdict: {verdict.status.upper()}: {verdict.explanation}"


def _summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: accuracy and sharpness summaries side by side, prefixed by metric."""
    metrics = [m for m in ("test_acc", "sharpness") if m in runs]
    keys = [*conditions(knee_trials(runs)), "explore_fraction"]
    parts = [explore_summary(runs, m).set_index(keys).add_prefix(f"{m}_") for m in metrics]
    return pd.concat(parts, axis=1).reset_index()


def _explore_sections(runs: pd.DataFrame, verdict: Verdict) -> list[Block]:
    keys = conditions(knee_trials(runs))
    return [
        _verdict_view(verdict.table, keys),
        "## Accuracy against explore fraction",
        FigureBlock(
            "accuracy_vs_explore.png",
            "test accuracy vs explore fraction",
            plots.explore_curve(runs, "test_acc", verdict.fraction),
        ),
        "Test accuracy in percent: mean ± 95% CI half-width over seeds (n usable seeds).",
        _cells(explore_summary(runs, METRIC), keys, 100, 2),
        "## How much the explore fraction matters",
        "Range: best minus worst explore fraction's mean test accuracy, in points.",
        _sensitivity_view(explore_sensitivity(runs), keys),
        FigureBlock(
            "accuracy_heatmap.png",
            "mean accuracy by explore fraction and peak LR",
            plots.explore_heatmap(runs, "test_acc"),
        ),
    ]


def _curve_sections(
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
            "legend: seeds per panel, a range when the panels differ) and, shaded, their "
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
            plots.distributions(runs, fraction),
        ),
        "Every usable seed's final value, one dot each (spread sideways so equal values stay "
        f"apart), the black bar its median; {percent(fraction)} explore shaded where it was "
        "run. Above a fraction, how many of its seeds diverged or failed: they have no value "
        "to show.",
    ]


def _search_section(runs: pd.DataFrame, verdict: Verdict) -> list[Block]:
    points, found = comparisons.search_summary(
        runs, METRIC, fraction=verdict.fraction, margin=verdict.margin
    )
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


def _comparison_sections(runs: pd.DataFrame, fraction: float, margin: float) -> list[Block]:
    blocks: list[Block] = []
    schedules = comparisons.schedule_table(runs, fraction=fraction)
    if len(schedules) and schedules["schedule"].str.startswith("knee").any():
        blocks += [
            "## Knee against baseline schedules",
            f"Test accuracy per schedule (Knee at {percent(fraction)} explore), mean ± std over "
            "seeds in percent, and Knee minus each baseline in points with its 90% interval "
            "(positive: Knee is better).",
            _difference_view(schedules, "knee_minus"),
        ]
    elif len(schedules):
        blocks += [
            "## Baseline schedules",
            "Test accuracy per schedule, mean ± std over seeds in percent (no Knee trial at "
            f"{percent(fraction)} explore to compare them with).",
            _difference_view(schedules, "knee_minus"),
        ]
    budgets = comparisons.budget_table(runs, fraction=fraction, margin=margin)
    if len(budgets):
        blocks += [
            "## Training budget",
            "Does Knee at a shorter budget match a baseline at the full budget? Knee minus "
            f"baseline in points, 90% interval; *matches* when the interval lies above "
            f"-{margin * 100:.2f} points, *falls short* when below it.",
            _budget_view(budgets),
        ]
    decays = comparisons.decay_table(runs, fraction=fraction)
    if len(decays):
        blocks += [
            "## Decay shape of the exploit phase",
            f"Knee at {percent(fraction)} explore per decay shape; each shape minus linear (the "
            "paper's) in points with its 90% interval.",
            _difference_view(decays, "minus_linear"),
        ]
    return blocks


def _sharpness_sections(runs: pd.DataFrame, fraction: float, explore: bool) -> list[Block]:
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
            _cells(explore_summary(runs, "sharpness"), conditions(knee_trials(runs)), 1, 3),
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


def _left_out_section(runs: pd.DataFrame) -> list[Block]:
    unusable = runs[(runs["status"] != "FINISHED") | runs["diverged"]]
    if unusable.empty:
        return []
    keys = conditions(knee_trials(runs))
    columns = [c for c in ("run_id", "schedule", *keys, "explore_fraction", "seed") if c in runs]
    return [
        "## Trials left out of the means",
        unusable[[*columns, "status", "diverged"]].rename(columns=label),
    ]


def _trial_counts(runs: pd.DataFrame) -> str:
    finished = ((runs["status"] == "FINISHED") & ~runs["diverged"]).sum()
    diverged = int(runs["diverged"].sum())
    other = len(runs) - finished - diverged
    return (
        f"{len(runs)} trials: {finished} finished, {diverged} diverged, "
        f"{other} failed, killed or still running."
    )


def _resolution(runs: pd.DataFrame) -> str:
    """How finely accuracy can move: a one-image step on a small test set matters for a margin."""
    step = resolution(runs["test_acc"])
    if not step:
        return ""
    images = round(1 / step)
    if abs(images * step - 1) < 0.01:
        return f"Accuracy moves in steps of {step * 100:.3f} points (one of {images} test images)."
    return f"The smallest accuracy difference seen is {step * 100:.3f} points."


def _verdict_view(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The verdict's table, one row per condition: the other fraction that decided, the gap
    (that fraction's mean minus the judged one's) and its interval, the decision."""
    view = table[keys].copy()
    view["best fraction"] = table["best_fraction"].map(percent)
    view["compared with"] = table["versus"].map(percent)
    view["its mean (%)"] = (table["versus_mean"] * 100).round(2)
    view["fraction mean (%)"] = (table["fraction_mean"] * 100).round(2)
    view["gap (points)"] = (table["gap"] * 100).round(3)
    view["interval"] = [
        f"{percent(level)}: {low * 100:.3f} to {high * 100:.3f}" if np.isfinite(low) else ""
        for low, high, level in zip(
            table["gap_low"], table["gap_high"], table["confidence"], strict=True
        )
    ]
    view["seeds at the fraction"] = table["n_fraction"]
    view["test"] = table["test"]
    view["decision"] = [
        f"{decision} ({reason})" if reason else decision
        for decision, reason in zip(table["decision"], table["reason"], strict=True)
    ]
    return _headed(view, keys)


def _headed(view: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The condition columns headed in words, as every table of the report heads them."""
    return view.rename(columns={k: label(k) for k in keys})


def _difference_view(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """Means as ``mean ± std (n)`` in percent and a difference column with its interval."""
    heading = {"knee_minus": "Knee minus (points)", "minus_linear": "minus linear (points)"}[name]
    view = table.drop(columns=[c for c in table if c.startswith(name)] + ["n", "mean", "std"])
    view = view.rename(columns=label)  # the conditions, and schedule or decay
    view[f"test accuracy (%): {STD_CELLS}"] = [
        f"{m * 100:.2f} ± {s * 100:.2f} (n={n})" if n > 1 else f"{m * 100:.2f} (n={n})"
        for m, s, n in zip(table["mean"], table["std"], table["n"], strict=True)
    ]
    columns = [c for c in table if c.startswith(name) and c.endswith("_low")]
    for low_column in columns:
        base = low_column.removesuffix("_low")
        suffix = base.removeprefix(name)
        view[heading + suffix] = [
            "" if pd.isna(d) else f"{d * 100:+.2f} ({lo * 100:+.2f} to {hi * 100:+.2f})"
            for d, lo, hi in zip(table[base], table[low_column], table[f"{base}_high"], strict=True)
        ]
    return view


def _budget_view(table: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in table if c not in _BUDGET_COLUMNS and not c.startswith("knee_minus")]
    view = table[keys].copy()
    view["Knee"] = [
        f"{k} {e} epochs" for k, e in zip(table["knee"], table["knee_epochs"], strict=True)
    ]
    view["Knee (%)"] = (table["knee_mean"] * 100).round(2)
    view["baseline"] = [
        f"{b} {e} epochs" for b, e in zip(table["baseline"], table["baseline_epochs"], strict=True)
    ]
    view["baseline (%)"] = (table["baseline_mean"] * 100).round(2)
    view["Knee minus (points)"] = [
        f"{d * 100:+.2f} ({lo * 100:+.2f} to {hi * 100:+.2f})"
        for d, lo, hi in zip(
            table["knee_minus"], table["knee_minus_low"], table["knee_minus_high"], strict=True
        )
    ]
    view["decision"] = table["decision"]
    return _headed(view, keys)


_BUDGET_COLUMNS = {
    *("knee", "knee_epochs", "knee_mean", "baseline", "baseline_epochs", "baseline_mean"),
    "decision",
}


def _cells(summary: pd.DataFrame, keys: list[str], scale: float, digits: int) -> pd.DataFrame:
    """One row per explore fraction, one column per condition: ``mean ± CI half-width (n)``.

    Pivoted on the fractions themselves, labelled afterwards: two fractions may share a label
    at low precision (0% and 0.2%), never a row."""

    def cell(row: pd.Series) -> str:
        if not row["n"]:
            return "no usable seeds"
        text = f"{row['mean'] * scale:.{digits}f}"
        if pd.notna(row["ci_high"]) and np.isfinite(row["ci_high"]):
            text += f" ± {(row['ci_high'] - row['mean']) * scale:.{digits}f}"
        text += f" (n={int(row['n'])}"
        if row["diverged"]:
            text += f", {int(row['diverged'])} diverged"
        return text + ")"

    table = summary.assign(text=summary.apply(cell, axis=1)).pivot(
        index="explore_fraction", columns=keys, values="text"
    )
    table = table.sort_index()
    columns = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    table.columns = [describe(keys, list(c)) for c in columns]
    table.index = table.index.map(percent)
    return table.rename_axis(f"explore (cells: {CI_CELLS})").reset_index()


def _sensitivity_view(sensitivity: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    view = sensitivity[keys].copy()
    view["best"] = [
        f"{percent(f)} ({m * 100:.2f}%)"
        for f, m in zip(sensitivity["best_fraction"], sensitivity["best_mean"], strict=True)
    ]
    view["worst"] = [
        f"{percent(f)} ({m * 100:.2f}%)"
        for f, m in zip(sensitivity["worst_fraction"], sensitivity["worst_mean"], strict=True)
    ]
    view["range (points)"] = (sensitivity["range"] * 100).round(2)
    return _headed(view, keys)
