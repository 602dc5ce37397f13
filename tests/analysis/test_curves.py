"""analysis/curves.py: learning curves whose medians and bands are known by construction
(factories.curve_runs and history_of: each epoch's median and quartiles over seeds 0-3 are
worked out below), baselines drawn apart, many conditions wrapped, and the history fetched for
exactly the trials drawn."""

import numpy as np
import pandas as pd
import pytest
from factories import CURVE_EPOCHS, combined, curve_runs, explore_grid, history_of, knee_lr
from matplotlib.colors import to_rgba

from analysis import curves, plots
from analysis.panels import PANEL_COLUMNS, PANELS_MAX

EPOCHS = list(CURVE_EPOCHS)


def curve_lines(ax) -> dict:
    """The lines of a panel, by colour (each explore fraction has its own)."""
    return {tuple(np.round(to_rgba(line.get_color()), 6)): line for line in ax.get_lines()}


def colour(fraction: float) -> tuple:
    return tuple(np.round(plots.EXPLORE_COLOURS(fraction), 6))


def band(ax, fraction: float) -> tuple[dict, dict]:
    """The lowest and the highest y of the fraction's band at each epoch, from its vertices."""
    (poly,) = [
        c
        for c in ax.collections
        if tuple(np.round(c.get_facecolor()[0][:3], 6)) == colour(fraction)[:3]
    ]
    vertices = poly.get_paths()[0].vertices
    low, high = {}, {}
    for x, y in vertices:
        low[x], high[x] = min(y, low.get(x, y)), max(y, high.get(x, y))
    return low, high


def test_learning_curves_draw_the_median_and_quartiles_of_finished_seeds_only():
    frame, history = curve_runs()

    fig = curves.learning_curves(history, frame)

    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 3 * 2  # accuracy, loss and LR rows; one column per peak LR
    titles = [ax.get_title() for ax in panels if ax.get_title()]
    assert titles == ["peak LR 0.05", "peak LR 0.1"]
    columns = [panels[0::2], panels[1::2]]  # row-major grid: column 0, then column 1
    for (accuracy, loss, lr), peak_lr in zip(columns, [0.05, 0.1], strict=True):
        for ax in (accuracy, loss, lr):
            assert len(ax.get_lines()) == 2  # one per explore fraction
        for fraction in (0.25, 0.5):
            line = curve_lines(accuracy)[colour(fraction)]
            assert list(line.get_xdata()) == EPOCHS
            expected = [(0.5 + 0.1 * e + 0.05 * fraction + 0.015) * 100 for e in EPOCHS]
            np.testing.assert_allclose(line.get_ydata(), expected)
            low, high = band(accuracy, fraction)
            for e, middle in zip(EPOCHS, expected, strict=True):
                assert low[e] == pytest.approx(middle - 0.75)  # 0.0075 below, in percent
                assert high[e] == pytest.approx(middle + 0.75)
            # Loss (1 + seed) / epoch over seeds 0-3: median 2.5 / epoch, quartiles 1.75, 3.25.
            line = curve_lines(loss)[colour(fraction)]
            np.testing.assert_allclose(line.get_ydata(), [2.5 / e for e in EPOCHS])
            low, high = band(loss, fraction)
            assert [low[e] for e in EPOCHS] == pytest.approx([1.75 / e for e in EPOCHS])
            assert [high[e] for e in EPOCHS] == pytest.approx([3.25 / e for e in EPOCHS])
            schedule = [knee_lr(fraction, peak_lr, e) for e in EPOCHS]
            np.testing.assert_allclose(curve_lines(lr)[colour(fraction)].get_ydata(), schedule)
        assert not lr.collections  # one schedule per fraction: no band
        assert loss.get_yscale() == "log"
    # The judged fraction (50%) is the thicker line; the legend counts the seeds drawn.
    widths = {f: curve_lines(panels[0])[colour(f)].get_linewidth() for f in (0.25, 0.5)}
    assert widths[0.5] > widths[0.25]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "25% explore (n=4)",
        "50% explore (n=4)",
    ]
    assert "8 diverged or\nunfinished left out" in legend.get_title().get_text()


def test_learning_curves_draw_baselines_grey_and_dashed_in_their_condition():
    frame, history = curve_runs()
    cosine = explore_grid([np.nan], [0.1], seeds=(0, 1, 2)).assign(schedule="cosine")
    cosine["run_id"] = [f"cos{i}" for i in range(len(cosine))]
    cosine_history = history_of(cosine).assign(
        test_acc=lambda h: 0.7 + 0.01 * h["seed"], lr=lambda h: 0.1 / h["epoch"]
    )
    both = combined(frame, cosine)

    fig = curves.learning_curves(pd.concat([history, cosine_history]), both)

    panels = [ax for ax in fig.axes if ax.get_visible()]
    grey = tuple(np.round(plots.EXPLORE_COLOURS.get_bad(), 6))
    assert grey not in curve_lines(panels[0])  # peak LR 0.05: no cosine trial there
    accuracy, lr = curve_lines(panels[1])[grey], curve_lines(panels[5])[grey]
    assert accuracy.get_linestyle() == "--"
    np.testing.assert_allclose(accuracy.get_ydata(), [71.0] * 4)  # seeds 0-2: median 0.71
    np.testing.assert_allclose(lr.get_ydata(), [0.1 / e for e in EPOCHS])
    (legend,) = fig.legends
    assert "cosine (n=3)" in [t.get_text() for t in legend.get_texts()]


