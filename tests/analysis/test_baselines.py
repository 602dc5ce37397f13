"""analysis/baselines.py: the schedule and budget verdicts on arms whose answer is known by
construction (factories.arm: ten seeds, each seed's effect shared by every arm, so the paired
gaps have no spread of their own and the sd floor is the data's resolution, 0.0005).

A gap g then has the 90% interval g +- t(0.95, df=9) 1.833113 x 0.0005 / sqrt(10) = g +-
0.00029, against the 0.2-point margin."""

import numpy as np
import pytest
from factories import arm, runs_frame

from analysis.baselines import budget_verdict, schedule_verdict
from analysis.policy import Policy
from analysis.robustness import study_verdict
from analysis.runs import AnalysisError


def arms(*each: list[dict]):
    return runs_frame([t for trials in each for t in trials])


@pytest.mark.parametrize(
    ("cosine", "status"),
    [
        (0.980, "matches"),  # cosine 0 ahead: [-0.00029, 0.00029], below the margin
        (0.990, "falls short"),  # 1 point ahead: far above it
        (0.982, "inconclusive"),  # 0.2 points ahead: the interval straddles it
    ],
)
def test_knee_against_each_baseline(cosine, status):
    runs = arms(arm("knee", 0.980, 10), arm("cosine", cosine, 10), arm("linear", 0.979, 10))

    verdict = schedule_verdict(runs)

    assert (verdict.kind, verdict.status) == ("schedule", status)
    table = verdict.comparisons.set_index("rival")
    assert set(table.index) == {"cosine", "linear"}
    assert table.loc["cosine", "advantage"] == pytest.approx(cosine - 0.980)
    assert table.loc["linear", "advantage"] == pytest.approx(-0.001)
    assert table.loc["cosine", "advantage_high"] == pytest.approx(
        cosine - 0.980 + 0.00029, abs=1e-5
    )
    if status == "matches":
        assert verdict.explanation == (
            "Knee 50% matches every baseline: at every peak LR (1) none beats it by more than "
            "0.20 points (90% upper bounds below the margin)."
        )
    if status == "falls short":
        assert "cosine ahead of it by 1.00 points" in verdict.explanation


def test_the_correction_counts_every_test_that_could_reject():
    """Two accuracy tests and two divergence tests of 10 seeds a side, each able to show a 30%
    excess even at K = 4 (at 97.5%, z^2 = 5.0239: Wilson's lower bound of 10 of 10 is
    10 / 15.0239 = 0.66561, the upper of 0 of 10 is 0.33439, the excess's lower bound
    1 - sqrt(2) 0.33439 = 0.52710 > 0.3): all four count, the study-wide level is 1 - 0.1/4."""
    runs = arms(arm("knee", 0.980, 10), arm("cosine", 0.990, 10), arm("linear", 0.979, 10))

    verdict = schedule_verdict(runs)

    assert verdict.comparisons["strict_confidence"].tolist() == pytest.approx([0.975, 0.975])


def test_a_study_without_knee_at_the_fraction_is_inconclusive():
    verdict = schedule_verdict(
        arms(arm("knee", 0.98, 10, explore_fraction=0.0), arm("cosine", 0.98, 10))
    )

    assert verdict.status == "inconclusive"
    assert verdict.explanation == "Knee at 50% explore: inconclusive, no such trial."


def test_a_shorter_budget_against_the_baselines_at_the_full_one():
    """Knee at 20 epochs against cosine at 40 (0 ahead): matches; cosine at 20 epochs, 1 point
    behind, is no rival, nor is Knee at 40."""
    runs = arms(
        arm("knee", 0.980, 10, epochs=20),
        arm("knee", 0.981, 10, epochs=40),
        arm("cosine", 0.980, 10, epochs=40),
        arm("cosine", 0.970, 10, epochs=20),
    )

    verdict = budget_verdict(runs)

    assert (verdict.kind, verdict.status) == ("budget", "matches")
    assert verdict.comparisons["rival"].tolist() == ["cosine 40 epochs"]
    assert verdict.explanation.startswith("Knee 50% 20 epochs matches every baseline at the full")


def test_without_baselines_a_shorter_budget_is_judged_against_knee_at_the_full_one():
    """Knee at 40 epochs 0.1 points ahead: 0.001 +- 0.00029, below the margin: matches; 0.3
    points ahead: above it, falls short."""
    close = arms(arm("knee", 0.980, 10, epochs=20), arm("knee", 0.981, 10, epochs=40))
    far = arms(arm("knee", 0.980, 10, epochs=20), arm("knee", 0.983, 10, epochs=40))

    assert budget_verdict(close).comparisons["rival"].tolist() == ["Knee 50% 40 epochs"]
    assert budget_verdict(close).status == "matches"
    assert budget_verdict(far).status == "falls short"


