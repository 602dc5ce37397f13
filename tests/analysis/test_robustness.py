"""analysis/robustness.py: the explore verdict against answers worked out by hand from how the
data were made (tests/factories.py builds them as load_runs returns them, no MLflow needed);
the defects an audit of the verdict found, each pinned by a study whose right answer is known
by construction; and the verdict's error rates on simulated studies (tests/analysis/
simulations.py), which must stay at the stated 5% level however many conditions ran.

Tests of the accuracy interval alone use ``ACCURACY_ONLY``, a policy whose divergence margin
(100% of seeds) no data can reach, so three seeds can decide. The intervals themselves are
tested in test_intervals.py, the summaries in test_summaries.py.
"""

import statistics

import numpy as np
import pytest
from factories import (
    FRACTIONS,
    arm,
    combined,
    diverging,
    plateau,
    runs_frame,
    split_search,
    sweep,
)
from scipy.stats import t
from simulations import MARGIN, rate

from analysis.policy import Policy
from analysis.robustness import robustness_verdict, search_verdict, study_verdict
from analysis.runs import AnalysisError

ACCURACY_ONLY = Policy(divergence_margin=1.0)


def test_a_flat_plateau_is_robust():
    verdict = robustness_verdict(sweep(lambda f, lr, s: plateau(f, s)))

    assert verdict.status == "robust"
    assert verdict.table["decision"].tolist() == ["robust", "robust"]
    assert (verdict.table["test"] == "paired t").all()
    assert verdict.explanation.startswith("50% explore is robust")
    assert "0.20 points" in verdict.explanation


def test_fifty_percent_clearly_worse_at_one_peak_lr_is_not_robust():
    def accuracy(f, lr, s):
        return plateau(f, s) - (0.01 if (f, lr) == (0.5, 0.1) else 0.0)

    verdict = robustness_verdict(sweep(accuracy))

    assert verdict.status == "not robust"
    table = verdict.table.set_index("peak_lr")
    assert table.loc[0.05, "decision"] == "robust"
    assert table.loc[0.1, "decision"] == "not robust"
    assert table.loc[0.1, "gap"] == pytest.approx(0.01, abs=0.0005)
    assert "peak LR 0.1" in verdict.explanation
    # Bonferroni over every test of the study: 2 peak LRs x 4 rivals x (accuracy, divergence),
    # every divergence test able to reject with 10 seeds a side: a 1 - 0.1/16 interval.
    assert table.loc[0.1, "confidence"] == pytest.approx(1 - 0.1 / 16)
    assert table.loc[0.1, "comparisons"] == 4
    assert "ahead of it by" in verdict.explanation


def test_a_single_seed_is_inconclusive_never_robust():
    verdict = robustness_verdict(sweep(lambda f, lr, s: plateau(f, s), seeds=[0]))

    assert verdict.status == "inconclusive"
    assert "1 usable seed at 50%, need 3" in verdict.explanation


def test_a_single_swept_fraction_is_inconclusive():
    verdict = robustness_verdict(sweep(lambda f, lr, s: plateau(f, s), fractions=(0.5,)))

    assert verdict.status == "inconclusive"
    assert set(verdict.table["reason"]) == {"no other explore fraction to compare"}


def test_a_fraction_that_was_not_swept_is_inconclusive():
    verdict = robustness_verdict(sweep(lambda f, lr, s: plateau(f, s), fractions=(0.0, 1.0)))

    assert verdict.status == "inconclusive"
    assert set(verdict.table["reason"]) == {"not swept"}


# best - 50% per seed: 0.001, 0.002, 0.003 -> mean 0.002, sd 0.001, 90% t interval
# 0.002 +- t(0.95, df=2) 2.919986 * 0.001 / sqrt(3) = [0.000314, 0.003686]
PAIRED = {0.25: [0.980, 0.980, 0.980], 0.5: [0.979, 0.978, 0.977]}


