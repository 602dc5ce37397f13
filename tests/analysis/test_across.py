"""The verdict across studies (analysis/across.py): robust only when every study is, not robust
at a level corrected over every study's tests, inconclusive for a study that cannot be
compared; and the report that says so (analysis/across_report.py)."""

import numpy as np
import pandas as pd
import pytest
from factories import arm, runs_frame
from simulations import MARGIN, study

from analysis.across import StudyRuns, across_verdict
from analysis.across_report import write_across_report
from analysis.policy import Policy
from analysis.robustness import robustness_verdict
from analysis.runs import AnalysisError

EVERY_RIVAL = (0.0, 0.25, 0.75, 1.0)


def _studies(*frames: pd.DataFrame, policy: Policy | None = None) -> list[StudyRuns]:
    return [StudyRuns(f"study-{i}", runs, policy or Policy()) for i, runs in enumerate(frames)]


def test_two_flat_studies_are_robust_across_and_each_has_its_row():
    rng = np.random.default_rng(1)
    found = across_verdict(_studies(study(rng, seeds=20), study(rng, seeds=20, peak_lrs=2)))
    assert found.decision == "robust"
    assert found.table["study"].tolist() == ["study-0", "study-1"]
    assert found.table["decision"].tolist() == ["robust", "robust"]
    assert (found.table["seeds"] == 20).all()
    assert "robust across the 2 studies" in found.explanation


def test_one_study_where_full_explore_is_clearly_better_makes_it_not_robust():
    rng = np.random.default_rng(2)
    ahead = {1.0: 5 * MARGIN}  # 100% a full point ahead, noise 0.2 points
    found = across_verdict(_studies(study(rng, seeds=20), study(rng, seeds=10, ahead=ahead)))
    assert found.decision == "not robust"
    assert found.table["decision"].tolist() == ["robust", "not robust"]
    row = found.table.iloc[1]
    assert row["versus"] == 1.0
    assert row["best_fraction"] == 1.0
    assert row["gap_low"] > MARGIN  # the interval behind "not robust" clears the margin
    assert "in study-1 at peak LR 0.05" in found.explanation


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (runs_frame(arm("cosine", 0.98, 10)), "no Knee trials"),
        (
            runs_frame(arm("cosine", 0.98, 10) + arm("knee", 0.98, 10)),
            "a schedule study: it did not sweep explore fractions",
        ),
        (
            runs_frame([{"explore_fraction": 0.5, "peak_lr": 0.1, "seed": 0, "val_acc": 0.9}]),
            "no test_acc metric",
        ),
    ],
    ids=["baselines only", "Knee against a baseline", "no such metric"],
)
def test_a_study_that_cannot_be_compared_makes_it_inconclusive_never_robust(other, why):
    robust = study(np.random.default_rng(3), seeds=20)
    found = across_verdict(_studies(robust, other))
    assert found.decision == "inconclusive"
    assert found.table["decision"].tolist() == ["robust", "inconclusive"]
    assert why in found.table.iloc[1]["why"]
    assert "robust in study-0" in found.explanation


def test_all_failed_trials_make_a_study_inconclusive():
    rng = np.random.default_rng(4)
    crashed = study(rng, seeds=5).assign(status="FAILED")
    found = across_verdict(_studies(study(rng, seeds=20), crashed))
    assert found.decision == "inconclusive"
    assert "no usable trials" in found.table.iloc[1]["why"]


def test_not_robust_is_corrected_over_every_test_of_every_study():
    """Two 10-seed studies of five fractions, at 1 and 3 peak LRs, nothing diverging: each
    comparison makes an accuracy test and a divergence test, and every divergence test could
    reject (10 of 10 seeds diverging against 0 of 10 is a Newcombe lower bound of 0.40 even at
    99.7%, above the 30% margin). So the families are 2 x 4 = 8 and 2 x 4 x 3 = 24 tests, and
    together 32: "not robust" at 1 - 2 alpha / 32."""
    rng = np.random.default_rng(5)
    frames = (study(rng, seeds=10), study(rng, seeds=10, peak_lrs=3))
    together = across_verdict(_studies(*frames))
    for verdict in together.verdicts.values():
        levels = verdict.comparisons["strict_confidence"].to_numpy()
        assert levels == pytest.approx(1 - 2 * 0.05 / 32)


def _divergent_but_ahead() -> pd.DataFrame:
    """100% explore diverges on 12 of its 20 seeds, and its 8 survivors are a full point ahead
    of 50% (noise 0.2 points): not robust in its own study (the survivors clearly ahead),
    robust by the divergence rule once a wider interval no longer shows them ahead."""
    rng = np.random.default_rng(0)
    effects = rng.normal(0, 0.004, 20)
    rows = []
    for fraction in (0.0, 0.5, 1.0):
        for seed in range(20):
            diverged = fraction == 1.0 and seed < 12
            accuracy = 0.98 + effects[seed] + rng.normal(0, 0.002) + 0.01 * (fraction == 1.0)
            rows.append(
                {
                    "explore_fraction": fraction,
                    "peak_lr": 0.05,
                    "seed": seed,
                    "test_acc": 0.1 if diverged else accuracy,
                    "diverged": diverged,
                }
            )
    return runs_frame(rows)