@pytest.mark.parametrize(("short", "status"), [(3.001, "matches"), (3.05, "falls short")])
def test_a_language_models_budget_in_steps_is_a_budget_study(short, status):
    """A budget in optimizer steps is judged as one in epochs, in val_loss (lower is better):
    Knee at 1000 steps against cosine at 2000, 0.001 nats behind (inside the 0.01 margin) or
    0.05 behind (far outside it); cosine at 1000 steps is no rival."""
    runs = arms(
        arm("knee", short, 10, metric="val_loss", steps=1000),
        arm("knee", 3.0, 10, metric="val_loss", steps=2000),
        arm("cosine", 3.0, 10, metric="val_loss", steps=2000),
        arm("cosine", 3.1, 10, metric="val_loss", steps=1000),
    )
    policy = Policy(metric="val_loss", margin=0.01)

    verdict = study_verdict(runs, policy)

    assert (verdict.kind, verdict.status) == ("budget", status)
    assert verdict.comparisons["rival"].tolist() == ["cosine 2000 steps"]
    # how far the rival is ahead: lower loss is better, so short - 3.0
    assert verdict.comparisons["advantage"].tolist() == pytest.approx([short - 3.0])
    if status == "matches":
        assert verdict.explanation.startswith(
            "Knee 50% 1000 steps matches every baseline at the full budget"
        )


def test_a_baseline_missing_at_the_full_budget_is_never_replaced_by_knee_there():
    """Knee at 10, 20 and 40 epochs, cosine only at 20 (9 points ahead): the full budget is 40,
    where cosine never ran, so nothing is decided (it used to be Knee at 40, 'matches')."""
    runs = arms(
        *(arm("knee", 0.90, 10, epochs=e) for e in (10, 20, 40)),
        arm("cosine", 0.99, 10, epochs=20),
    )

    verdict = budget_verdict(runs)

    assert verdict.status == "inconclusive"
    assert verdict.table["reason"].tolist() == ["cosine 40 epochs not run here"] * 2


@pytest.mark.parametrize(
    ("missing", "reason"), [("step", "step not run here"), ("knee", "Knee 50% not run here")]
)
def test_an_arm_missing_at_one_peak_lr_leaves_that_peak_lr_open(missing, reason):
    """Knee, cosine and step at peak LRs 0.05 and 0.1, all equal, but one of them never ran at
    0.1: 0.05 matches, 0.1 is inconclusive (it used to be left out: 'matches')."""
    runs = arms(
        *(
            arm(schedule, 0.98, 10, peak_lr=lr)
            for schedule in ("knee", "cosine", "step")
            for lr in (0.05, 0.1)
            if (schedule, lr) != (missing, 0.1)
        )
    )

    verdict = schedule_verdict(runs)

    table = verdict.table.set_index("peak_lr")
    assert verdict.status == "inconclusive"
    assert table.loc[0.05, "decision"] == "robust"  # the table's word; the headline's: matches
    assert (table.loc[0.1, "decision"], table.loc[0.1, "reason"]) == ("inconclusive", reason)


def test_two_studies_in_one_experiment_are_refused_not_counted_twice():
    runs = arms(arm("knee", 0.98, 5), arm("knee", 0.98, 5), arm("cosine", 0.98, 5))

    with pytest.raises(AnalysisError, match="10 runs repeat a seed"):
        schedule_verdict(runs)


def test_of_a_baselines_copies_per_explore_fraction_the_one_in_its_favour_counts():
    """An older grid ran cosine once per explore fraction. On seeds 0-7 the copy at 25% diverged
    and the one at 50% finished, 4 points ahead of Knee: the finished copies count, and Knee
    falls short (with the diverged copies kept, cosine would seem to diverge and Knee 'match')."""
    cosine = [
        {**trial, "explore_fraction": fraction, "diverged": fraction == 0.25 and trial["seed"] < 8}
        for trial in arm("cosine", 0.99, 10)
        for fraction in (0.25, 0.5)
    ]
    runs = arms(arm("knee", 0.95, 10), cosine)

    verdict = schedule_verdict(runs)

    assert verdict.status == "falls short"
    assert verdict.comparisons["n_rival"].tolist() == [10]


def test_knee_runs_that_logged_no_decay_are_an_arm_of_their_own():
    """Decay swept, and some older Knee runs logged none: they are 'Knee 50% (no decay)', an
    arm compared like the others (sorting them among the named ones used to raise)."""
    runs = arms(
        arm("knee", 0.98, 10, decay="linear"),
        arm("knee", 0.98, 10, decay="cosine"),
        arm("knee", 0.98, 10, decay=np.nan),
        arm("cosine", 0.98, 10),
    )

    verdict = schedule_verdict(runs)

    assert verdict.table["arm"].tolist() == [
        "Knee 50% (no decay)",
        "Knee 50% cosine",
        "Knee 50% linear",
    ]
    assert verdict.status == "matches"


def test_budget_arms_are_listed_by_arm_then_budget_whatever_order_they_were_logged_in():
    knees = [
        arm("knee", 0.98, 10, decay=d, epochs=e) for d in ("linear", "cosine") for e in (10, 20)
    ]
    table = budget_verdict(arms(*knees, arm("cosine", 0.98, 10, epochs=40))).table

    assert table["arm"].tolist() == [
        "Knee 50% cosine 10 epochs",
        "Knee 50% cosine 20 epochs",
        "Knee 50% linear 10 epochs",
        "Knee 50% linear 20 epochs",
    ]