@pytest.mark.parametrize(
    ("margin", "decision"),
    [(0.004, "robust"), (0.002, "inconclusive"), (0.0003, "not robust")],
)
def test_paired_gap_interval_is_the_t_interval_of_seed_differences(margin, decision):
    rows = [
        {"explore_fraction": f, "peak_lr": 0.1, "seed": s, "test_acc": acc}
        for f, values in PAIRED.items()
        for s, acc in enumerate(values)
    ]

    policy = Policy(margin=margin, divergence_margin=1.0)
    row = robustness_verdict(runs_frame(rows), policy=policy).table.iloc[0]

    assert row["versus"] == 0.25
    assert row["gap"] == pytest.approx(0.002)
    assert row["gap_low"] == pytest.approx(0.000314, abs=1e-6)
    assert row["gap_high"] == pytest.approx(0.003686, abs=1e-6)
    assert row["test"] == "paired t"
    assert row["decision"] == decision


def test_different_seeds_use_welch_interval():
    best, mine = [0.980, 0.981, 0.982], [0.975, 0.977, 0.979]
    rows = [
        {"explore_fraction": 0.25, "peak_lr": 0.1, "seed": s, "test_acc": a}
        for s, a in enumerate(best)
    ]
    rows += [
        {"explore_fraction": 0.5, "peak_lr": 0.1, "seed": 3 + s, "test_acc": a}
        for s, a in enumerate(mine)
    ]

    row = robustness_verdict(runs_frame(rows), policy=ACCURACY_ONLY).table.iloc[0]

    v1, v2 = statistics.variance(best) / 3, statistics.variance(mine) / 3
    df = (v1 + v2) ** 2 / (v1**2 / 2 + v2**2 / 2)  # Welch-Satterthwaite
    half = t.ppf(0.95, df) * (v1 + v2) ** 0.5
    assert row["test"] == "Welch t"
    assert row["gap"] == pytest.approx(0.004)
    assert row["gap_low"] == pytest.approx(0.004 - half)
    assert row["gap_high"] == pytest.approx(0.004 + half)


def test_diverged_and_failed_trials_are_counted_not_averaged():
    runs = sweep(lambda f, lr, s: plateau(f, s))
    at = (runs["explore_fraction"] == 0.5) & (runs["peak_lr"] == 0.1)
    diverged_row, failed_row = runs.index[at][:2]
    runs.loc[diverged_row, ["diverged", "test_acc"]] = [True, 0.1]
    runs.loc[failed_row, "status"] = "FAILED"

    verdict = robustness_verdict(runs)

    # One diverged seed of the nine that reached an outcome, against none of ten: the excess
    # share could be as large as its Newcombe upper bound (one-sided 5%, z^2 = 2.7055): Wilson's
    # upper bound of 1 of 9, centre (1/9 + z^2/18) / (1 + z^2/9) = 0.20100 plus half-width
    # z sqrt(0.010974 + z^2/324) / 1.30061 = 0.17581, minus 0 of 10's lower bound (0): 0.37681,
    # above the 30% robust must rule out.
    # The failed seed counts neither way. At peak LR 0.05 nothing happened: robust there.
    assert verdict.status == "inconclusive"
    table = verdict.table.set_index("peak_lr")
    assert table.loc[0.05, "decision"] == "robust"
    assert table.loc[0.1, "decision"] == "inconclusive"
    assert "1 of 9 seeds diverged at 50%, 0 of 10 at 0%" in table.loc[0.1, "reason"]
    assert table.loc[0.1, "excess_high"] == pytest.approx(0.37681, abs=1e-4)


def with_failures(failed: dict[float, list[int]], values: dict[float, list[float]]):
    rows = [
        {
            "explore_fraction": f,
            "peak_lr": 0.1,
            "seed": s,
            "test_acc": np.nan if s in failed.get(f, []) else acc,
            "status": "FAILED" if s in failed.get(f, []) else "FINISHED",
        }
        for f, accs in values.items()
        for s, acc in enumerate(accs)
    ]
    return runs_frame(rows)


