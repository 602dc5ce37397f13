"""analysis/distributions.py: the distributions over seeds draw exactly the usable seeds
(factories.curve_runs: seeds 0-3 finished, 4 diverged, 5 failed at every condition), their
median bars at the medians worked out by hand, and say what was left out."""

import numpy as np
import pytest
from factories import curve_runs
from matplotlib.collections import PathCollection

from analysis import plots
from analysis.distributions import JITTER, distributions


def dots(ax) -> list[PathCollection]:
    """The scatter plots of ``ax`` (not the error bars' line collections)."""
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def colour(fraction: float) -> tuple:
    return tuple(np.round(plots.EXPLORE_COLOURS(fraction), 6))


def test_distributions_draw_exactly_the_usable_seeds():
    frame, _ = curve_runs()
    frame.loc[(frame["explore_fraction"] == 0.5) & (frame["seed"] == 0), "sharpness"] = np.nan

    fig = distributions(frame)

    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2 * 2  # accuracy and sharpness rows, one column per peak LR
    assert [ax.get_title() for ax in panels[:2]] == ["peak LR 0.05", "peak LR 0.1"]
    for i, ax in enumerate(panels):
        metric, peak_lr = ["test_acc", "sharpness"][i // 2], [0.05, 0.1][i % 2]
        scale = 100 if metric == "test_acc" else 1
        found = {}
        for c in dots(ax):
            c.update_scalarmappable()
            found[tuple(np.round(c.get_facecolors()[0][:3], 6))] = c.get_offsets()
        assert len(found) == 2
        for position, fraction in enumerate([0.25, 0.5]):
            cell = frame[(frame["peak_lr"] == peak_lr) & (frame["explore_fraction"] == fraction)]
            # Seeds 0-3 finished; 4 diverged, 5 failed: their values must not be drawn.
            seeds = cell[(cell["seed"] < 4) & cell[metric].notna()]
            offsets = found[colour(fraction)[:3]]
            assert sorted(offsets[:, 1]) == pytest.approx(sorted(seeds[metric] * scale))
            assert (np.abs(offsets[:, 0] - position) <= JITTER).all()
        if metric == "test_acc":
            notes = [t.get_text() for t in ax.texts]
            assert notes == ["1 diverged\n1 failed"] * 2
    # The median bars' heights at peak LR 0.05: sharpness 1 + fraction + 0.1 seed, over seeds
    # 0-3 at 25% (median 1.4) but seeds 1-3 at 50% (seed 0 has none: 1.7).
    bars = [c for c in panels[2].collections if not isinstance(c, PathCollection)]
    heights = sorted(segment[0][1] for c in bars for segment in c.get_segments())
    assert heights == pytest.approx([1.4, 1.7])


def test_distributions_draw_the_objective_as_logged_and_name_it():
    frame, _ = curve_runs()
    frame["val_loss"] = 0.3 + 0.01 * frame["seed"]

    fig = distributions(frame, metric="val_loss", mode="min")

    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert panels[0].get_ylabel() == "val_loss\n(lower is better)"
    assert panels[0].get_yscale() == "linear"  # 0.30 to 0.33: no need for a log scale
    assert panels[2].get_ylabel().startswith("Keskar sharpness")
    values = sorted(np.concatenate([c.get_offsets()[:, 1] for c in dots(panels[0])]))
    # Seeds 0-3 of two fractions, unscaled: 0.30, 0.31, 0.32, 0.33, twice each.
    assert values == pytest.approx(sorted([0.3 + 0.01 * s for s in range(4)] * 2))
