"""The learning-curves figure: the objective metric (test accuracy by default), training loss
and the LR against epoch, one line per explore fraction, one panel column per condition (peak
LR, ...), built without pyplot from :func:`analysis.runs.load_history`'s frame.

Each line is the median over a fraction's finished seeds at each epoch, its band their
interquartile range (25th to 75th percentile); diverged, failed and unfinished trials are left
out, as they are out of every mean of the report. The LR row shows each fraction's schedule:
the ``lr`` per-epoch metric, the LR of each epoch's last step.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.comparisons import is_search
from analysis.panels import PANEL_COLUMNS, condition_groups, condition_panels, dropped_note
from analysis.plots import EXPLORE_COLOURS, LEGEND_MAX, axis_label, log_scale
from analysis.trials import conditions, knee_trials, outcome, usable
from analysis.wording import Unit, describe, percent

METRICS = ("test_acc", "train_loss", "lr")  # the per-epoch metrics drawn, top to bottom
ROW_LABELS = {"train_loss": "training loss (log scale)", "lr": "learning rate"}
BAND = (0.25, 0.75)  # the quantiles the band spans: the interquartile range
BASELINE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))  # one per baseline schedule
JUDGED_WIDTH, LINE_WIDTH = 2.4, 1.3  # the judged fraction's line stands out
ZOOM_FROM = 0.2  # the accuracy axis spans the curves from this share of the epochs on
# The history of at most this many trials is fetched: 3,000 requests, ~20 s from a local sqlite
# store (benchmarks/RESULTS.md); past it, each line draws its lowest-numbered seeds.
HISTORY_RUNS = 1000
MIN_SEEDS = 3  # seeds per line drawn however many lines there are


def history_metrics(metric: str = "test_acc") -> tuple[str, ...]:
    """The per-epoch metrics :func:`learning_curves` draws for objective ``metric``, for
    ``load_history(metrics=...)``: the objective, training loss and LR (``METRICS`` for the
    default ``test_acc``)."""
    return tuple(dict.fromkeys((metric, *METRICS[1:])))


def finished(runs: pd.DataFrame) -> pd.Series:
    """Trials whose curves are drawn: those that trained their whole budget without diverging
    (not stopped early, not failed: see :mod:`analysis.trials`)."""
    return outcome(runs) == "finished"


def needed(
    runs: pd.DataFrame, budget: int = HISTORY_RUNS, metric: str = "test_acc"
) -> pd.DataFrame:
    """The trials whose history :func:`learning_curves` draws, for ``load_history(runs=...)``
    (the history costs a request per trial and metric): the finished trials of the conditions
    the figure shows, at most about ``budget`` of them. Past the budget each line (a fraction
    or a baseline schedule in a condition) keeps its lowest-numbered seeds, the same number for
    every line (at least ``MIN_SEEDS``), and the legend says how many of how many. None for a
    search or a study of baselines alone (no usable Knee trial by ``metric``, the objective):
    their report has no learning curves."""
    if is_search(runs) or not usable(knee_trials(runs), metric).any():
        return runs.iloc[:0]
    keys = conditions(knee_trials(runs))
    shown = pd.DataFrame(
        [key for key, _ in condition_groups(knee_trials(runs), keys)], columns=keys
    )
    good = runs[finished(runs)]
    # A left merge keeps the left rows' order: one flag per trial, in the conditions drawn or not.
    flags = good[keys].merge(shown.assign(shown=True), on=keys, how="left")["shown"]
    good = good[flags.eq(True).to_numpy()]
    if len(good) <= budget:
        return good
    line = [*keys, "schedule", "explore_fraction"]
    per_line = max(MIN_SEEDS, budget // good.groupby(line, dropna=False).ngroups)
    picked = good.sort_values("seed", kind="stable").groupby(line, dropna=False).head(per_line)
    return good[good.index.isin(picked.index)]  # in the runs' own order


def learning_curves(
    history: pd.DataFrame,
    runs: pd.DataFrame,
    fraction: float = 0.5,
    metric: str = "test_acc",
    mode: str = "",
) -> Figure:
    """``metric`` (the objective, in its unit: an accuracy in percent, a loss-like one on a log
    scale when it spans more than ``plots.LOG_SPAN`` times), training loss (log scale) and LR
    against epoch for each condition of the Knee trials in ``runs``: per explore fraction the
    median over its finished seeds and the interquartile band (none on the LR: one schedule per
    fraction), coloured as the other figures colour explore fractions, ``fraction`` drawn
    thicker; baseline schedules of the same condition grey, one dash pattern each. The legend
    gives each line's seeds (``n=10``; ``n=50 of 250`` when the history holds only some of the
    finished ones; a range when the panels differ). ``history`` is ``load_history``'s frame
    (its trials' params are taken from ``runs``; trials not finished in ``runs`` are left out;
    a metric it lacks leaves its row empty, with a note: fetch :func:`history_metrics`)."""
    rows = history_metrics(metric)
    unit = Unit(metric, mode)
    keys = conditions(knee_trials(runs))
    good = runs[finished(runs)]
    drawn = [m for m in rows if m in history]
    data = history[["run_id", "epoch", *drawn]].merge(
        good[["run_id", "schedule", "explore_fraction", *keys]], on="run_id"
    )
    groups = condition_groups(knee_trials(runs), keys)
    total = knee_trials(runs).groupby(keys, dropna=False).ngroups
    blocks = -(-len(groups) // PANEL_COLUMNS)
    fig = Figure(
        figsize=(3.3 * min(len(groups), PANEL_COLUMNS) + 2.4, 2.3 * len(rows) * blocks + 0.9),
        layout="constrained",
    )
    panels = condition_panels(fig, len(groups), len(rows))
    baselines = sorted(data.loc[data["schedule"] != "knee", "schedule"].unique())
    counts: dict[object, set[tuple[int, int]]] = {}  # per line: (drawn, finished) per panel
    objective: list[pd.Series] = []  # each line's median of the objective per epoch, as drawn
    for axes, (key, _) in zip(panels, groups, strict=True):
        condition = pd.DataFrame([key], columns=keys)
        cell = data.merge(condition, on=keys)  # NaN matches NaN
        of = dict(_lines(good.merge(condition, on=keys)))
        for line, trials in _lines(cell):
            counts.setdefault(line, set()).add((trials["run_id"].nunique(), len(of[line])))
            style = _style(line, fraction, baselines)
            for ax, row in zip(axes, rows, strict=True):
                if row in trials:
                    median = _draw(ax, trials, row, style, band=row != "lr")
                    if row == metric:
                        objective.append(median)
        if cell.empty:
            axes[0].annotate(
                "no finished trial", (0.5, 0.5), xycoords="axes fraction", ha="center", color="grey"
            )
        axes[0].set_title(describe(keys, key), fontsize="medium")
        axes[-1].set_xlabel(_progress(runs))
    logged = metric in data and log_scale(data[metric], unit)
    for axes in panels:
        for ax, row in zip(axes, rows, strict=True):
            if row == "train_loss" and len(data) and (data[row] > 0).all():
                ax.set_yscale("log")
            if row == metric and logged:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel(_row_label(row, metric, mode, logged))
    if panels and metric not in history:
        panels[0][0].annotate(
            f"no {metric} history", (0.5, 0.5), xycoords="axes fraction", ha="center", color="grey"
        )
    if panels and unit.percent:
        _zoom(panels[0][0], objective)
    left_out = len(knee_trials(runs)) - int(finished(knee_trials(runs)).sum())
    title = "finished seeds per panel"
    if left_out:
        title += f"\n({left_out} diverged or\nunfinished left out)"
    _curve_legend(fig, counts, fraction, baselines, title)
    fig.suptitle(
        f"Median over finished seeds, band: interquartile range{dropped_note(total)}",
        fontsize="medium",
    )
    return fig


def _row_label(row: str, metric: str, mode: str, logged: bool) -> str:
    if row != metric:
        return ROW_LABELS[row]
    return axis_label(metric, mode) + (", log scale" if logged else "")


def _zoom(ax, medians: list[pd.Series]) -> None:
    """The accuracy axis (shared by every panel) from where the medians are once a fifth of
    training is done: the first epochs' climb would otherwise squash the differences that
    last. A note says when the first epochs lie below it."""
    late = [m[m.index >= ZOOM_FROM * m.index.max()] for m in medians if len(m)]
    late = pd.concat(late) if late else pd.Series(dtype=float)
    if late.empty or not late.notna().any():
        return
    low, high = late.min(), late.max()
    bottom = low - 0.15 * max(high - low, 1.0)
    if bottom > min(m.min() for m in medians if len(m)):
        ax.set_ylim(bottom, high + 0.1 * max(high - low, 1.0))
        ax.annotate(
            f"first epochs below {bottom:.0f}%",
            (0.98, 0.03),
            xycoords="axes fraction",
            ha="right",
            va="bottom",
            fontsize=7,
            color="grey",
        )


def _lines(cell: pd.DataFrame):
    """The lines of one panel: each explore fraction's Knee trials, then each baseline's."""
    knee = cell[cell["schedule"] == "knee"]
    yield from knee.groupby("explore_fraction", sort=True)
    yield from cell[cell["schedule"] != "knee"].groupby("schedule", sort=True)


def _progress(runs: pd.DataFrame) -> str:
    """What a history's step counts: optimizer steps for a budget in steps (the language
    model's), else epochs."""
    return "step" if "steps" in runs and runs["steps"].notna().any() else "epoch"