def test_a_seed_that_failed_on_one_side_leaves_the_others_paired():
    """Seeds 3 and 4 FAILED at 50%: the gap is paired over seeds 0-2, the PAIRED example's
    interval [0.000314, 0.003686], robust at a 0.4-point margin. Welch over 5 against 3 values
    (25%'s sd 0.00707 from seeds 3 and 4) would give [-0.0047, 0.0087]: inconclusive."""
    values = {0.25: [*PAIRED[0.25], 0.990, 0.970], 0.5: [*PAIRED[0.5], 0.0, 0.0]}

    policy = Policy(margin=0.004, divergence_margin=1.0)
    row = robustness_verdict(with_failures({0.5: [3, 4]}, values), policy=policy).table.iloc[0]

    assert row["test"] == "paired t on 3 shared seeds"
    assert row["gap"] == pytest.approx(0.002)
    assert row["gap_low"] == pytest.approx(0.000314, abs=1e-6)
    assert row["gap_high"] == pytest.approx(0.003686, abs=1e-6)
    assert row["decision"] == "robust"


def test_other_swept_axes_are_never_averaged_together():
    runs = combined(
        sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1], epochs=10),
        sweep(lambda f, lr, s: plateau(f, s) - 0.05, peak_lrs=[0.1], epochs=20),
    )

    verdict = robustness_verdict(runs)

    assert len(verdict.table) == 2
    assert "epochs" in verdict.table


def test_baselines_are_left_out_of_the_explore_views():
    runs = sweep(lambda f, lr, s: plateau(f, s))
    runs = combined(runs, runs.assign(schedule="cosine", test_acc=0.5))

    assert robustness_verdict(runs).status == "robust"


def test_identical_differences_are_not_certainty():
    """Three seeds, 50% one image behind 25% on each: the sd is floored at one image."""
    step = 1 / 540
    rows = [
        {
            "explore_fraction": f,
            "peak_lr": 0.1,
            "seed": s,
            "test_acc": (530 + s - (f == 0.5)) * step,
        }
        for f in (0.25, 0.5)
        for s in range(3)
    ]

    policy = Policy(margin=0.004, divergence_margin=1.0)
    row = robustness_verdict(runs_frame(rows), policy=policy).table.iloc[0]

    half = 2.919986 * step / 3**0.5  # t(0.95, df=2) x floor / sqrt(3)
    assert row["gap"] == pytest.approx(step)
    assert row["gap_low"] == pytest.approx(step - half, rel=1e-5)
    assert row["gap_high"] == pytest.approx(step + half, rel=1e-5)
    assert row["decision"] == "inconclusive"  # upper end 0.50 points > 0.40


def test_noisy_best_at_the_fraction_is_not_robust():
    """50% has the highest mean by luck: comparing it with itself used to say robust."""
    noisy = {0.25: [0.970, 0.990, 0.960], 0.5: [0.981, 0.950, 0.990]}
    rows = [
        {"explore_fraction": f, "peak_lr": 0.1, "seed": s, "test_acc": acc}
        for f, values in noisy.items()
        for s, acc in enumerate(values)
    ]

    verdict = robustness_verdict(runs_frame(rows))

    assert verdict.status == "inconclusive"
    assert verdict.table.iloc[0]["versus"] == 0.25


def test_a_flat_curve_of_pure_noise_is_rarely_not_robust():
    """No fraction matters, 5 fractions x 5 seeds x 40 conditions: a 'not robust' is a false
    alarm, which the Bonferroni correction keeps at or below the 5% level."""
    rng = np.random.default_rng(0)
    rows = [
        {"explore_fraction": f, "peak_lr": lr, "seed": s, "test_acc": 0.97 + rng.normal(0, 0.01)}
        for lr in np.linspace(0.01, 0.4, 40)
        for f in FRACTIONS
        for s in range(5)
    ]

    table = robustness_verdict(runs_frame(rows)).table

    assert (table["decision"] == "not robust").mean() <= 0.05


