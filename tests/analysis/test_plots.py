"""analysis/plots.py: the explore figures on frames built as load_runs returns them
(factories.explore_grid): every usable trial drawn, conditions kept near their own explore
fraction, legends that leave the data visible, labels that tell fractions apart."""

import numpy as np
import pandas as pd
import pytest
from factories import combined, explore_grid
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection

from analysis import plots


def drawn(fig) -> int:
    """Dots in the figure's first axes (its scatter collections)."""
    return sum(len(c.get_offsets()) for c in dots(fig.axes[0]))


def dots(ax) -> list[PathCollection]:
    """The scatter plots of ``ax`` (not the error bars' line collections)."""
    return [c for c in ax.collections if isinstance(c, PathCollection)]


FRACTIONS = [0.0, 0.25, 0.5, 0.75, 1.0]  # 25 points apart
MANY = {
    "peak_lrs": [0.01, 0.02, 0.05, 0.1, 0.2],
    "epochs": [10, 20, 40, 80, 160, 200, 300, 400, 500],
}


def test_explore_curve_keeps_45_conditions_near_their_own_fraction():
    fig = plots.explore_curve(explore_grid(FRACTIONS, **MANY), "test_acc")

    ax = fig.axes[0]
    means = np.concatenate([c.lines[0].get_xdata() for c in ax.containers])
    seeds = np.concatenate([c.get_offsets()[:, 0] for c in dots(ax)])
    assert len(ax.containers) == 45
    assert len(means) == 45 * 5
    assert len(seeds) == 45 * 5 * 3
    # Fractions are 25 points apart: whatever the dodge, every mean and every seed's dot must be
    # drawn within a quarter of that (6.25 points) of the fraction it belongs to.
    for x in (means, seeds):
        off = np.abs(x[:, None] - np.array(FRACTIONS) * 100).min(axis=1)
        assert off.max() < 6.25
        assert x.min() > -6.25
        assert x.max() < 106.25


@pytest.mark.parametrize("lines", [3, 12, 45])
def test_explore_curve_legend_never_covers_the_data(lines):
    lrs = [0.01 * (i + 1) for i in range(lines)]
    fig = plots.explore_curve(explore_grid([0.0, 0.5, 1.0], lrs, seeds=(0, 1)), "test_acc")
    FigureCanvasAgg(fig).draw()

    ax = fig.axes[0]
    if lines <= 8:  # a few lines: the usual legend in the axes, one entry each
        assert len(ax.get_legend().get_texts()) == lines
    elif lines <= 30:  # beside the axes, every line named
        assert ax.get_legend() is None
        (legend,) = fig.legends
        assert len(legend.get_texts()) == lines
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
    else:  # too many to name: a note instead
        assert ax.get_legend() is None
        assert not fig.legends
        assert any(f"{lines} conditions" in t.get_text() for t in ax.texts)


@pytest.mark.parametrize("conditions", [4, 12])
def test_sharpness_scatter_draws_every_usable_trial(conditions):
    lrs = [0.01 * (i + 1) for i in range(conditions)]
    frame = explore_grid([0.25, 0.5], lrs)  # 2 fractions x 3 seeds per condition
    frame.loc[0, "diverged"] = True  # not usable: left out of the dots and of n
    usable = conditions * 2 * 3 - 1

    fig = plots.sharpness_accuracy_scatter(frame)

    ax = fig.axes[0]
    assert drawn(fig) == usable
    assert ax.get_title().endswith(f"n = {usable})")
    markers = {tuple(map(tuple, c.get_paths()[0].vertices.round(3))) for c in dots(ax)}
    if conditions <= 10:  # one marker and one legend entry per peak LR
        assert len(markers) == conditions
        assert len(ax.get_legend().get_texts()) == conditions
    else:  # one marker for all: colour says the explore fraction
        assert len(markers) == 1


