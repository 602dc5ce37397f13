"""analysis/comparisons.py: schedule, budget, decay and search tables against differences built
into the data (factories.arm: each seed's effect, the first four summing to 0.002, is shared
by every arm, so pairing removes it)."""

import pandas as pd
import pytest
from factories import arm, runs_frame, split_search

from analysis.comparisons import (
    budget_table,
    decay_table,
    is_search,
    schedule_table,
    search_summary,
)
from analysis.policy import Policy


def arms(*each: list[dict]) -> pd.DataFrame:
    return runs_frame([t for trials in each for t in trials])


def test_schedule_table_gives_how_far_knee_is_ahead_of_each_baseline():
    means = {"knee": 0.980, "cosine": 0.975, "linear": 0.981}
    runs = arms(
        *(arm(s, acc) for s, acc in means.items()),
        arm("knee", 0.9, explore_fraction=0.0),  # not the 50% arm
    )

    table = schedule_table(runs).set_index("schedule")

    assert set(table.index) == {"knee 50%", "cosine", "linear"}
    assert table.loc["knee 50%", "mean"] == pytest.approx(0.980 + 0.002 / 4)
    assert table.loc["cosine", "knee_ahead"] == pytest.approx(0.005)
    assert table.loc["linear", "knee_ahead"] == pytest.approx(-0.001)
    # Same seeds, the same effect per seed: the paired differences have no spread of their own,
    # so the sd is the data's resolution, 0.001: 0.005 +- t(0.95, df=3) 2.353363 * 0.001 / 2.
    half = 2.353363 * 0.001 / 2
    assert table.loc["cosine", "knee_ahead_low"] == pytest.approx(0.005 - half, rel=1e-5)
    assert table.loc["cosine", "knee_ahead_high"] == pytest.approx(0.005 + half, rel=1e-5)
    assert table.loc["cosine", "knee_ahead_test"] == "paired t"
    assert (table["n"] == 4).all()


def test_a_baseline_repeated_over_explore_fractions_counts_once_per_seed():
    runs = arms(arm("knee", 0.98), *(arm("cosine", 0.97, explore_fraction=f) for f in (0, 0.5, 1)))

    table = schedule_table(runs).set_index("schedule")

    assert table.loc["cosine", "n"] == 4


def test_knee_alone_gives_no_schedule_table_a_baseline_alone_its_row():
    assert schedule_table(arms(arm("knee", 0.98))).empty
    alone = schedule_table(arms(arm("cosine", 0.97)))
    assert alone["schedule"].tolist() == ["cosine"]
    assert alone["n"].tolist() == [4]
    assert alone["mean"].tolist() == pytest.approx([0.9705])  # 0.97 + mean seed effect 0.0005


def test_budget_table_compares_short_knee_with_full_baselines():
    runs = arms(
        arm("knee", 0.9795, epochs=10),
        arm("knee", 0.981, epochs=20),
        *(arm("cosine", 0.980, epochs=e) for e in (10, 20)),
        arm("linear", 0.985, epochs=20),
    )

    table = budget_table(runs, Policy(margin=0.002))
    short = table[table["knee_epochs"] == 10].set_index("baseline")

    assert set(table["baseline_epochs"]) == {20}  # baselines at the full budget only
    # Resolution 0.0005: each interval is the difference +- 2.353363 * 0.0005 / 2.
    assert short.loc["cosine", "knee_ahead"] == pytest.approx(-0.0005)
    assert short.loc["cosine", "knee_ahead_low"] == pytest.approx(-0.0005 - 0.000588, abs=1e-6)
    assert short.loc["cosine", "decision"] == "matches"  # above -0.2 points, the margin
    assert short.loc["linear", "knee_ahead"] == pytest.approx(-0.0055)
    assert short.loc["linear", "decision"] == "falls short"
    assert len(table) == 4  # knee at 10 and 20 epochs x cosine and linear


def test_budget_table_needs_a_swept_budget():
    assert budget_table(arms(*(arm(s, 0.98, epochs=20) for s in ("knee", "cosine")))).empty


def test_decay_table_against_linear():
    shapes = {"linear": 0.980, "cosine": 0.981, "1-sqrt": 0.978}

    table = decay_table(arms(*(arm("knee", a, decay=d) for d, a in shapes.items())))
    table = table.set_index("decay")

    assert table.loc["cosine", "ahead_of_linear"] == pytest.approx(0.001)
    assert table.loc["1-sqrt", "ahead_of_linear"] == pytest.approx(-0.002)
    assert pd.isna(table.loc["linear"].get("ahead_of_linear"))
    assert (table["n"] == 4).all()


def peaked(points) -> pd.DataFrame:
    """Accuracy peaks at explore 0.6: 0.98 - 0.05 (f - 0.6)^2, the same at every peak LR."""
    return arms(
        *(
            arm("knee", 0.98 - 0.05 * (f - 0.6) ** 2, explore_fraction=f, peak_lr=lr)
            for f, lr in points
        )
    )