@pytest.mark.parametrize(("lrs", "drawn"), [(6, 6), (20, PANELS_MAX)])
def test_learning_curves_wrap_many_conditions_and_say_when_some_are_left_out(lrs, drawn):
    frame = explore_grid([0.5], [0.01 * (i + 1) for i in range(lrs)], seeds=(0, 1))

    fig = curves.learning_curves(history_of(frame), frame)

    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 3 * drawn
    assert len({ax.get_subplotspec().colspan.start for ax in panels}) == PANEL_COLUMNS
    note = f"the first {PANELS_MAX} of {lrs} conditions"
    assert (note in fig.get_suptitle()) == (lrs > PANELS_MAX)


def test_history_is_fetched_for_the_finished_trials_of_the_conditions_drawn():
    frame, _ = curve_runs()  # seeds 0-3 finished, 4 diverged, 5 failed
    many = explore_grid([0.5], [0.001 * (i + 1) for i in range(PANELS_MAX + 2)], seeds=(0,))

    assert set(curves.needed(frame)["seed"]) == {0, 1, 2, 3}
    assert len(curves.needed(frame)) == 16
    lrs = set(curves.needed(many)["peak_lr"])  # the figure draws the first PANELS_MAX only
    assert lrs == {0.001 * (i + 1) for i in range(PANELS_MAX)}
    assert curves.needed(frame.assign(search="optuna")).empty  # a search: no learning curves
    assert curves.needed(frame.assign(schedule="cosine", explore_fraction=np.nan)).empty


@pytest.mark.parametrize(("budget", "seeds"), [(8, 3), (20, 5), (40, 10)])
def test_past_its_budget_each_line_draws_its_lowest_seeds_and_says_so(budget, seeds):
    frame = explore_grid([0.25, 0.5], [0.05, 0.1], seeds=range(10))  # 4 lines of 10 finished seeds

    picked = curves.needed(frame, budget=budget)

    # At least 3 a line (a budget of 8 gives each of the 4 lines 2: too few for quartiles).
    assert len(picked) == 4 * seeds
    assert (picked.groupby(["peak_lr", "explore_fraction"])["seed"].max() == seeds - 1).all()
    fig = curves.learning_curves(history_of(picked), frame)
    (legend,) = fig.legends
    n = f"n={seeds}" if seeds == 10 else f"n={seeds} of 10"
    assert [t.get_text() for t in legend.get_texts()] == [
        f"25% explore ({n})",
        f"50% explore ({n})",
    ]


def test_the_history_fetched_is_the_objectives():
    assert curves.history_metrics() == curves.METRICS == ("test_acc", "train_loss", "lr")
    assert curves.history_metrics("val_loss") == ("val_loss", "train_loss", "lr")
    assert curves.history_metrics("train_loss") == ("train_loss", "lr")


def test_learning_curves_draw_a_loss_objective_as_logged_on_a_log_scale():
    """val_loss (2 + seed) / epoch over seeds 0-3: median 3.5 / epoch, 5.0 down to 0.5 over
    the finished trials (ten times: a log scale)."""
    frame, history = curve_runs()
    history["val_loss"] = (2 + history["seed"]) / history["epoch"]

    fig = curves.learning_curves(history, frame, metric="val_loss", mode="min")

    panels = [ax for ax in fig.axes if ax.get_visible()]
    top = panels[0]
    assert top.get_ylabel() == "val_loss (lower is better), log scale"
    assert top.get_yscale() == "log"
    for fraction in (0.25, 0.5):
        line = curve_lines(top)[colour(fraction)]
        np.testing.assert_allclose(line.get_ydata(), [3.5 / e for e in EPOCHS])
    assert not [t for t in top.texts if "first epochs below" in t.get_text()]  # no zoom


def test_learning_curves_without_the_objectives_history_say_so():
    frame, history = curve_runs()

    fig = curves.learning_curves(history, frame, metric="val_loss")

    top = next(ax for ax in fig.axes if ax.get_visible())
    assert not top.get_lines()
    assert "no val_loss history" in [t.get_text() for t in top.texts]


def test_no_history_is_needed_without_a_usable_objective():
    frame, _ = curve_runs()

    assert curves.needed(frame, metric="val_loss").empty
    assert len(curves.needed(frame.assign(val_loss=0.3), metric="val_loss")) == 16
