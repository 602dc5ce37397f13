"""analysis/policy.py: the seeds the divergence rule needs, worked out from Wilson's bound by
hand; the policy's levels and direction; the settings it refuses.

With no seed diverging, the one-sided Wilson upper bound of 0 of n is z^2 / (n + z^2). At
alpha 5% (z^2 = 2.705543) it is 0.31078 at n = 6, 0.27876 at 7, 0.21294 at 10, 0.19741 at 11;
at alpha 2.5% (z^2 = 3.841459) 0.32441 at 8, 0.29915 at 9, 0.20388 at 15, 0.19361 at 16."""

import dataclasses

import pytest

from analysis.policy import Policy, lower_is_better
from analysis.wording import Unit


@pytest.mark.parametrize(
    ("settings", "seeds"),
    [
        ({}, 7),  # below a 30% excess first at 7 seeds
        ({"divergence_margin": 0.2}, 11),
        ({"alpha": 0.025}, 9),
        ({"alpha": 0.025, "divergence_margin": 0.2}, 16),
        ({"divergence_margin": 1.0}, 3),  # no bound reaches 100%: the fewest seeds, min_seeds
        ({"min_seeds": 10}, 10),  # never fewer than min_seeds
    ],
)
def test_seeds_for_divergence(settings, seeds):
    assert Policy(**settings).seeds_for_divergence() == seeds


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "best"}, "mode must be 'max' or 'min', got 'best'"),
        ({"margin": -0.001}, "margin must be >= 0, got -0.001"),
        ({"margin": float("nan")}, "margin must be >= 0, got nan"),
        ({"alpha": 0.0}, r"alpha must lie in \(0, 0.5\), got 0.0"),
        ({"alpha": 0.5}, r"alpha must lie in \(0, 0.5\), got 0.5"),
        ({"min_seeds": 1}, "min_seeds must be >= 2, got 1"),
    ],
)
def test_settings_a_verdict_cannot_be_decided_by_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        Policy(**settings)


def test_a_margin_of_zero_is_allowed():
    assert Policy(margin=0.0).margin == 0.0


@pytest.mark.parametrize(
    ("metric", "mode", "sign"),
    [
        ("test_acc", "max", 1),
        ("train_acc", "max", 1),
        ("sharpness", "min", -1),  # flatter minima generalise better, as in the paper
        ("test_loss", "min", -1),
        ("perplexity", "min", -1),
        ("hessian_trace", "max", 1),  # anything else: higher is better
    ],
)
def test_the_metric_sets_the_direction(metric, mode, sign):
    policy = Policy(metric=metric)

    assert (policy.mode, policy.sign) == (mode, sign)
    assert lower_is_better(metric) == (mode == "min")


def test_a_mode_given_wins_over_the_metric_name():
    assert Policy(metric="test_acc", mode="min").sign == -1


def test_levels_two_sided_from_alpha_and_bonferroni_over_the_study():
    policy = Policy()

    assert policy.confidence == pytest.approx(0.90)
    assert policy.strict_confidence(16) == pytest.approx(1 - 0.1 / 16)  # 0.99375
    assert policy.strict_confidence(1) == pytest.approx(0.90)
    assert policy.strict_confidence(0) == pytest.approx(0.90)  # no test: no correction
    assert Policy(alpha=0.025).confidence == pytest.approx(0.95)


def test_the_policy_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Policy().margin = 0.01  # type: ignore[misc]


@pytest.mark.parametrize(
    ("metric", "chosen"),
    [
        ("test_acc", "val_acc"),  # a test metric: chosen on its validation counterpart
        ("test_loss", "val_loss"),
        ("test_perplexity", "val_perplexity"),
        ("val_loss", "val_loss"),  # anything else: itself
        ("train_acc", "train_acc"),
        ("sharpness", "sharpness"),
    ],
)
def test_the_selection_metric_never_is_a_test_metric_with_a_validation_counterpart(metric, chosen):
    assert Policy(metric=metric).selection_metric == chosen


def test_the_policy_shows_its_metric_in_its_unit_and_direction():
    assert Policy().unit == Unit("test_acc", "max")
    assert Policy(metric="val_loss").unit == Unit("val_loss", "min")
    assert Policy(metric="val_loss", mode="max").unit.label == "val_loss (higher is better)"