def test_search_summary_finds_the_best_region_and_judges_the_point_near_half():
    points = [(0.05, 0.1), (0.2, 0.05), (0.45, 0.08), (0.57, 0.12), (0.62, 0.2), (0.9, 0.03)]
    runs = peaked([*points, (0.3, 0.07), (0.75, 0.09)]).assign(search="optuna")

    table, summary = search_summary(runs, Policy(window=0.1, margin=0.002))

    assert is_search(runs)
    assert summary["points"] == 8
    assert summary["best_explore"] == 0.62
    assert summary["region_points"] == 2
    assert summary["region_explore"] == (0.57, 0.62)
    assert summary["region_peak_lr"] == (0.12, 0.2)
    assert summary["near_explore"] == 0.57  # the best point within 0.1 of 50%
    assert summary["outside_explore"] == 0.62  # the best point beyond it
    assert summary["gap"] == pytest.approx(0.05 * (0.03**2 - 0.02**2))  # outside's advantage
    assert summary["decision"] == "robust"
    assert table["mean"].is_monotonic_decreasing


def test_a_grid_is_not_a_search():
    runs = arms(
        *(
            arm("knee", 0.98, explore_fraction=f, peak_lr=lr)
            for f in (0.0, 0.5)
            for lr in (0.05, 0.1, 0.2, 0.4)
        )
    )
    assert not is_search(runs)
    assert not is_search(runs.drop(columns="search"))  # a frame from before the search tag


def test_one_fraction_at_many_peak_lrs_is_still_a_grid():
    """Only the trials' search tag makes a search: this grid looks like one by shape."""
    runs = peaked([(0.5, lr) for lr in (0.05, 0.1, 0.2, 0.4)])
    assert not is_search(runs.assign(search="grid"))


def test_tables_follow_the_metric_direction():
    """A loss: lower is better, so Knee 0.1 below cosine is 0.1 *ahead* of it."""
    rows = [
        {**row, "test_loss": 1.0 - (0.1 if row["schedule"] == "knee" else 0.0)}
        for row in arm("knee", 0.98, seeds=10) + arm("cosine", 0.98, seeds=10)
    ]
    table = schedule_table(runs_frame(rows), Policy(metric="test_loss", margin=0.01))

    assert table.set_index("schedule").loc["cosine", "knee_ahead"] == pytest.approx(0.1)


def test_a_search_chooses_its_points_by_validation_accuracy_and_reports_test_accuracy():
    """factories.split_search: validation accuracy's best points are 20% (best, beyond 50% +-
    10 points) and 45% (within), test accuracy's 62% and 57%."""
    table, summary = search_summary(split_search(), Policy(window=0.1, margin=0.002))

    assert summary["selected_by"] == "val_acc"
    assert (summary["best_explore"], summary["best_peak_lr"]) == (0.2, 0.05)
    assert summary["region_explore"] == (0.2, 0.2)  # the top quarter: one point of six
    assert summary["near_explore"] == 0.45
    assert summary["outside_explore"] == 0.2
    # The numbers reported stay test accuracy's: 0.98 - 0.05 * 0.4^2 + 0.0005 (the mean of
    # the first four seed effects) at 20%, and the gap test(20%) - test(45%).
    assert summary["best_mean"] == pytest.approx(0.9725)
    assert summary["near_mean"] == pytest.approx(0.98 - 0.05 * 0.15**2 + 0.0005)
    assert summary["gap"] == pytest.approx(0.05 * (0.15**2 - 0.4**2))
    assert summary["decision"] == "robust"  # 45% is 0.69 points *ahead*: well inside the margin
    assert table["explore_fraction"].tolist() == [0.2, 0.45, 0.05, 0.57, 0.62, 0.9]
    assert table.loc[0, "selection_mean"] == pytest.approx(0.97 - 0.05 * 0.1**2 + 0.0005)
    assert table.loc[0, "mean"] == pytest.approx(0.9725)


@pytest.mark.parametrize("missing", ["dropped", "all NaN"])
def test_without_a_validation_metric_the_search_chooses_by_the_objective(missing):
    runs = split_search(val_acc=missing == "all NaN")
    if missing == "all NaN":
        runs["val_acc"] = float("nan")

    table, summary = search_summary(runs, Policy(window=0.1))

    assert summary["selected_by"] == "test_acc"
    assert (summary["best_explore"], summary["near_explore"]) == (0.62, 0.57)
    assert summary["outside_explore"] == 0.62
    assert table["mean"].is_monotonic_decreasing


def test_a_loss_search_chooses_the_lowest_validation_loss():
    """test_loss chosen on val_loss: the lowest mean is the best point."""
    runs = split_search()
    runs["test_loss"] = 1 - runs["test_acc"]
    runs["val_loss"] = 1 - runs["val_acc"]

    _, summary = search_summary(runs, Policy(metric="test_loss", window=0.1))

    assert summary["selected_by"] == "val_loss"
    assert summary["best_explore"] == 0.2
    assert summary["best_mean"] == pytest.approx(1 - 0.9725)


def test_budget_table_counts_a_budget_in_steps_in_steps():
    runs = arms(
        arm("knee", 0.9795, steps=500),
        arm("knee", 0.981, steps=1000),
        arm("cosine", 0.980, steps=1000),
    )

    table = budget_table(runs, Policy(margin=0.002))

    assert table["knee_steps"].tolist() == [500, 1000]
    assert set(table["baseline_steps"]) == {1000}
    assert table["knee_ahead"].tolist() == pytest.approx([-0.0005, 0.001])
    assert "knee_epochs" not in table
