"""analysis/wording.py: explore fractions, params, conditions and gaps in the report's words."""

import math

import pytest

from analysis.wording import amount, describe, label, percent


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
