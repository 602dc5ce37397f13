"""The report's figures on frames built by hand: every usable trial drawn, conditions kept near
their own explore fraction, legends that leave the data visible, labels that tell fractions
apart; learning curves whose medians and bands are known by construction, distributions that
draw exactly the usable seeds."""

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba

from analysis import curves, plots
from analysis.distributions import JITTER, distributions
from analysis.panels import PANEL_COLUMNS, PANELS_MAX
from analysis.wording import percent

PARAMS = ["explore_fraction", "peak_lr", "seed", "schedule", "epochs"]


def runs(fractions, peak_lrs, epochs=(20,), seeds=(0, 1, 2)) -> pd.DataFrame:
    """One finished Knee trial per combination; accuracy and sharpness vary with every axis."""
    rows = [
        {
            "explore_fraction": f,
            "peak_lr": lr,
            "epochs": e,
            "seed": s,
            "test_acc": 0.9 + 0.01 * f + 0.001 * s + 0.0001 * i,
            "sharpness": 1.0 + f + 0.1 * s,
        }
        for i, (f, lr, e, s) in enumerate(itertools.product(fractions, peak_lrs, epochs, seeds))
    ]
    frame = pd.DataFrame(rows).assign(status="FINISHED", diverged=False, schedule="knee")
    frame.attrs["params"] = PARAMS
    return frame


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
    fig = plots.explore_curve(runs(FRACTIONS, **MANY), "test_acc")

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
    fig = plots.explore_curve(runs([0.0, 0.5, 1.0], lrs, seeds=(0, 1)), "test_acc")
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
    frame = runs([0.25, 0.5], lrs)  # 2 fractions x 3 seeds per condition
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
    fig = plots.explore_heatmap(runs([0.0, 0.002, 0.5, 0.75], [0.05, 0.1]), "test_acc")

    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["0%", "0.2%", "50%", "75%"]


@pytest.mark.parametrize(
    ("fraction", "label"),
    [(0.0, "0%"), (0.002, "0.2%"), (0.5, "50%"), (0.975, "97.5%"), (1 / 3, "33.33%")],
)
def test_percent_keeps_the_digits_that_matter(fraction, label):
    assert percent(fraction) == label


def test_sharpness_scatter_shows_baselines_in_grey():
    """A baseline schedule has no explore fraction to colour by: its dots are drawn grey and
    named in the legend, not left out of the picture."""
    knee = runs([0.5], [0.05])
    cosine = knee.assign(schedule="cosine", explore_fraction=np.nan)

    fig = plots.sharpness_accuracy_scatter(pd.concat([knee, cosine], ignore_index=True))

    ax = fig.axes[0]
    (collection,) = [c for c in dots(ax) if len(c.get_offsets())]
    collection.update_scalarmappable()  # explore fractions -> colours, as drawing does
    colours = collection.get_facecolors()
    assert len(colours) == len(knee) * 2
    assert (colours[:, 3] > 0).all()  # none transparent
    greys = np.isclose(colours[:, 0], colours[:, 1]) & np.isclose(colours[:, 1], colours[:, 2])
    assert greys.sum() == len(cosine)
    assert "grey: baseline schedules" in [t.get_text() for t in ax.get_legend().get_texts()]


# Learning curves and distributions over seeds: a history built so that each epoch's median and
# quartiles over the seeds are known by construction.

EPOCHS = [1, 2, 3, 4]
SEED_OFFSETS = [0.0, 0.01, 0.02, 0.03]  # seeds 0-3: median 0.015, quartiles 0.0075 and 0.0225


def accuracy_at(fraction: float, epoch: int, seed: int) -> float:
    return 0.5 + 0.1 * epoch + 0.05 * fraction + SEED_OFFSETS[seed % len(SEED_OFFSETS)]


def lr_at(fraction: float, peak_lr: float, epoch: int) -> float:
    """A Knee schedule over 4 epochs: the peak for fraction x 4 epochs, then linear to 0."""
    explore = fraction * len(EPOCHS)
    return peak_lr if epoch <= explore else peak_lr * (4 - epoch) / (4 - explore)


