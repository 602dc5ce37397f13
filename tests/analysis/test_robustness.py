"""Summaries and the verdict against values worked out by hand from how the data were made.

The frames are built as load_runs returns them (no MLflow needed): one row per trial. Tests of
the accuracy interval alone use ``ACCURACY_ONLY``, a policy whose divergence margin (100% of
seeds) no data can reach, so three seeds can decide.
"""

import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import t

from analysis.intervals import difference_interval
from analysis.policy import Policy
from analysis.robustness import (
    explore_sensitivity,
    explore_summary,
    robustness_verdict,
    sharpness_correlation,
)
from analysis.runs import AnalysisError
from analysis.trials import conditions

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
# The same seed shifts every fraction.
SEED_EFFECT = (0.000, 0.004, -0.002, 0.002, -0.004, 0.001, -0.001, 0.003, -0.003, 0.0005)
ACCURACY_ONLY = Policy(divergence_margin=1.0)


def plateau(fraction: float, seed: int) -> float:
    """0.95 without an explore phase, a 0.98 plateau from 25% on, a seed effect, a jitter."""
    jitter = 0.0002 * ((seed + 2 * FRACTIONS.index(fraction)) % 3 - 1)
    return (0.95 if fraction == 0 else 0.98) + SEED_EFFECT[seed] + jitter


def frame(rows: list[dict], **params) -> pd.DataFrame:
    runs = pd.DataFrame(rows)
    for key, value in {"status": "FINISHED", "diverged": False, "schedule": "knee"}.items():
        if key not in runs:
            runs[key] = value
    runs.attrs["params"] = ["explore_fraction", "peak_lr", "seed", "schedule", *params]
    return runs


def sweep(accuracy, peak_lrs=(0.05, 0.1), seeds=range(10), fractions=FRACTIONS) -> pd.DataFrame:
    rows = [
        {"explore_fraction": f, "peak_lr": lr, "seed": s, "test_acc": accuracy(f, lr, s)}
        for lr in peak_lrs
        for f in fractions
        for s in seeds
    ]
    for row in rows:
        row["sharpness"] = 10 * (1 - row["test_acc"])
    return frame(rows)


def test_summary_numbers_match_a_hand_computation():
    runs = sweep(lambda f, lr, s: plateau(f, s))

    summary = explore_summary(runs).set_index(["peak_lr", "explore_fraction"])

    values = [plateau(0.5, s) for s in range(10)]
    row = summary.loc[(0.1, 0.5)]
    half = 2.262157 * statistics.stdev(values) / 10**0.5  # t(0.975, df=9)
    assert row["n"] == 10
    assert row["mean"] == pytest.approx(statistics.mean(values))
    assert row["std"] == pytest.approx(statistics.stdev(values))
    assert row["ci_low"] == pytest.approx(statistics.mean(values) - half, rel=1e-5)
    assert row["ci_high"] == pytest.approx(statistics.mean(values) + half, rel=1e-5)
    assert row["best"] == pytest.approx(max(values))
    assert row["best_seed"] == values.index(max(values))
    assert row["worst_seed"] == values.index(min(values))
    assert (row["diverged"], row["stopped"], row["failed"]) == (0, 0, 0)
    assert len(summary) == 10


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
    row = robustness_verdict(frame(rows), policy=policy).table.iloc[0]

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

    row = robustness_verdict(frame(rows), policy=ACCURACY_ONLY).table.iloc[0]

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

    summary = explore_summary(runs).set_index(["peak_lr", "explore_fraction"])
    verdict = robustness_verdict(runs)

    kept = [plateau(0.5, s) for s in range(2, 10)]
    assert summary.loc[(0.1, 0.5), "n"] == 8
    assert summary.loc[(0.1, 0.5), "mean"] == pytest.approx(statistics.mean(kept))
    assert summary.loc[(0.1, 0.5), "diverged"] == 1
    assert summary.loc[(0.1, 0.5), "failed"] == 1
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
    return frame(rows)


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


def test_fewer_than_three_shared_seeds_fall_back_to_welch():
    a = pd.Series([0.980, 0.981, 0.982], index=[0, 1, 2])
    b = pd.Series([0.975, 0.977, 0.979], index=[1, 2, 3])  # shares seeds 1 and 2 only

    gap, low, high, test = difference_interval(a, b, 0.90)[:4]

    v = statistics.variance(a) / 3 + statistics.variance(b) / 3  # both 1e-6 / 3 and 4e-6 / 3
    df = v**2 / ((1e-6 / 3) ** 2 / 2 + (4e-6 / 3) ** 2 / 2)
    half = t.ppf(0.95, df) * v**0.5
    assert test == "Welch t"
    assert gap == pytest.approx(0.004)
    assert (low, high) == pytest.approx((0.004 - half, 0.004 + half))
    # Three shared seeds (0-2 of 0-4 against 0-2): paired on them, seeds 3 and 4 left out.
    paired = difference_interval(
        pd.Series([0.98, 0.98, 0.98, 0.5, 0.9]), pd.Series(PAIRED[0.5]), 0.90
    )
    assert paired[3] == "paired t on 3 shared seeds"
    assert paired[1:3] == pytest.approx((0.000314, 0.003686), abs=1e-6)