def test_a_seed_logged_twice_is_refused():
    runs = sweep(lambda f, lr, s: plateau(f, s))
    twice = combined(runs, runs.iloc[:1])

    with pytest.raises(AnalysisError, match="repeat a seed"):
        robustness_verdict(twice)


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


# Error rates on simulated studies (tests/analysis/simulations.py, whose table runs 1,000 of
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


# A user-chosen objective: val_loss, lower is better, a margin of 0.01 (in val_loss).
LOSS = Policy(metric="val_loss", mode="min", margin=0.01)


def val_loss(worse: float):
    """1 - plateau: 0.05 without an explore phase, 0.02 from 25% on, minus the seed's shift and
    jitter (at most 0.0002 either way, differing between fractions), and ``worse`` at 50%."""
    return lambda f, lr, s: 1 - plateau(f, s) + (worse if f == 0.5 else 0.0)


def test_a_val_loss_clearly_worse_at_half_is_not_robust():
    """50% 0.05 above the rivals from 25% on: their advantage is 0.05 (paired by seed, the
    jitters moving it by at most 0.0004), five times the margin."""
    verdict = robustness_verdict(sweep(val_loss(0.05), metric="val_loss"), policy=LOSS)

    assert verdict.status == "not robust"
    table = verdict.table.set_index("peak_lr")
    assert (table["decision"] == "not robust").all()
    assert table["gap"].tolist() == pytest.approx([0.05, 0.05], abs=0.0005)
    assert table["fraction_mean"].tolist() == pytest.approx([0.07, 0.07], abs=0.001)
    assert "in val_loss, 99.38% interval" in verdict.explanation  # Bonferroni over 16 tests
    assert "points" not in verdict.explanation


def test_the_mode_says_which_way_is_better():
    """The same study read as higher is better: 50%, the highest val_loss, is the best."""
    runs = sweep(val_loss(0.05), metric="val_loss")

    verdict = robustness_verdict(runs, policy=Policy(metric="val_loss", mode="max", margin=0.01))

    assert verdict.status == "robust"
    assert (verdict.table["best_fraction"] == 0.5).all()


@pytest.mark.parametrize(("seeds", "status"), [(10, "robust"), (3, "inconclusive")])
def test_a_val_loss_equal_within_noise_is_robust_with_enough_seeds(seeds, status):
    """No gap but the jitter, against a 0.01 margin: robust, given the 7 seeds that the
    divergence rule needs (test_policy.py); with 3 only the divergence rule stays open."""
    runs = sweep(val_loss(0.0), metric="val_loss", seeds=range(seeds))

    verdict = robustness_verdict(runs, policy=LOSS)

    assert verdict.status == status
    if status == "robust":
        assert "beats it by more than 0.01 in val_loss" in verdict.explanation
    else:
        assert "excess of up to" in verdict.explanation
        assert "interval straddles" not in verdict.explanation


def test_the_grid_verdict_compares_the_objective_never_its_validation_counterpart():
    """A grid chooses no best point: a val_acc that has 50% far behind changes nothing about a
    test_acc verdict (the flat plateau, robust), and decides only when it is the objective."""
    runs = sweep(lambda f, lr, s: plateau(f, s))
    runs["val_acc"] = runs["test_acc"] - np.where(runs["explore_fraction"] == 0.5, 0.05, 0.0)

    assert robustness_verdict(runs).status == "robust"
    assert robustness_verdict(runs, policy=Policy(metric="val_acc")).status == "not robust"