def _style(line, fraction: float, baselines: list[str]) -> dict:
    if isinstance(line, str):  # a baseline schedule
        dashes = BASELINE_STYLES[baselines.index(line) % len(BASELINE_STYLES)]
        return {"color": EXPLORE_COLOURS.get_bad(), "linestyle": dashes, "lw": LINE_WIDTH}
    judged = abs(line - fraction) < 1e-9
    return {
        "color": EXPLORE_COLOURS(line),
        "linestyle": "-",
        "lw": JUDGED_WIDTH if judged else LINE_WIDTH,
        "zorder": 3 if judged else 2,
    }


def _draw(ax, trials: pd.DataFrame, metric: str, style: dict, band: bool) -> pd.Series:
    """The median of ``metric`` per epoch over ``trials`` and its interquartile band; returns
    the median as drawn (scaled)."""
    per_epoch = trials.groupby("epoch")[metric]
    scale = Unit(metric).scale
    median = per_epoch.median() * scale
    ax.plot(median.index, median, **style)
    if band:
        low, high = per_epoch.quantile(BAND[0]), per_epoch.quantile(BAND[1])
        ax.fill_between(
            low.index, low * scale, high * scale, color=style["color"], alpha=0.2, linewidth=0
        )
    return median


def _curve_legend(
    fig: Figure, counts: dict, fraction: float, baselines: list[str], title: str
) -> None:
    """One entry per line beside the panels, with its seeds per panel: ``50% explore (n=10)``,
    ``(n=50 of 250)`` when only some of the finished seeds were drawn."""
    fractions = sorted(f for f in counts if not isinstance(f, str))
    handles = []
    for line in [*fractions, *[b for b in baselines if b in counts]]:
        drawn = _span({d for d, _ in counts[line]})
        finished_ = _span({f for _, f in counts[line]})
        n = f"n={drawn}" if all(d == f for d, f in counts[line]) else f"n={drawn} of {finished_}"
        name = line if isinstance(line, str) else f"{percent(line)} explore"
        style = _style(line, fraction, baselines)
        style.pop("zorder", None)
        handles.append(Line2D([], [], label=f"{name} ({n})", **style))
    if handles and len(handles) <= LEGEND_MAX:
        fig.legend(
            handles=handles,
            loc="outside right upper",
            title=title,
            fontsize="small",
            title_fontsize="small",
        )


def _span(values: set[int]) -> str:
    """``10``, or ``7–10`` when the panels differ."""
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"