def test_what_its_own_study_calls_not_robust_is_never_robust_across():
    divergent = _divergent_but_ahead()
    assert robustness_verdict(divergent).decision == "not robust"  # its own report's word
    flat = [study(np.random.default_rng(i), seeds=20) for i in range(7)]
    found = across_verdict(_studies(divergent, *flat))
    mine = found.verdicts["study-0"]
    assert mine.decision == "inconclusive"
    assert "not robust at its own study's level" in mine.comparisons["reason"].str.cat()
    assert found.decision != "robust"


# Error rates on simulated studies (tests/analysis/simulations.py): a rate of 5% over 60
# batches has a binomial sd of 2.8%, over 100 of 2.2%.
def test_false_not_robust_across_eight_studies_holds_its_level():
    """Every rival of every study exactly at the margin: "not robust" is false everywhere.
    Judged each at its own level, some study of eight says not robust in 12-17% of such
    batches (measured); corrected over all eight studies' tests, at most 5%."""
    rng = np.random.default_rng(6)
    every = dict.fromkeys(EVERY_RIVAL, MARGIN)
    wrong = sum(
        across_verdict(_studies(*(study(rng, seeds=10, ahead=every) for _ in range(8)))).decision
        == "not robust"
        for _ in range(60)
    )
    assert wrong / 60 <= 0.05 + 0.03


def test_false_robust_across_studies_holds_its_level():
    """One study's rival exactly at the margin (robust is false there), the other flat."""
    rng = np.random.default_rng(7)
    wrong = sum(
        across_verdict(_studies(study(rng, ahead={1.0: MARGIN}), study(rng))).decision == "robust"
        for _ in range(100)
    )
    assert wrong / 100 <= 0.05 + 0.03


def test_each_study_is_judged_by_its_own_objective():
    """A language model's val loss (lower is better) beside an image model's accuracy: each
    study's gap is in its own metric and direction."""
    rng = np.random.default_rng(8)
    images = study(rng, seeds=20)
    loss = study(rng, seeds=20, ahead={1.0: 5 * MARGIN})  # 100% has the higher accuracy...
    loss = loss.assign(val_loss=3.0 + loss["test_acc"]).drop(columns="test_acc")  # ...so: worse
    studies = [
        StudyRuns("cnn", images, Policy()),
        StudyRuns("lm", loss, Policy(metric="val_loss", margin=MARGIN)),
    ]
    found = across_verdict(studies)
    assert found.decision == "robust"  # 100% explore is far worse in val_loss: no threat to 50%
    assert found.table["metric"].tolist() == ["test_acc", "val_loss"]
    assert found.table.iloc[1]["best_fraction"] != 1.0


def test_the_report_has_a_row_and_a_panel_per_study(tmp_path):
    rng = np.random.default_rng(1)  # its flat study is robust (at 20 seeds, 65% are)
    ahead = {1.0: 5 * MARGIN}
    frames = (study(rng, seeds=20), study(rng, seeds=10, ahead=ahead))
    stale = tmp_path / "explore_panels.png"
    stale.write_bytes(b"an earlier report's figure")
    found = write_across_report(_studies(*frames), tmp_path)

    rows = pd.read_csv(tmp_path / "studies.csv")
    assert rows["study"].tolist() == ["study-0", "study-1"]
    assert rows["decision"].tolist() == ["robust", "not robust"]
    report = (tmp_path / "report.md").read_text()
    assert "**Verdict across 2 studies: not robust.**" in report
    assert found.explanation in report
    assert report.count("| study-") == 2
    assert stale.read_bytes().startswith(b"\x89PNG")  # rewritten, not left over
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html


@pytest.mark.parametrize(
    ("studies", "error"),
    [
        (lambda r: [StudyRuns("a", r, Policy())], "needs two or more"),
        (lambda r: [StudyRuns("a", r, Policy()), StudyRuns("a", r, Policy())], "share a name"),
        (
            lambda r: [StudyRuns("a", r, Policy()), StudyRuns("b", r, Policy(fraction=0.25))],
            "different explore fractions",
        ),
    ],
    ids=["one study", "same name", "other fraction"],
)
def test_what_cannot_be_judged_together_is_refused(studies, error):
    runs = study(np.random.default_rng(10), seeds=3)
    with pytest.raises(AnalysisError, match=error):
        across_verdict(studies(runs))
