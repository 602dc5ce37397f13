"""analysis/wording.py: explore fractions, params, conditions and gaps in the report's words."""

import math

import pandas as pd
import pytest

from analysis.wording import Unit, amount, describe, label, percent


@pytest.mark.parametrize(
    ("fraction", "label_"),
    [(0.0, "0%"), (0.002, "0.2%"), (0.5, "50%"), (0.975, "97.5%"), (1 / 3, "33.33%")],
)
def test_percent_keeps_the_digits_that_matter(fraction, label_):
    assert percent(fraction) == label_


@pytest.mark.parametrize("missing", [math.nan, math.inf])
def test_a_fraction_that_is_not_one_is_said_as_nothing(missing):
    """A baseline's explore fraction is NaN: no "nan%" in a table."""
    assert percent(missing) == ""


def test_params_and_conditions_in_words():
    assert label("peak_lr") == "peak LR"
    assert label("warmup_fraction") == "warmup fraction"
    assert describe(["peak_lr", "decay"], [0.05, "cosine"]) == "peak LR 0.05, decay cosine"
    assert describe(["peak_lr", "epochs"], [0.1, 20]) == "peak LR 0.1, epochs 20"


@pytest.mark.parametrize(
    ("value", "metric", "unit", "said"),
    [
        (0.002, "test_acc", " points", "0.20 points"),  # accuracies in points
        (-0.0101, "test_acc", " points", "-1.01 points"),
        (-0.00001, "test_acc", " points", "0.00 points"),  # never "-0.00"
        (0.000314, "test_acc", "", "0.03"),
        (1.234567, "sharpness", " points", "1.235"),  # anything else as it is, 4 digits
        (0.1, "test_loss", " points", "0.1"),
    ],
)
def test_amounts(value, metric, unit, said):
    assert amount(value, metric, unit) == said


@pytest.mark.parametrize(
    ("metric", "mode", "name", "heading"),
    [
        ("test_acc", "", "test accuracy", "test accuracy (%)"),
        ("val_acc", "", "validation accuracy", "validation accuracy (%)"),
        ("train_acc", "", "training accuracy", "training accuracy (%)"),
        ("test_acc", "min", "test accuracy", "test accuracy (%, lower is better)"),
        ("val_loss", "", "val_loss", "val_loss (lower is better)"),
        ("perplexity", "", "perplexity", "perplexity (lower is better)"),
        ("hessian_trace", "", "hessian_trace", "hessian_trace (higher is better)"),
        ("val_loss", "max", "val_loss", "val_loss (higher is better)"),
    ],
)
def test_a_unit_names_its_metric_and_says_the_direction_past_an_accuracy(
    metric, mode, name, heading
):
    unit = Unit(metric, mode)

    assert unit.name == name
    assert unit.label == heading


def test_accuracies_are_shown_in_percent_and_points():
    unit = Unit("test_acc")

    assert (unit.percent, unit.scale, unit.short, unit.points) == (True, 100.0, "%", "points")
    assert unit.value(0.98333) == "98.33"
    assert unit.value(0.98333, 3) == "98.333"
    assert unit.value(-0.00001) == "0.00"  # never "-0.00"
    assert unit.gap(0.005) == "+0.50"
    assert unit.gap(-0.0101) == "-1.01"
    assert unit.with_unit(0.9833) == "98.33%"
    assert unit.said(0.002) == "0.20 points"
    assert unit.column(pd.Series([0.98333, math.nan])).tolist() == pytest.approx(
        [98.33, math.nan], nan_ok=True
    )


def test_anything_else_is_shown_as_logged_to_four_significant_digits():
    unit = Unit("val_loss")

    assert (unit.percent, unit.scale, unit.short, unit.points) == (
        False,
        1.0,
        "val_loss",
        "val_loss",
    )
    assert unit.value(0.41236) == "0.4124"
    assert unit.value(0.9) == "0.9000"  # zeros kept: a column's values line up
    assert unit.value(1234.4) == "1234"  # no bare trailing point
    assert unit.gap(-0.0123) == "-0.01230"
    assert unit.gap(0.5) == "+0.5000"
    assert unit.with_unit(0.4123) == "0.4123"  # no % sign
    assert unit.said(0.01) == "0.01 in val_loss"
    assert unit.column(pd.Series([0.123456])).tolist() == [0.1235]
    assert unit.opening == "val_loss"  # a metric's own name is never capitalised
    assert Unit("test_acc").opening == "Test accuracy"