def test_heatmap_labels_fractions_that_round_alike_apart():
    fig = plots.explore_heatmap(explore_grid([0.0, 0.002, 0.5, 0.75], [0.05, 0.1]), "test_acc")

    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["0%", "0.2%", "50%", "75%"]


def test_sharpness_scatter_shows_baselines_in_grey():
    """A baseline schedule has no explore fraction to colour by: its dots are drawn grey and
    named in the legend, not left out of the picture."""
    knee = explore_grid([0.5], [0.05])
    cosine = knee.assign(schedule="cosine", explore_fraction=np.nan)

    fig = plots.sharpness_accuracy_scatter(combined(knee, cosine))

    ax = fig.axes[0]
    (collection,) = [c for c in dots(ax) if len(c.get_offsets())]
    collection.update_scalarmappable()  # explore fractions -> colours, as drawing does
    colours = collection.get_facecolors()
    assert len(colours) == len(knee) * 2
    assert (colours[:, 3] > 0).all()  # none transparent
    greys = np.isclose(colours[:, 0], colours[:, 1]) & np.isclose(colours[:, 1], colours[:, 2])
    assert greys.sum() == len(cosine)
    assert "grey: baseline schedules" in [t.get_text() for t in ax.get_legend().get_texts()]


def with_loss(spread: float):
    """explore_grid with a val_loss of 0.2 + spread x explore fraction + 0.001 seed: from
    0.2 to 0.2 + spread (+ 0.002) over the fractions."""
    frame = explore_grid(FRACTIONS, [0.05, 0.1])
    return frame.assign(val_loss=0.2 + spread * frame["explore_fraction"] + 0.001 * frame["seed"])


@pytest.mark.parametrize(
    ("spread", "scale", "ylabel"),
    [
        (1.0, "log", "val_loss (lower is better), log scale"),  # 0.2 to 1.2: six times
        (0.2, "linear", "val_loss (lower is better)"),  # 0.2 to 0.4: twice
    ],
)
def test_a_loss_spanning_far_is_drawn_on_a_log_scale(spread, scale, ylabel):
    fig = plots.explore_curve(with_loss(spread), "val_loss")

    ax = fig.axes[0]
    assert ax.get_yscale() == scale
    assert ax.get_ylabel() == ylabel
    assert ax.get_title().startswith("val_loss vs explore fraction")
    seeds = np.concatenate([c.get_offsets()[:, 1] for c in dots(ax)])
    assert sorted(seeds) == pytest.approx(sorted(with_loss(spread)["val_loss"]))  # not x100


def test_an_accuracy_is_drawn_in_percent_on_a_linear_scale():
    fig = plots.explore_curve(explore_grid(FRACTIONS, [0.05]), "test_acc")

    assert fig.axes[0].get_yscale() == "linear"
    assert fig.axes[0].get_ylabel() == "test accuracy (%)"


def test_a_loss_heatmap_names_the_loss_and_writes_its_means_as_logged():
    fig = plots.explore_heatmap(with_loss(1.0), "val_loss")

    ax, colorbar = fig.axes
    assert colorbar.get_ylabel() == "mean val_loss (lower is better)"
    assert ax.images[0].norm.__class__.__name__ == "LogNorm"  # six times from best to worst
    # Seeds 0-2 average to 0.001 above 0.2 + f: 0% -> 0.2010, 100% -> 1.201.
    texts = [t.get_text() for t in ax.texts]
    assert texts[:5] == ["0.2010", "0.4510", "0.7010", "0.9510", "1.201"]
    assert ax.get_title() == "Mean val_loss by explore fraction and peak LR"


def test_the_search_landscape_says_which_metric_chose_its_best_point():
    points = pd.DataFrame(
        {"explore_fraction": [0.2, 0.5], "peak_lr": [0.05, 0.1], "mean": [0.97, 0.98]}
    )

    fig = plots.search_landscape(points, selected_by="val_acc")

    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["best point (by val_acc)"]
    assert fig.axes[1].get_ylabel() == "mean test accuracy (%)"
