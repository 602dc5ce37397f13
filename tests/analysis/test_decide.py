"""analysis/decide.py: one arm against one rival, and the study-wide decision, on arms small
enough to work out by hand.

Numbers used: t(0.95, df=2) = 2.919986, t(0.975, 2) = 4.302653; Wilson's upper bound of 0 of 3
at 90% is z^2 / (3 + z^2) = 0.474196 (z^2 = 2.705543), at 95% 0.561497 (z^2 = 3.841459); its
lower bound of 3 of 3 is 1 minus those."""

import pytest
from factories import runs_frame

from analysis.decide import compare, decide
from analysis.policy import Policy

ACCURACY_ONLY = Policy(margin=0.004, divergence_margin=1.0)  # no divergence data can decide


def arm(fraction: float, accuracies, statuses=None, stopped=None):
    statuses = statuses or ["FINISHED"] * len(accuracies)
    stopped = stopped or [False] * len(accuracies)
    return runs_frame(
        {
            "explore_fraction": fraction,
            "peak_lr": 0.1,
            "seed": seed,
            "test_acc": accuracy,
            "status": status,
            "stopped": stop,
        }
        for seed, (accuracy, status, stop) in enumerate(
            zip(accuracies, statuses, stopped, strict=True)
        )
    )


FIFTY = [0.979, 0.978, 0.977]
BEST = [0.980, 0.980, 0.980]  # 25% ahead by 0.001, 0.002, 0.003 per seed


def comparison(mine, theirs, policy):
    return compare(mine, theirs, policy, 0.0, {"peak_lr": 0.1}, ("50%", "25%"), 0.25)


def test_a_rival_within_the_margin_holds():
    """The rival's advantage, paired by seed: 0.002 +- 2.919986 * 0.001 / sqrt(3) =
    [0.000314, 0.003686], below the 0.004 margin."""
    found = comparison(arm(0.5, FIFTY), arm(0.25, BEST), ACCURACY_ONLY)

    tests = decide([found], ACCURACY_ONLY)

    assert (found.advantage.estimate, found.advantage.test) == (pytest.approx(0.002), "paired t")
    assert (found.advantage.low, found.advantage.high) == pytest.approx(
        (0.000314, 0.003686), abs=1e-6
    )
    assert (found.ended_arm, found.ended_rival) == ((0, 3), (0, 3))
    assert (found.arm_mean, found.rival_mean) == pytest.approx((0.978, 0.980))
    assert (found.decision, found.reason) == ("robust", "interval below the margin")
    assert tests == 1  # a 100% divergence margin: no divergence test can reject
    assert found.strict_confidence == pytest.approx(0.90)


def test_three_calm_seeds_a_side_cannot_rule_out_a_30_percent_excess():
    """0 of 3 against 0 of 3: the excess could be up to 0.474196 (Wilson's bound of 0 of 3, the
    other side's lower bound 0), above 30%."""
    policy = Policy(margin=0.004)
    found = comparison(arm(0.5, FIFTY), arm(0.25, BEST), policy)

    decide([found], policy)

    assert found.excess.high == pytest.approx(0.474196, abs=1e-6)
    assert found.decision == "inconclusive"
    assert found.reason == (
        "0 of 3 seeds diverged at 50%, 0 of 3 at 25%: an excess of up to 47.42% of seeds "
        "diverging is not ruled out (robust needs it below 30%)"
    )


def test_the_correction_counts_only_the_divergence_tests_that_could_reject():
    """Rival 1.1 points ahead. One accuracy test, one divergence test: at K = 1 (level 90%) 3
    of 3 against 0 of 3 could show a 30% excess (1 - sqrt(2) 0.474196 = 0.32939 > 0.3), so 2
    tests > 1; at K = 2 (95%) it could not (1 - sqrt(2) 0.561497 = 0.20592): K = 2. At 95%
    the gaps 0.010, 0.011, 0.012 give 0.011 +- 4.302653 * 0.001 / sqrt(3) = [0.008516,
    0.013484], above the margin: not robust."""
    policy = Policy(margin=0.002)
    found = comparison(arm(0.5, [0.970, 0.969, 0.968]), arm(0.25, BEST), policy)

    tests = decide([found], policy)

    assert tests == 2
    assert found.strict_confidence == pytest.approx(0.95)
    assert (found.strict.low, found.strict.high) == pytest.approx((0.008516, 0.013484), abs=1e-6)
    assert (found.decision, found.reason) == ("not robust", "interval above the margin")


