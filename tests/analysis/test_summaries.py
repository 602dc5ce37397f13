"""analysis/summaries.py: per-fraction summaries over seeds and the side views of an explore
sweep, against values worked out by hand from how the data were made (factories.plateau: 0.95
without an explore phase, 0.98 from 25% on, a seed's shift shared by every fraction)."""

import statistics

import pytest
from factories import FRACTIONS, combined, plateau, sweep

from analysis.summaries import explore_sensitivity, explore_summary, sharpness_correlation


def flat(f, lr, s):
    return plateau(f, s)


def test_summary_numbers_match_a_hand_computation():
    runs = sweep(flat)

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


def test_diverged_and_failed_trials_are_counted_not_averaged():
    runs = sweep(flat)
    at = (runs["explore_fraction"] == 0.5) & (runs["peak_lr"] == 0.1)
    diverged_row, failed_row = runs.index[at][:2]  # seeds 0 and 1
    runs.loc[diverged_row, ["diverged", "test_acc"]] = [True, 0.1]
    runs.loc[failed_row, "status"] = "FAILED"

    summary = explore_summary(runs).set_index(["peak_lr", "explore_fraction"])

    kept = [plateau(0.5, s) for s in range(2, 10)]
    assert summary.loc[(0.1, 0.5), "n"] == 8
    assert summary.loc[(0.1, 0.5), "mean"] == pytest.approx(statistics.mean(kept))
    assert summary.loc[(0.1, 0.5), "diverged"] == 1
    assert summary.loc[(0.1, 0.5), "failed"] == 1


def test_a_lower_is_better_metric_has_its_lowest_seed_best():
    """Sharpness here is 10 (1 - accuracy): the best (lowest) sharpness is the best seed's."""
    summary = explore_summary(sweep(flat), "sharpness").set_index(["peak_lr", "explore_fraction"])

    values = [10 * (1 - plateau(0.5, s)) for s in range(10)]
    row = summary.loc[(0.1, 0.5)]
    assert row["best"] == pytest.approx(min(values))
    assert row["best_seed"] == values.index(min(values))
    assert row["worst_seed"] == values.index(max(values))


def test_a_metric_the_runs_lack_is_named():
    with pytest.raises(KeyError, match="no metric 'test_loss' in the runs"):
        explore_summary(sweep(flat), "test_loss")


def test_other_swept_axes_are_never_averaged_together():
    runs = combined(
        sweep(flat, peak_lrs=[0.1], epochs=10),
        sweep(lambda f, lr, s: plateau(f, s) - 0.05, peak_lrs=[0.1], epochs=20),
    )

    summary = explore_summary(runs)

    assert len(summary) == 10
    assert set(summary["n"]) == {10}
    means = summary.set_index(["epochs", "explore_fraction"])["mean"]
    mean_at_half = statistics.mean(plateau(0.5, s) for s in range(10))
    assert means[(10, 0.5)] == pytest.approx(mean_at_half)
    assert means[(20, 0.5)] == pytest.approx(mean_at_half - 0.05)


def test_baselines_are_left_out_of_the_explore_views():
    runs = sweep(flat)
    runs = combined(runs, runs.assign(schedule="cosine", test_acc=0.5))

    assert explore_summary(runs)["n"].sum() == 100


def test_spearman_and_sensitivity_known_answers():
    runs = sweep(flat)  # sharpness = 10 (1 - acc): perfectly opposed

    correlation = sharpness_correlation(runs).set_index("scope")
    sensitivity = explore_sensitivity(runs).set_index("peak_lr")

    assert correlation.loc["all trials", "rho"] == pytest.approx(-1.0)
    assert correlation.loc["all trials", "n"] == 100
    assert correlation.loc["peak LR 0.05", "n"] == 50
    assert sensitivity.loc[0.1, "worst_fraction"] == 0.0
    plateau_means = [statistics.mean(plateau(f, s) for s in range(10)) for f in FRACTIONS]
    assert sensitivity.loc[0.1, "range"] == pytest.approx(max(plateau_means) - min(plateau_means))


def test_sensitivity_of_a_lower_is_better_metric_calls_the_lowest_mean_best():
    sensitivity = explore_sensitivity(sweep(flat), "sharpness").set_index("peak_lr")

    # 0% has the lowest accuracy, so the highest sharpness: the worst; the range stays >= 0.
    assert sensitivity.loc[0.1, "worst_fraction"] == 0.0
    assert sensitivity.loc[0.1, "best_mean"] < sensitivity.loc[0.1, "worst_mean"]
    assert sensitivity.loc[0.1, "range"] == pytest.approx(
        sensitivity.loc[0.1, "worst_mean"] - sensitivity.loc[0.1, "best_mean"]
    )


def test_a_condition_with_fewer_than_eight_trials_gets_no_correlation_of_its_own():
    runs = sweep(flat, seeds=range(1))  # 5 trials per peak LR

    correlation = sharpness_correlation(runs).set_index("scope")

    assert correlation.index.tolist() == ["all trials"]
    assert correlation.loc["all trials", "n"] == 10
