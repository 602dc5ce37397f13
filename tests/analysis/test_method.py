"""analysis/method.py: the method paragraphs say the numbers of the policy that decided, not
numbers of their own (the seeds the divergence rule needs: tests/analysis/test_policy.py)."""

import pytest

from analysis.method import asha_note, grid_method, margin_line, search_method
from analysis.policy import Policy


@pytest.mark.parametrize(
    ("policy", "line"),
    [
        (Policy(), "Margin: 0.20 accuracy points (test_acc, higher is better)."),
        (Policy(margin=0.01), "Margin: 1.00 accuracy points (test_acc, higher is better)."),
        (
            Policy(metric="sharpness", margin=0.1),
            "Margin: 0.1 of sharpness (sharpness, lower is better).",
        ),
    ],
)
def test_margin_line(policy, line):
    assert margin_line(policy) == line


def test_the_grid_method_says_the_default_policy():
    text = grid_method(Policy())

    assert text.startswith(
        "Method: at each condition, 50% explore is compared with every other explore fraction"
    )
    for words in (
        "when they share at least 3 and at least half",
        "the advantage's 90% upper bound lies below the margin",
        "diverged seeds is below 30% (90% upper bound)",
        "a false robust is at most 5% likely",
        "a false not robust is at most 5% likely",
        "fewer than 3 usable seeds",
        "7 finished seeds are the fewest that can rule out a 30% excess",
    ):
        assert words in text, words


def test_the_grid_method_follows_every_setting():
    """alpha 2.5%: 95% intervals; a 20% divergence margin at that level needs 16 seeds."""
    policy = Policy(fraction=0.25, alpha=0.025, divergence_margin=0.2, min_seeds=4)

    text = grid_method(policy)

    for words in (
        "25% explore is compared",
        "when they share at least 4",
        "the advantage's 95% upper bound lies below the margin",
        "diverged seeds is below 20% (95% upper bound)",
        "at most 2.5% likely",
        "fewer than 4 usable seeds",
        "16 finished seeds are the fewest that can rule out a 20% excess",
    ):
        assert words in text, words
    assert "30%" not in text


@pytest.mark.parametrize(
    ("kind", "compared"),
    [
        ("schedule", "Knee at 50% explore is compared with every baseline schedule."),
        (
            "budget",
            "Knee at 50% explore at each shorter budget is compared with every baseline at the "
            "full budget.",
        ),
    ],
)
def test_each_kind_names_its_arms(kind, compared):
    assert f"Method: at each condition, {compared}" in grid_method(Policy(), kind)


def test_the_search_method_says_its_window_and_never_robust():
    text = search_method(Policy(window=0.25, min_seeds=5))

    assert "The best point within 25 explore points of 50%" in text
    assert "a 90% t interval" in text
    assert "fewer than 5 usable seeds" in text
    assert "never says robust" in text


def test_the_asha_note_counts_the_stopped_trials():
    assert asha_note(1).startswith("ASHA stopped 1 trial early. ")
    assert asha_note(3).startswith("ASHA stopped 3 trials early. ")


def test_a_loss_margin_is_said_in_the_loss():
    line = margin_line(Policy(metric="val_loss", mode="min", margin=0.01))

    assert line == "Margin: 0.01 of val_loss (val_loss, lower is better)."


@pytest.mark.parametrize(
    ("policy", "chosen", "says"),
    [
        (
            Policy(),
            "val_acc",
            "Points are ranked and chosen by mean val_acc, so choosing never sees the test "
            "split; the numbers reported and compared for them are test_acc's.",
        ),
        (Policy(), "test_acc", "Points are ranked by mean test_acc (the runs have no val_acc)."),
        (Policy(metric="val_loss"), "val_loss", "Points are ranked by mean val_loss."),
    ],
)
def test_the_search_method_says_which_metric_chose_the_points(policy, chosen, says):
    assert says in search_method(policy, chosen)