def test_too_few_usable_seeds_are_named_with_what_became_of_the_others():
    mine = arm(0.5, FIFTY, statuses=["FINISHED", "FAILED", "FINISHED"])
    found = comparison(mine, arm(0.25, BEST), ACCURACY_ONLY)

    decide([found], ACCURACY_ONLY)

    assert found.advantage is None
    assert found.problems == ["2 usable seeds at 50%, need 3 (1 failed)"]
    assert (found.decision, found.reason) == ("inconclusive", found.problems[0])


def test_seeds_the_scheduler_stopped_in_the_arm_forbid_holding():
    mine = arm(0.5, [*FIFTY, 0.9], statuses=["FINISHED"] * 3 + ["KILLED"], stopped=[0, 0, 0, 1])
    found = comparison(mine, arm(0.25, [*BEST, 0.98]), ACCURACY_ONLY)

    decide([found], ACCURACY_ONLY)

    assert found.stopped_arm == 1
    assert found.decision == "inconclusive"
    assert found.reason == (
        "the scheduler stopped 1 seed at 50% early (the survivors are a flattering sample)"
    )


def trials(fraction: float, endings: list[str], accuracy: float = 0.98):
    """One trial per seed, each ending as named: finished, diverged, stopped or failed."""
    return runs_frame(
        {
            "explore_fraction": fraction,
            "peak_lr": 0.1,
            "seed": seed,
            "test_acc": accuracy,
            "status": {"failed": "FAILED", "stopped": "KILLED"}.get(ending, "FINISHED"),
            "diverged": ending == "diverged",
            "stopped": ending == "stopped",
        }
        for seed, ending in enumerate(endings)
    )


@pytest.mark.parametrize(
    ("mine", "theirs", "excess"),
    [
        # The 7 seeds ASHA stopped at 25% count as calm there: 3/10 - 0/10.
        (["finished"] * 10, ["diverged"] * 3 + ["stopped"] * 7, 0.3),
        # The 8 seeds that crashed at 50% count as diverged there: 10/10 - 8/10.
        (["finished"] * 2 + ["failed"] * 8, ["diverged"] * 10, 0.2),
        # 50% has one seed stopped early (a flattering sample): never "robust" by divergence.
        (["finished"] * 9 + ["stopped"], ["diverged"] * 10, 0.9),
    ],
)
def test_a_rival_diverging_more_is_held_against_only_whatever_the_unknown_seeds_did(
    mine, theirs, excess
):
    """The rival's excess divergence, with every seed of unknown outcome counted against the
    claim, decides nothing here: each case is inconclusive (too few usable seeds at 25%)."""
    policy = Policy(margin=0.004)
    found = comparison(trials(0.5, mine), trials(0.25, theirs, accuracy=0.99), policy)

    decide([found], policy)

    assert found.rival_excess.estimate == pytest.approx(excess)
    assert found.decision == "inconclusive"


def test_a_rival_diverging_on_every_seed_cannot_be_the_better_setting():
    """10 of 10 against 0 of 10: Wilson's bounds at 90% are 0.787 and 0.213, so the excess is
    at least 1 - sqrt(2) 0.213 = 0.699 > 30%: held, though no accuracy could be compared."""
    policy = Policy(margin=0.004)
    found = comparison(trials(0.5, ["finished"] * 10), trials(0.25, ["diverged"] * 10), policy)

    decide([found], policy)

    assert found.rival_excess.low == pytest.approx(1 - 2**0.5 * 2.705543 / 12.705543, abs=1e-5)
    assert found.decision == "robust"