def diverging(count: int, fractions=FRACTIONS) -> pd.DataFrame:
    """Ten seeds, every fraction the same accuracy per seed (paired gaps of zero: robust on
    accuracy), and the first ``count`` seeds at 50% diverged."""
    rows = [
        {
            "explore_fraction": f,
            "peak_lr": 0.1,
            "seed": s,
            "test_acc": 0.98 + 0.001 * (s % 5),
            "diverged": f == 0.5 and s < count,
        }
        for f in fractions
        for s in range(10)
    ]
    return frame(rows)


def test_other_swept_axes_are_never_averaged_together():
    runs = pd.concat(
        [
            sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1]).assign(epochs=10),
            sweep(lambda f, lr, s: plateau(f, s) - 0.05, peak_lrs=[0.1]).assign(epochs=20),
        ]
    )
    runs.attrs["params"] = ["explore_fraction", "peak_lr", "seed", "schedule", "epochs"]

    summary = explore_summary(runs)
    verdict = robustness_verdict(runs)

    assert len(summary) == 10
    assert set(summary["n"]) == {10}
    assert len(verdict.table) == 2
    assert "epochs" in verdict.table


def test_baselines_are_left_out_of_the_explore_views():
    runs = sweep(lambda f, lr, s: plateau(f, s))
    cosine = runs.assign(schedule="cosine", test_acc=0.5)
    runs = pd.concat([runs, cosine], ignore_index=True)
    runs.attrs["params"] = ["explore_fraction", "peak_lr", "seed", "schedule"]

    assert explore_summary(runs)["n"].sum() == 100
    assert robustness_verdict(runs).status == "robust"


def test_spearman_and_sensitivity_known_answers():
    runs = sweep(lambda f, lr, s: plateau(f, s))  # sharpness = 10 (1 - acc): perfectly opposed

    correlation = sharpness_correlation(runs).set_index("scope")
    sensitivity = explore_sensitivity(runs).set_index("peak_lr")

    assert correlation.loc["all trials", "rho"] == pytest.approx(-1.0)
    assert correlation.loc["all trials", "n"] == 100
    assert correlation.loc["peak LR 0.05", "n"] == 50
    assert sensitivity.loc[0.1, "worst_fraction"] == 0.0
    plateau_means = [statistics.mean(plateau(f, s) for s in range(10)) for f in FRACTIONS]
    assert sensitivity.loc[0.1, "range"] == pytest.approx(max(plateau_means) - min(plateau_means))


@settings(max_examples=30, deadline=None)
@given(
    offsets=st.lists(st.floats(-0.05, 0.05), min_size=4, max_size=4),
    noise=st.lists(st.floats(0.0, 0.004), min_size=8, max_size=8),
    floor=st.sampled_from([0.0, 1 / 540]),
)
def test_paired_gap_ignores_what_a_seed_does_to_every_fraction(offsets, noise, floor):
    """Pairing: adding a per-seed constant to both sides leaves the gap and its interval."""
    a = pd.Series([0.9 + x for x in noise[:4]])
    b = pd.Series([0.9 + x for x in noise[4:]])
    shift = pd.Series(offsets)

    plain = difference_interval(a, b, 0.9, floor)
    moved = difference_interval(a + shift, b + shift, 0.9, floor)

    assert moved[3] == plain[3] == "paired t"
    assert moved[:3] == pytest.approx(plain[:3], abs=1e-9)


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
    row = robustness_verdict(frame(rows), policy=policy).table.iloc[0]

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

    verdict = robustness_verdict(frame(rows))

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

    table = robustness_verdict(frame(rows)).table

    assert (table["decision"] == "not robust").mean() <= 0.05


def test_a_seed_logged_twice_is_refused():
    runs = sweep(lambda f, lr, s: plateau(f, s))
    twice = pd.concat([runs, runs.iloc[:1]], ignore_index=True)
    twice.attrs = runs.attrs

    with pytest.raises(AnalysisError, match="repeat a seed"):
        robustness_verdict(twice)


def test_conditions_without_load_runs_param_list():
    """A frame read back from runs.csv has no attrs: budgets are still kept apart."""
    runs = pd.concat(
        [
            sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1]).assign(epochs=10),
            sweep(lambda f, lr, s: plateau(f, s), peak_lrs=[0.1]).assign(epochs=20),
        ],
        ignore_index=True,
    )
    runs.attrs = {}

    assert conditions(runs) == ["peak_lr", "epochs"]


def test_pairs_are_not_bought_with_most_of_the_data():
    """3 shared seeds of 10 on one side: pairing would drop 7 of its values; Welch's keeps
    them all. 5 of 10 shared: half, so paired on those 5."""
    a = pd.Series([0.98 + 0.001 * s for s in range(10)], index=range(10))

    assert difference_interval(a, a.iloc[:3])[3] == "Welch t"
    assert difference_interval(a, a.iloc[:5])[3] == "paired t on 5 shared seeds"
