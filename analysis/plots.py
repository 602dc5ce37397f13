"""The report's figures, each a matplotlib ``Figure`` built without pyplot (no global state, no
display needed): the objective metric and sharpness against explore fraction, sharpness against
accuracy, and an explore x peak-LR heatmap of the objective's mean. Values are drawn in their
metric's unit (:class:`analysis.wording.Unit`: an accuracy in percent), every axis labelled
with the metric and, past an accuracy, which way is better."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from analysis.summaries import explore_summary, sharpness_correlation
from analysis.trials import conditions, knee_trials, usable
from analysis.wording import Unit, describe, percent

LABELS = {
    "test_acc": "test accuracy (%)",
    "sharpness": "Keskar sharpness (% loss rise in the ε-box)",
}
MARKERS = "osD^v<>p*h"  # one per condition when there are at most this many
EXPLORE_COLOURS = colormaps["viridis"].with_extremes(bad="0.6")  # grey: no explore phase
LEGEND_INSIDE = 8  # more lines than this: the legend goes beside the axes
LEGEND_MAX = 30  # more than this: no legend, a note instead
DODGE_SHARE = 0.4  # the conditions side by side span at most this share of the closest spacing
LOG_SPAN = 3.0  # a lower-is-better metric spanning more than this factor is drawn on a log scale


def axis_label(metric: str, mode: str = "") -> str:
    """``test accuracy (%)``, ``val_loss (lower is better)``; sharpness says what it is."""
    return LABELS["sharpness"] if metric == "sharpness" else Unit(metric, mode).label


def log_scale(values, unit: Unit) -> bool:
    """Whether to draw ``values`` on a log scale: a loss-like metric (lower is better, not an
    accuracy, all positive) whose values span more than ``LOG_SPAN`` times, where a linear axis
    would squash the good end, the one that matters."""
    found = np.asarray(values, dtype=float)
    found = found[np.isfinite(found)]
    if unit.percent or unit.mode != "min" or unit.metric == "sharpness" or not len(found):
        return False
    return bool(found.min() > 0 and found.max() / found.min() > LOG_SPAN)


def explore_curve(
    runs: pd.DataFrame, metric: str = "test_acc", fraction: float = 0.5, mode: str = ""
) -> Figure:
    """Mean ``metric`` against explore fraction, one line per peak LR, 95% CI bars, every seed
    as a faint dot, ``fraction`` marked, and a count above any fraction where seeds diverged.
    ``mode`` ("max"/"min", by default from the name) is said on the axis; a loss-like metric
    spanning more than ``LOG_SPAN`` times is drawn on a log scale (:func:`log_scale`)."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    seeds, lines, keys = _draw_explore(ax, runs, metric, fraction, mode)
    ax.set_title(f"{_name(metric)} vs explore fraction (mean ± 95% CI over up to {seeds} seeds)")
    _legend(fig, ax, lines, title="condition" if len(keys) > 1 else None)
    return fig


