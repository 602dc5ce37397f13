"""analysis/views.py: the report's tables as display frames, cell by cell from given values
(no statistics here: the numbers in are the numbers shown, scaled and rounded)."""

import numpy as np
import pandas as pd

from analysis.views import CI_CELLS, cells, difference_view, headed, verdict_view
from analysis.wording import Unit


def summary_row(fraction, peak_lr, n, mean, half, diverged=0) -> dict:
    return {
        "peak_lr": peak_lr,
        "explore_fraction": fraction,
        "n": n,
        "mean": mean,
        "ci_high": mean + half,
        "diverged": diverged,
    }


def test_cells_are_mean_plus_minus_half_width_with_n_one_row_per_fraction():
    summary = pd.DataFrame(
        [
            summary_row(0.0, 0.05, 3, 0.95, 0.005),
            summary_row(0.002, 0.05, 3, 0.96, 0.004, diverged=1),  # rounds like 0% at 1%
            summary_row(0.5, 0.05, 1, 0.98, np.nan),  # one seed: no interval
            summary_row(0.0, 0.1, 0, np.nan, np.nan),
            summary_row(0.002, 0.1, 2, 0.9712, 0.0123),
            summary_row(0.5, 0.1, 3, 0.97, 0.001),
        ]
    )

    table = cells(summary, ["peak_lr"], Unit("test_acc").value)

    header = f"explore (cells: {CI_CELLS})"
    assert table.columns.tolist() == [header, "peak LR 0.05", "peak LR 0.1"]
    assert table[header].tolist() == ["0%", "0.2%", "50%"]
    assert table["peak LR 0.05"].tolist() == [
        "95.00 ± 0.50 (n=3)",
        "96.00 ± 0.40 (n=3, 1 diverged)",
        "98.00 (n=1)",
    ]
    assert table["peak LR 0.1"].tolist() == [
        "no usable seeds",
        "97.12 ± 1.23 (n=2)",
        "97.00 ± 0.10 (n=3)",
    ]


def test_a_difference_view_shows_means_in_percent_and_the_difference_with_its_interval():
    table = pd.DataFrame(
        {
            "schedule": ["knee 50%", "cosine"],
            "peak_lr": [0.1, 0.1],
            "n": [4, 1],
            "mean": [0.9805, 0.9755],
            "std": [0.0021, np.nan],
            "knee_ahead": [np.nan, 0.005],
            "knee_ahead_low": [np.nan, 0.0038],
            "knee_ahead_high": [np.nan, 0.0062],
        }
    )

    view = difference_view(table, "knee_ahead")

    assert view.columns.tolist() == [
        "schedule",
        "peak LR",
        "test accuracy (%): mean ± std (n)",
        "Knee ahead by (points)",
    ]
    assert view["test accuracy (%): mean ± std (n)"].tolist() == [
        "98.05 ± 0.21 (n=4)",
        "97.55 (n=1)",  # one seed: no spread to show
    ]
    assert view["Knee ahead by (points)"].tolist() == ["", "+0.50 (+0.38 to +0.62)"]


def test_headed_names_the_condition_columns_in_words():
    view = headed(pd.DataFrame({"peak_lr": [0.1], "warmup_fraction": [0.1], "n": [3]}), ["peak_lr"])

    assert view.columns.tolist() == ["peak LR", "warmup_fraction", "n"]


LOSS = Unit("val_loss", "min")


def test_a_loss_is_shown_as_logged_to_four_significant_digits_never_in_percent():
    summary = pd.DataFrame(
        [
            summary_row(0.0, 0.05, 3, 0.41236, 0.0123),
            summary_row(0.5, 0.05, 3, 0.9, 0.00456),
        ]
    )

    table = cells(summary, ["peak_lr"], LOSS.value)

    assert table["peak LR 0.05"].tolist() == ["0.4124 ± 0.01230 (n=3)", "0.9000 ± 0.004560 (n=3)"]


def test_a_loss_difference_view_names_the_loss_and_its_direction():
    table = pd.DataFrame(
        {
            "schedule": ["knee 50%", "cosine"],
            "peak_lr": [0.1, 0.1],
            "n": [4, 4],
            "mean": [0.3, 0.31],
            "std": [0.002, 0.0025],
            "knee_ahead": [np.nan, 0.01],
            "knee_ahead_low": [np.nan, 0.008],
            "knee_ahead_high": [np.nan, 0.012],
        }
    )

    view = difference_view(table, "knee_ahead", LOSS)

    assert view.columns.tolist() == [
        "schedule",
        "peak LR",
        "val_loss (lower is better): mean ± std (n)",
        "Knee ahead by (val_loss)",
    ]
    assert view.iloc[:, 2].tolist() == ["0.3000 ± 0.002000 (n=4)", "0.3100 ± 0.002500 (n=4)"]
    assert view["Knee ahead by (val_loss)"].tolist() == ["", "+0.01000 (+0.008000 to +0.01200)"]


def test_the_verdict_view_heads_its_means_and_gap_in_the_metric():
    table = pd.DataFrame(
        {
            "peak_lr": [0.1],
            "versus": [0.25],
            "versus_mean": [0.30123],
            "fraction_mean": [0.35],
            "gap": [0.04877],
            "gap_low": [0.04],
            "gap_high": [0.05],
            "confidence": [0.9],
            "test": ["paired t"],
            "decision": ["not robust"],
            "reason": ["interval above the margin"],
            "seeds_needed": [pd.NA],
        }
    )

    view = verdict_view(table, ["peak_lr"], LOSS)

    row = view.iloc[0]
    assert row["its mean (val_loss)"] == 0.3012
    assert row["judged mean (val_loss)"] == 0.35
    assert row["ahead of it (val_loss)"] == 0.04877
    assert row["interval"] == "90%: 0.04000 to 0.05000"
    assert not [c for c in view if "%" in c or "points" in c]