def test_the_search_verdict_says_it_chose_by_validation_accuracy():
    """factories.split_search: by validation accuracy the best point within 10 points of 50%
    is 45% (57% by test accuracy), beyond it 20% (62%)."""
    verdict = search_verdict(split_search())

    assert "(points chosen by val_acc, compared on test_acc)" in verdict.explanation
    assert "the best point beyond (explore 20%, peak LR 0.05)" in verdict.explanation
    assert "the best within (explore 45%, peak LR 0.08)" in verdict.explanation
    assert verdict.table["explore_fraction"].tolist() == [0.2, 0.45, 0.05, 0.57, 0.62, 0.9]


def test_an_explore_study_with_a_baseline_stays_one_when_only_50_percent_ran():
    """Swept 25 / 50 / 75% and cosine, interrupted after 50% and cosine: still an explore
    study, whose missing fractions leave it open (judged as a schedule study it 'matched')."""
    runs = runs_frame([*arm("knee", 0.98, 10), *arm("cosine", 0.97, 10)])

    verdict = study_verdict(runs, swept=[0.25, 0.5, 0.75])

    assert (verdict.kind, verdict.status) == ("explore", "inconclusive")
    assert "25% not run here" in verdict.explanation
    assert "75% not run here" in verdict.explanation


def test_a_peak_lr_of_the_grid_where_nothing_ran_leaves_the_study_open():
    """A grid over 25 / 50% x peak LR 0.05 / 0.1 / 0.2, stopped before any trial at 0.2 ran:
    robust at the two that ran, and 0.2 unknown, so inconclusive overall (given only its
    fractions, the verdict cannot know of 0.2, and says robust at the peak LRs it has)."""
    runs = sweep(lambda f, lr, s: plateau(f, s), fractions=(0.25, 0.5), epochs=30)
    grid = {"explore_fraction": [0.25, 0.5], "peak_lr": [0.05, 0.1, 0.2], "epochs": [30]}

    verdict = robustness_verdict(runs, swept=grid)

    assert verdict.decision == "inconclusive"
    table = verdict.table.set_index("peak_lr")
    assert table["decision"].to_dict() == {0.05: "robust", 0.1: "robust", 0.2: "inconclusive"}
    assert table.loc[0.2, "reason"] == "nothing ran here"
    assert "epochs" not in verdict.table  # one budget: no condition
    assert robustness_verdict(runs, swept=[0.25, 0.5]).decision == "robust"


def test_a_condition_with_missing_values_is_one_condition_of_the_grid():
    """Decay shapes linear, cosine and unlogged (NaN, an older run) at peak LR 0.1, none at 0.2:
    three conditions ran and three never did, the NaN one counted once at each peak LR."""
    rows = [
        {**trial, "decay": [np.nan, "linear", "cosine"][trial["seed"] % 3]}
        for trial in (*arm("knee", 0.98, 9), *arm("knee", 0.98, 9, explore_fraction=0.25))
    ]
    grid = {"explore_fraction": [0.25, 0.5], "peak_lr": [0.1, 0.2]}

    table = robustness_verdict(runs_frame(rows), swept=grid).table

    assert len(table) == 6
    assert (table["reason"] == "nothing ran here").tolist() == [False] * 3 + [True] * 3
    assert table["peak_lr"].tolist() == [0.1] * 3 + [0.2] * 3


def test_a_condition_pandas_reads_as_nan_keeps_its_seeds_and_best_fraction():
    """Budgets 10, 20 and unlogged (NaN) epochs: each condition's row has its 10 seeds at 50%
    and its best fraction (a NaN key used to find no trials: 0 seeds, no best fraction)."""
    runs = combined(
        *(sweep(lambda f, lr, s: plateau(f, s), peak_lrs=(0.1,), epochs=e) for e in (10, 20)),
        sweep(lambda f, lr, s: plateau(f, s), peak_lrs=(0.1,)).assign(epochs=np.nan),
    )

    table = robustness_verdict(runs).table

    assert len(table) == 3
    assert table["n_fraction"].tolist() == [10, 10, 10]
    assert table["best_fraction"].notna().all()