def explore_panels(
    studies: list[tuple[str, pd.DataFrame, str, str]], fraction: float = 0.5
) -> Figure:
    """One panel per study, as :func:`explore_curve` draws it: ``studies`` are (title, runs,
    metric, mode), each study in its own objective (an accuracy beside a loss). Three panels a
    row."""
    columns = min(len(studies), 3)
    rows = -(-len(studies) // columns)
    fig = Figure(figsize=(5.2 * columns, 4.2 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, runs, metric, mode) in zip(axes, studies, strict=False):
        seeds, lines, _ = _draw_explore(ax, runs, metric, fraction, mode)
        ax.set_title(f"{title}\n(mean ± 95% CI, up to {seeds} seeds)", fontsize=10)
        if lines <= LEGEND_INSIDE:
            ax.legend(fontsize="small")
    for ax in axes[len(studies) :]:
        ax.set_visible(False)
    return fig


def _draw_explore(
    ax, runs: pd.DataFrame, metric: str, fraction: float, mode: str
) -> tuple[int, int, list[str]]:
    """Draw :func:`explore_curve`'s lines, seeds, marks and labels on ``ax``; returns the most
    seeds at a point, the number of lines and the condition keys, for the caller's title and
    legend."""
    summary = explore_summary(runs, metric, mode=mode)
    trials = knee_trials(runs)
    keys = conditions(trials)
    unit = Unit(metric, mode)
    scale = unit.scale
    groups = list(summary.groupby(keys, sort=True))
    step = _dodge_step(summary["explore_fraction"], len(groups))
    for i, (key, cell) in enumerate(groups):
        colour = f"C{i % 10}"
        dodge = (i - (len(groups) - 1) / 2) * step  # side by side, so error bars do not overlap
        x = cell["explore_fraction"] * 100 + dodge
        low = (cell["mean"] - cell["ci_low"]).fillna(0) * scale
        high = (cell["ci_high"] - cell["mean"]).fillna(0) * scale
        ax.errorbar(
            x,
            cell["mean"] * scale,
            yerr=[low, high],
            color=colour,
            marker="o",
            capsize=4,
            label=describe(keys, key),
        )
        seeds = trials[usable(trials, metric)].merge(cell[keys].drop_duplicates(), on=keys)
        ax.scatter(
            seeds["explore_fraction"] * 100 + dodge + 0.6 * step,  # beside the bar, not under
            seeds[metric] * scale,
            color=colour,
            s=8,
            alpha=0.45,
            linewidths=0,
        )
        for _, row in cell[cell["diverged"] > 0].iterrows():
            ax.annotate(
                f"{row['diverged']} diverged",
                (row["explore_fraction"] * 100, 1),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="top",
                color=colour,
                fontsize=8,
            )
    ax.axvline(fraction * 100, color="grey", linestyle="--", linewidth=1)
    ax.annotate(
        f"{percent(fraction)} explore",
        (fraction * 100, 0.02),
        xycoords=("data", "axes fraction"),
        rotation=90,
        ha="right",
        va="bottom",
        color="grey",
        fontsize=8,
    )
    ax.set_xlabel("explore fraction (% of training steps at the peak LR)")
    ylabel = axis_label(metric, mode)
    if log_scale(trials.loc[usable(trials, metric), metric], unit):
        ax.set_yscale("log")
        ylabel += ", log scale"
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    seeds = int(summary["n"].max()) if len(summary) else 0
    return seeds, len(groups), keys


def _dodge_step(fractions: pd.Series, groups: int) -> float:
    """How far apart (in percentage points) to draw the conditions at one explore fraction: one
    point each, but all of them together within DODGE_SHARE of the closest two fractions, so a
    condition's points stay nearer their own fraction than any other."""
    if groups < 2:
        return 1.0
    swept = np.unique(fractions.dropna().to_numpy() * 100)
    spacing = np.diff(swept).min() if len(swept) > 1 else 100.0
    return min(1.0, DODGE_SHARE * spacing / (groups - 1))


def _legend(fig: Figure, ax, lines: int, title: str | None = None) -> None:
    """A legend inside the axes for a few lines, beside them for more, and for very many a note
    instead (the tables below the figure name every condition)."""
    if lines <= LEGEND_INSIDE:
        ax.legend(title=title)
    elif lines <= LEGEND_MAX:
        columns = -(-lines // 15)
        fig.set_figwidth(fig.get_figwidth() + 2.2 * columns)
        fig.legend(
            *ax.get_legend_handles_labels(),
            loc="outside right upper",
            title=title,
            fontsize="small",
            ncols=columns,
        )
    else:
        ax.annotate(
            f"{lines} conditions: too many to label (colours repeat); the tables give each",
            (0.01, 0.99),
            xycoords="axes fraction",
            ha="left",
            va="top",
            fontsize=8,
            color="grey",
        )


def sharpness_accuracy_scatter(runs: pd.DataFrame) -> Figure:
    """One dot per usable trial: sharpness against test accuracy, coloured by explore fraction,
    one marker per condition (peak LR) when there are at most ten, one marker for all otherwise;
    the title gives the Spearman correlation over all trials and the number of dots."""
    good = runs[usable(runs, "sharpness") & usable(runs, "test_acc")]
    keys = conditions(good) if len(good) else ["peak_lr"]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    groups = list(good.groupby(keys, sort=True)) if len(good) else []
    if len(groups) > len(MARKERS):  # markers would run out: every trial one marker, none dropped
        groups = [(None, good)]
    points, drawn = None, 0
    for i, (key, cell) in enumerate(groups):
        marker = MARKERS[i] if key is not None else "o"
        points = ax.scatter(
            cell["sharpness"],
            cell["test_acc"] * 100,
            c=cell["explore_fraction"].astype(float) * 100,
            cmap=EXPLORE_COLOURS,
            plotnonfinite=True,  # a baseline schedule has no explore fraction: grey, not gone
            vmin=0,
            vmax=100,
            marker=marker,
            s=28,
            alpha=0.8,
            label=None if key is None else describe(keys, key),
        )
        drawn += len(cell)
    if points is not None:
        baselines = good["explore_fraction"].isna()
        if not baselines.all():
            fig.colorbar(points, ax=ax, label="explore fraction (%)")
        if baselines.any():
            ax.scatter([], [], color=EXPLORE_COLOURS.get_bad(), label="grey: baseline schedules")
        if groups[0][0] is not None or baselines.any():
            ax.legend()
    rho = sharpness_correlation(runs).iloc[0]["rho"]
    ax.set_title(f"Sharpness vs test accuracy (Spearman ρ = {rho:.2f}, n = {drawn})")
    ax.set_xlabel(LABELS["sharpness"])
    ax.set_ylabel(LABELS["test_acc"])
    ax.grid(alpha=0.3)
    return fig


def explore_heatmap(runs: pd.DataFrame, metric: str = "test_acc", mode: str = "") -> Figure:
    """Mean ``metric`` on an explore fraction x condition (peak LR) grid, values written in
    (in its unit); the better end is always the bright one, and a loss-like metric spanning
    more than ``LOG_SPAN`` times is coloured on a log scale."""
    summary = explore_summary(runs, metric, mode=mode)
    keys = conditions(knee_trials(runs))
    rows = summary.apply(lambda r: describe(keys, [r[k] for k in keys]), axis=1)
    grid = summary.assign(condition=rows).pivot_table(
        index="condition", columns="explore_fraction", values="mean", sort=False
    )
    unit = Unit(metric, mode)
    means = grid.to_numpy()
    values = means * unit.scale
    fig = Figure(
        figsize=(1.2 * grid.shape[1] + 2.5, 0.6 * grid.shape[0] + 1.8), layout="constrained"
    )
    ax = fig.subplots()
    image = ax.imshow(values, aspect="auto", **_colours(values, unit))
    fig.colorbar(image, ax=ax, label=f"mean {axis_label(metric, mode)}")
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(
                j,
                i,
                unit.value(means[i, j]),
                ha="center",
                va="center",
                fontsize=9,
                # viridis is dark at its low end; reversed (lower is better), at its high one
                color="white" if (image.norm(value) < 0.5) == (unit.mode == "max") else "black",
            )
    ax.set_xticks(range(grid.shape[1]), [percent(f) for f in grid.columns])
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel("explore fraction (% of training steps at the peak LR)")
    ax.set_title(f"Mean {_name(metric).lower()} by explore fraction and peak LR")
    return fig


def _name(metric: str) -> str:
    """A title's name for the metric: ``Test accuracy``, ``Sharpness``, ``val_loss``."""
    return "Sharpness" if metric == "sharpness" else Unit(metric).opening


def _colours(values, unit: Unit) -> dict:
    """The colour map and norm of values coloured by ``unit``'s metric: viridis, bright where
    better (reversed for lower is better), log-scaled where :func:`log_scale` says so."""
    cmap = "viridis" if unit.mode == "max" else "viridis_r"
    return {"cmap": cmap, "norm": LogNorm() if log_scale(values, unit) else Normalize()}


def search_landscape(
    points: pd.DataFrame,
    metric: str = "test_acc",
    fraction: float = 0.5,
    window: float = 0.1,
    mode: str = "",
    selected_by: str = "",
) -> Figure:
    """The points a search tried (``search_summary``'s table, best first): explore fraction
    against peak LR, coloured by mean ``metric`` over seeds (bright: better), the best one
    starred (chosen by ``selected_by``, when that is another metric the legend says so), the
    band around ``fraction`` shaded."""
    unit = Unit(metric, mode)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.axvspan((fraction - window) * 100, (fraction + window) * 100, color="grey", alpha=0.12)
    dots = ax.scatter(
        points["explore_fraction"] * 100,
        points["peak_lr"],
        c=points["mean"] * unit.scale,
        **_colours(points["mean"] * unit.scale, unit),
        s=40,
        edgecolors="black",
        linewidths=0.3,
    )
    best = points.iloc[0]
    ax.scatter(
        best["explore_fraction"] * 100,
        best["peak_lr"],
        marker="*",
        s=300,
        facecolors="none",
        edgecolors="red",
        label="best point" + (f" (by {selected_by})" if selected_by not in ("", metric) else ""),
    )
    fig.colorbar(dots, ax=ax, label=f"mean {axis_label(metric, mode)}")
    ax.set_yscale("log")
    ax.set_xlim(-3, 103)
    ax.set_xlabel("explore fraction (% of training steps at the peak LR)")
    ax.set_ylabel("peak LR (log scale)")
    ax.set_title(
        f"Search: {len(points)} points, shaded: {percent(fraction)} ± {percent(window)} explore"
    )
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig
