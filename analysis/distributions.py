"""The distributions figure: every usable seed's final value of the objective metric (test
accuracy by default) and sharpness per explore fraction, the paper's own picture of how much a
schedule setting varies from seed to seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.panels import (
    PANEL_COLUMNS,
    condition_groups,
    condition_panels,
    dropped_note,
)
from analysis.plots import EXPLORE_COLOURS, axis_label, log_scale
from analysis.trials import conditions, counts, knee_trials, usable
from analysis.wording import Unit, describe, percent

DISTRIBUTED = ("test_acc", "sharpness")  # the final metrics drawn seed by seed, by default
JITTER = 0.28  # dots spread up to this far either side of their fraction (1 apart)


def distributions(
    runs: pd.DataFrame, fraction: float = 0.5, metric: str = "test_acc", mode: str = ""
) -> Figure:
    """Every usable seed's final ``metric`` (the objective, in its unit, its direction on the
    axis; a loss-like one spanning more than ``plots.LOG_SPAN`` times on a log scale) and
    sharpness per explore fraction: one dot per seed (spread sideways at random, fixed seed, so
    dots at one value stay apart), a black bar at the median; one panel row per metric, one
    column per condition (peak LR, ...), each panel on its own y scale. Above a fraction, how
    many of its seeds diverged, were stopped early or failed (they have no final value to
    show); ``fraction`` is shaded."""
    trials = knee_trials(runs)
    keys = conditions(trials)
    drawn = dict.fromkeys((metric, *DISTRIBUTED[1:]))
    metrics = [m for m in drawn if m in trials and usable(trials, m).any()] or [metric]
    fractions = np.sort(trials["explore_fraction"].dropna().unique())
    position = {f: i for i, f in enumerate(fractions)}
    groups = condition_groups(trials, keys)
    total = trials.groupby(keys, dropna=False).ngroups
    width = max(3.2, 0.5 * len(fractions) + 1.0)  # a panel's, in inches: room per fraction
    blocks = -(-len(groups) // PANEL_COLUMNS)
    fig = Figure(
        figsize=(width * min(len(groups), PANEL_COLUMNS) + 1, 2.6 * len(metrics) * blocks + 0.8),
        layout="constrained",
    )
    # Each panel its own y scale: sharpness differs several-fold between peak LRs, and what a
    # panel asks is how the fractions compare at its condition.
    panels = condition_panels(fig, len(groups), len(metrics), share_y=False)
    rng = np.random.default_rng(0)
    for axes, (key, cell) in zip(panels, groups, strict=True):
        for row, (ax, shown) in enumerate(zip(axes, metrics, strict=True)):
            unit = Unit(shown, mode if shown == metric else "")
            good = cell[usable(cell, shown)]
            logged = log_scale(good[shown], unit)
            for f, seeds in good.groupby("explore_fraction", sort=True):
                x = position[f] + rng.uniform(-JITTER, JITTER, len(seeds))
                values = seeds[shown].to_numpy() * unit.scale
                ax.scatter(
                    x, values, color=EXPLORE_COLOURS(f), s=16, alpha=0.8, linewidths=0, zorder=3
                )
                middle = np.median(values)  # under the dots: seeds at the median stay visible
                ax.hlines(middle, position[f] - 0.38, position[f] + 0.38, color="black", zorder=2)
            if row == 0:
                _left_out(ax, cell, position)
            if fraction in position:
                ax.axvspan(
                    position[fraction] - 0.5,
                    position[fraction] + 0.5,
                    color="grey",
                    alpha=0.12,
                    linewidth=0,
                )
            ax.set_xticks(range(len(fractions)), [percent(f) for f in fractions])
            ax.set_xlim(-0.6, len(fractions) - 0.4)
            ax.grid(axis="y", alpha=0.3)
            ax.margins(y=0.12)  # room for the counts at the top
            if logged:  # each panel its own scale: a log one where its own values span far
                ax.set_yscale("log")
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel(_wrapped(axis_label(shown, unit.mode)))
        axes[0].set_title(describe(keys, key), fontsize="medium")
        axes[-1].set_xlabel("explore fraction")
    fig.suptitle(f"One dot per usable seed, bar: median{dropped_note(total)}", fontsize="medium")
    return fig


def _wrapped(label: str) -> str:
    """A long axis label on two lines, its parenthesis on the second, to fit a short panel."""
    return label.replace(" (", "\n(", 1) if len(label) > 24 else label


def _left_out(ax, cell: pd.DataFrame, position: dict) -> None:
    """``2 diverged, 1 failed`` above each fraction of ``cell`` with seeds left out (how each
    trial ended: :mod:`analysis.trials`)."""
    for f, seeds in cell.groupby("explore_fraction"):
        ended = counts(seeds)
        words = [f"{ended[how]} {how}" for how in ("diverged", "stopped", "failed") if ended[how]]
        if words:
            ax.annotate(
                "\n".join(words),
                (position[f], 1),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="top",
                fontsize=7,
                color="firebrick",
            )
