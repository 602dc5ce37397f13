"""The verdict's defects an audit found, each pinned by a study whose right answer is known by
construction; and the error rates of the verdict on simulated studies (tests/analysis/
simulations.py), which must stay at the stated 5% level however many conditions ran."""

import numpy as np
import pytest
from simulations import FRACTIONS as SIMULATED
from simulations import MARGIN, rate
from test_robustness import FRACTIONS, diverging, plateau, sweep

from analysis.robustness import robustness_verdict


# Robust needs the excess share of 50%'s seeds diverging ruled out above 30%: the Newcombe
# upper bound (Wilson's upper bound of k of 10 minus 0 of 10's lower bound, 0) one-sided at 5%
# (z = 1.6449, z^2 = 2.7055). 0 of 10: z^2 / (10 + z^2) = 0.21294. 1 of 10: Wilson's centre
# (0.1 + z^2/20) / (1 + z^2/10) = 0.18518, half-width z sqrt(0.009 + z^2/400) / 1.27055 =
# 0.16255, upper bound 0.34773 > 0.3: not ruled out.
@pytest.mark.parametrize(
    ("count", "excess_high", "decision"),
    [
        (0, 0.21294, "robust"),
        (1, 0.34773, "inconclusive"),  # one diverged seed of ten is not ruled out
        (4, None, "inconclusive"),  # was robust: Fisher's p 0.043 > 0.05 / 4
        (5, None, "inconclusive"),  # half its seeds: never robust
        (8, None, "not robust"),
    ],
)
def test_divergence_must_be_ruled_out_for_robust(count, excess_high, decision):
    verdict = robustness_verdict(diverging(count))

    row = verdict.table.iloc[0]
    assert row["decision"] == decision
    assert verdict.status == decision
    assert row["diverged"] == count
    if excess_high is not None:
        assert verdict.comparisons["excess_high"].max() == pytest.approx(excess_high, abs=1e-4)
    if count:
        assert f"{count} of 10 seeds diverged at 50%, 0 of 10 at 0%" in row["reason"]


def test_the_excess_that_decides_not_robust_is_the_hand_computed_bound():
    """8 of 10 diverged: 50% has 2 usable seeds (no accuracy test) and four divergence tests,
    so the study-wide level is 1 - 0.1/4 = 97.5%, z = 2.2414: Wilson's lower bound of 8 of 10
    is 0.44755, 0 of 10's upper 0.33439, the excess's lower bound 0.8 - sqrt(0.35245^2 +
    0.33439^2) = 0.31416 > 0.3."""
    verdict = robustness_verdict(diverging(8))

    first = verdict.comparisons.iloc[0]
    assert first["strict_confidence"] == pytest.approx(0.975)
    assert first["strict_excess_low"] == pytest.approx(0.31416, abs=1e-4)
    assert "diverges more often by over 30% of seeds" in verdict.explanation


def test_the_same_divergence_everywhere_never_makes_the_fraction_look_bad():
    """Seeds 0 and 1 diverge at every fraction: no excess anywhere. Newcombe's upper bound of 2
    of 10 against 2 of 10 (Wilson's 90% interval of 2 of 10 is 0.0686 to 0.4592) is
    sqrt(0.2592^2 + 0.1314^2) = 0.2906, below 30%: robust. With 3 of 10 everywhere it is
    0.3257: inconclusive, and never not robust."""
    runs = diverging(0)
    runs["diverged"] = runs["seed"] < 2

    two = robustness_verdict(runs)
    runs["diverged"] = runs["seed"] < 3
    three = robustness_verdict(runs)

    assert two.status == "robust"
    assert two.comparisons["excess_high"].max() == pytest.approx(0.2906, abs=1e-4)
    assert three.status == "inconclusive"
    assert (three.comparisons["strict_excess_low"] < 0).all()


def test_trials_that_never_finished_are_not_calm_seeds_in_the_divergence_test():
    """0% failed on every seed: it has no divergence rate to beat, so 6 of 10 diverged at 50%
    is no evidence against 50%, and 0% cannot be compared at all: inconclusive."""
    runs = diverging(6, (0.0, 0.5))
    runs.loc[runs["explore_fraction"] == 0.0, "status"] = "FAILED"

    verdict = robustness_verdict(runs)

    assert verdict.status == "inconclusive"
    assert "no seed reached an outcome on one side" in verdict.table.iloc[0]["reason"]


def test_a_rival_that_crashed_is_never_dropped():
    """100% beats 50% by a point but 8 of its 10 seeds FAILED: the old verdict compared 50%
    with the three fractions left and said robust. Now: inconclusive, naming 100% and why."""
    runs = sweep(lambda f, lr, s: plateau(f, s) + (0.01 if f == 1.0 else 0.0), peak_lrs=[0.1])
    runs.loc[(runs["explore_fraction"] == 1.0) & (runs["seed"] < 8), "status"] = "FAILED"

    verdict = robustness_verdict(runs)

    assert verdict.status == "inconclusive"
    assert "against 100%: 2 usable seeds at 100%, need 3 (8 failed)" in verdict.explanation


def test_a_rival_that_diverged_on_most_seeds_cannot_be_the_better_setting():
    """100% diverged on 9 of 10 seeds and 50% on none: too few usable seeds to compare
    accuracies, but its excess divergence over 50%'s is far above 30%: held against."""
    runs = sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1])
    runs.loc[(runs["explore_fraction"] == 1.0) & (runs["seed"] < 9), "diverged"] = True

    verdict = robustness_verdict(runs)

    assert verdict.status == "robust"
    rival = verdict.comparisons.set_index("rival").loc[1.0]
    assert rival["decision"] == "robust"
    assert "cannot be the better setting" in rival["reason"]


def test_a_fraction_missing_at_one_peak_lr_is_inconclusive_there():
    runs = sweep(lambda f, lr, s: plateau(f, s))
    runs = runs[~((runs["explore_fraction"] == 1.0) & (runs["peak_lr"] == 0.1))]

    table = robustness_verdict(runs).table.set_index("peak_lr")

    assert table.loc[0.05, "decision"] == "robust"
    assert table.loc[0.1, "decision"] == "inconclusive"
    assert "100% not run here" in table.loc[0.1, "reason"]


@pytest.mark.parametrize("stopped_at", [0.5, 1.0])
def test_seeds_the_scheduler_stopped_never_flatter_the_verdict(stopped_at):
    """Stopped seeds at 50% forbid robust (the survivors are its best); at a rival, 50% may
    still be robust (the rival's survivors only make that harder)."""
    runs = sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1])
    runs["stopped"] = (runs["explore_fraction"] == stopped_at) & (runs["seed"] < 2)
    runs.loc[runs["stopped"], "status"] = "KILLED"

    verdict = robustness_verdict(runs)

    assert verdict.status == ("inconclusive" if stopped_at == 0.5 else "robust")
    if stopped_at == 0.5:
        assert "the scheduler stopped 2 seeds at 50% early" in verdict.explanation


def test_a_lower_is_better_metric_flips_every_comparison():
    """Sharpness: 50% clearly the flattest is robust; clearly the sharpest is not robust (the
    old verdict said the opposite of both)."""
    runs = sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1])
    flat = np.where(runs["explore_fraction"] == 0.5, -1.0, 0.0)
    runs["sharpness"] = 5.0 + 0.01 * runs["seed"] + flat

    flattest = robustness_verdict(runs, metric="sharpness", margin=0.1)
    runs["sharpness"] -= 2 * flat
    sharpest = robustness_verdict(runs, metric="sharpness", margin=0.1)

    assert flattest.status == "robust"
    assert flattest.table.iloc[0]["best_fraction"] == 0.5
    assert sharpest.status == "not robust"
    assert sharpest.table.iloc[0]["gap"] == pytest.approx(1.0)  # the rivals' advantage


def test_the_fractions_swept_match_the_simulations():
    assert SIMULATED == FRACTIONS


# Error rates on simulated studies (tests/analysis/simulations.py; the issue note has 1,000
# each). The slack: a rate of 5% over 150 studies has a binomial sd of 1.8%.
@pytest.mark.parametrize(("peak_lrs", "studies"), [(1, 150), (2, 150), (5, 60), (10, 30)])
def test_false_not_robust_holds_its_level_however_many_peak_lrs(peak_lrs, studies):
    """Every rival exactly at the margin (so "beats it by more than the margin" is false
    everywhere): the old verdict said not robust in 3.7%, 9.7%, 18.3% and 35.7% of studies.
    Fewer studies where each has more conditions: the old rates there are far above 8%."""
    every = dict.fromkeys((0.0, 0.25, 0.75, 1.0), MARGIN)
    assert rate("not robust", studies, peak_lrs=peak_lrs, ahead=every) <= 0.05 + 0.03


@pytest.mark.parametrize("times", [1.0, 1.5])
def test_false_robust_holds_its_level_with_a_rival_ahead(times):
    assert rate("robust", 150, ahead={1.0: times * MARGIN}) <= 0.05 + 0.03


def test_half_its_seeds_diverging_is_never_robust():
    """50% diverges on half its seeds, other fractions never, finished seeds tied: the old
    verdict said robust in 13% of 10-seed studies."""
    assert rate("robust", 150, diverge={0.5: 0.5}) == 0.0


def test_a_crashed_rival_ahead_is_never_robust():
    """1.0 ahead by a full point, 8 of its 10 seeds FAILED: the old verdict said robust in 193
    of 200 such studies."""
    assert rate("robust", 100, ahead={1.0: 0.01}, failed={1.0: 8}) == 0.0


def test_a_swept_fraction_with_no_run_at_all_is_named():
    """MLflow has no run of 100% (the study never ran it): the verdict is told what was swept."""
    runs = sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1], fractions=(0.0, 0.25, 0.5))

    told = robustness_verdict(runs, swept=FRACTIONS)

    assert robustness_verdict(runs).status == "robust"  # what the runs alone can say
    assert told.status == "inconclusive"
    assert "75% not run here; 100% not run here" in told.explanation


def test_a_finished_trial_without_its_metric_is_no_calm_seed():
    """FINISHED but no test_acc (a logging gap) or an infinite one (a blow-up nobody tagged):
    the first is an unknown result, the second a divergence; neither is a calm seed."""
    runs = diverging(0)
    at = runs.index[runs["explore_fraction"] == 0.5]
    runs.loc[at[:8], "test_acc"] = np.inf

    verdict = robustness_verdict(runs)

    assert verdict.status == "not robust"  # 8 of 10 diverged at 50%: as the hand bound above
    runs.loc[at[:8], "test_acc"] = np.nan
    missing = robustness_verdict(runs)
    assert missing.status == "inconclusive"
    assert "2 usable seeds at 50%, need 3 (8 failed)" in missing.explanation