def history_of(frame: pd.DataFrame, bad: set) -> pd.DataFrame:
    """load_history's frame for ``frame``'s trials; the trials in ``bad`` get wild values that
    would move every median and quartile if they were counted."""
    rows = [
        {
            "run_id": t.run_id,
            "explore_fraction": t.explore_fraction,
            "peak_lr": t.peak_lr,
            "seed": t.seed,
            "schedule": t.schedule,
            "epoch": e,
            "test_acc": 0.0 if t.run_id in bad else accuracy_at(t.explore_fraction, e, t.seed),
            "train_loss": 100.0 if t.run_id in bad else (1 + t.seed) / e,
            "lr": 9.0 if t.run_id in bad else lr_at(t.explore_fraction, t.peak_lr, e),
        }
        for t in frame.itertuples()
        for e in EPOCHS
    ]
    return pd.DataFrame(rows)


def curve_study() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fractions 25% and 50% at peak LRs 0.05 and 0.1, seeds 0-3 finished; at each fraction
    and peak LR a fifth seed that diverged and a sixth that failed."""
    frame = runs([0.25, 0.5], [0.05, 0.1], seeds=(0, 1, 2, 3, 4, 5))
    frame["run_id"] = [f"run{i}" for i in range(len(frame))]
    frame.loc[frame["seed"] == 4, "diverged"] = True
    frame.loc[frame["seed"] == 5, "status"] = "FAILED"
    bad = set(frame.loc[frame["seed"] >= 4, "run_id"])
    return frame, history_of(frame, bad)


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
    frame, history = curve_study()

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
            schedule = [lr_at(fraction, peak_lr, e) for e in EPOCHS]
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
    frame, history = curve_study()
    cosine = runs([np.nan], [0.1], seeds=(0, 1, 2)).assign(schedule="cosine")
    cosine["run_id"] = [f"cos{i}" for i in range(len(cosine))]
    cosine_history = history_of(cosine, set()).assign(
        test_acc=lambda h: 0.7 + 0.01 * h["seed"], lr=lambda h: 0.1 / h["epoch"]
    )
    both = pd.concat([frame, cosine], ignore_index=True)
    both.attrs["params"] = PARAMS

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
    frame = runs([0.5], [0.01 * (i + 1) for i in range(lrs)], seeds=(0, 1))
    frame["run_id"] = [f"run{i}" for i in range(len(frame))]

    fig = curves.learning_curves(history_of(frame, set()), frame)

    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 3 * drawn
    assert len({ax.get_subplotspec().colspan.start for ax in panels}) == PANEL_COLUMNS
    note = f"the first {PANELS_MAX} of {lrs} conditions"
    assert (note in fig.get_suptitle()) == (lrs > PANELS_MAX)


def test_distributions_draw_exactly_the_usable_seeds():
    frame, _ = curve_study()
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


def test_history_is_fetched_for_the_finished_trials_of_the_conditions_drawn():
    frame, _ = curve_study()  # seeds 0-3 finished, 4 diverged, 5 failed
    many = runs([0.5], [0.001 * (i + 1) for i in range(PANELS_MAX + 2)], seeds=(0,))

    assert set(curves.needed(frame)["seed"]) == {0, 1, 2, 3}
    assert len(curves.needed(frame)) == 16
    lrs = set(curves.needed(many)["peak_lr"])  # the figure draws the first PANELS_MAX only
    assert lrs == {0.001 * (i + 1) for i in range(PANELS_MAX)}
    assert curves.needed(frame.assign(search="optuna")).empty  # a search: no learning curves
    assert curves.needed(frame.assign(schedule="cosine", explore_fraction=np.nan)).empty


@pytest.mark.parametrize(("budget", "seeds"), [(8, 3), (20, 5), (40, 10)])
def test_past_its_budget_each_line_draws_its_lowest_seeds_and_says_so(budget, seeds):
    frame = runs([0.25, 0.5], [0.05, 0.1], seeds=range(10))  # 4 lines of 10 finished seeds
    frame["run_id"] = [f"run{i}" for i in range(len(frame))]

    picked = curves.needed(frame, budget=budget)

    # At least 3 a line (a budget of 8 gives each of the 4 lines 2: too few for quartiles).
    assert len(picked) == 4 * seeds
    assert (picked.groupby(["peak_lr", "explore_fraction"])["seed"].max() == seeds - 1).all()
    fig = curves.learning_curves(history_of(picked, set()), frame)
    (legend,) = fig.legends
    n = f"n={seeds}" if seeds == 10 else f"n={seeds} of 10"
    assert [t.get_text() for t in legend.get_texts()] == [
        f"25% explore ({n})",
        f"50% explore ({n})",
    ]
