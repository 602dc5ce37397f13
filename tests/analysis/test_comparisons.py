"""Schedule, budget, decay and search comparisons against differences built into the data."""

import pandas as pd
import pytest

from analysis.comparisons import (
    budget_table,
    decay_table,
    is_search,
    schedule_table,
    search_summary,
)
from analysis.policy import Policy
from analysis.report import write_report

SEEDS = range(4)
SEED_EFFECT = (0.000, 0.003, -0.002, 0.001)  # shared by every arm: pairing removes it


def frame(rows: list[dict], params: list[str]) -> pd.DataFrame:
    runs = pd.DataFrame(rows).assign(status="FINISHED", diverged=False)
    runs.attrs["params"] = ["explore_fraction", "peak_lr", "seed", "schedule", *params]
    return runs


def trial(schedule: str, accuracy: float, seed: int, **params) -> dict:
    row = {"schedule": schedule, "peak_lr": 0.1, "seed": seed, **params}
    row.setdefault("explore_fraction", 0.5 if schedule == "knee" else float("nan"))
    return {**row, "test_acc": accuracy + SEED_EFFECT[seed]}


def test_schedule_table_gives_how_far_knee_is_ahead_of_each_baseline():
    means = {"knee": 0.980, "cosine": 0.975, "linear": 0.981}
    rows = [trial(s, acc, seed) for s, acc in means.items() for seed in SEEDS]
    rows += [trial("knee", 0.9, seed, explore_fraction=0.0) for seed in SEEDS]  # not the 50% arm

    table = schedule_table(frame(rows, [])).set_index("schedule")

    assert set(table.index) == {"knee 50%", "cosine", "linear"}
    assert table.loc["knee 50%", "mean"] == pytest.approx(0.980 + sum(SEED_EFFECT) / 4)
    assert table.loc["cosine", "knee_ahead"] == pytest.approx(0.005)
    assert table.loc["linear", "knee_ahead"] == pytest.approx(-0.001)
    # Same seeds, the same effect per seed: the paired differences have no spread of their own,
    # so the sd is the data's resolution, 0.001: 0.005 +- t(0.95, df=3) 2.353363 * 0.001 / 2.
    half = 2.353363 * 0.001 / 2
    assert table.loc["cosine", "knee_ahead_low"] == pytest.approx(0.005 - half, rel=1e-5)
    assert table.loc["cosine", "knee_ahead_high"] == pytest.approx(0.005 + half, rel=1e-5)
    assert table.loc["cosine", "knee_ahead_test"] == "paired t"
    assert (table["n"] == 4).all()


def test_a_baseline_repeated_over_explore_fractions_counts_once_per_seed():
    rows = [trial("knee", 0.98, seed) for seed in SEEDS]
    rows += [
        trial("cosine", 0.97, seed, explore_fraction=f) for f in (0.0, 0.5, 1.0) for seed in SEEDS
    ]

    table = schedule_table(frame(rows, [])).set_index("schedule")

    assert table.loc["cosine", "n"] == 4


def test_knee_alone_gives_no_schedule_table_a_baseline_alone_its_row():
    assert schedule_table(frame([trial("knee", 0.98, s) for s in SEEDS], [])).empty
    alone = schedule_table(frame([trial("cosine", 0.97, s) for s in SEEDS], []))
    assert alone["schedule"].tolist() == ["cosine"]
    assert alone["n"].tolist() == [4]
    assert alone["mean"].tolist() == pytest.approx([0.9705])  # 0.97 + mean seed effect 0.0005


def test_budget_table_compares_short_knee_with_full_baselines():
    rows = [trial("knee", 0.9795, s, epochs=10) for s in SEEDS]
    rows += [trial("knee", 0.981, s, epochs=20) for s in SEEDS]
    rows += [trial("cosine", 0.980, s, epochs=e) for s in SEEDS for e in (10, 20)]
    rows += [trial("linear", 0.985, s, epochs=20) for s in SEEDS]

    table = budget_table(frame(rows, ["epochs"]), Policy(margin=0.002))
    short = table[table["knee_epochs"] == 10].set_index("baseline")

    assert set(table["baseline_epochs"]) == {20}  # baselines at the full budget only
    # Resolution 0.0005: each interval is the difference +- 2.353363 * 0.0005 / 2.
    assert short.loc["cosine", "knee_ahead"] == pytest.approx(-0.0005)
    assert short.loc["cosine", "knee_ahead_low"] == pytest.approx(-0.0005 - 0.000588, abs=1e-6)
    assert short.loc["cosine", "decision"] == "matches"  # above -0.2 points, the margin
    assert short.loc["linear", "knee_ahead"] == pytest.approx(-0.0055)
    assert short.loc["linear", "decision"] == "falls short"
    assert len(table) == 4  # knee at 10 and 20 epochs x cosine and linear


def test_budget_table_needs_a_swept_budget():
    rows = [trial(s, 0.98, seed, epochs=20) for s in ("knee", "cosine") for seed in SEEDS]
    assert budget_table(frame(rows, ["epochs"])).empty


def test_decay_table_against_linear():
    shapes = {"linear": 0.980, "cosine": 0.981, "1-sqrt": 0.978}
    rows = [trial("knee", acc, seed, decay=d) for d, acc in shapes.items() for seed in SEEDS]

    table = decay_table(frame(rows, ["decay"])).set_index("decay")

    assert table.loc["cosine", "ahead_of_linear"] == pytest.approx(0.001)
    assert table.loc["1-sqrt", "ahead_of_linear"] == pytest.approx(-0.002)
    assert pd.isna(table.loc["linear"].get("ahead_of_linear"))
    assert (table["n"] == 4).all()


def test_search_summary_finds_the_best_region_and_judges_the_point_near_half():
    # Accuracy peaks at explore 0.6: 0.98 - 0.05 (f - 0.6)^2, the same at every peak LR.
    points = [(0.05, 0.1), (0.2, 0.05), (0.45, 0.08), (0.57, 0.12), (0.62, 0.2), (0.9, 0.03)]
    points += [(0.3, 0.07), (0.75, 0.09)]
    rows = [
        trial("knee", 0.98 - 0.05 * (f - 0.6) ** 2, seed, explore_fraction=f, peak_lr=lr)
        for f, lr in points
        for seed in SEEDS
    ]
    runs = frame(rows, []).assign(search="optuna")

    table, summary = search_summary(runs, Policy(window=0.1, margin=0.002))

    assert is_search(runs)
    assert summary["points"] == 8
    assert summary["best_explore"] == 0.62
    assert summary["region_points"] == 2
    assert summary["region_explore"] == (0.57, 0.62)
    assert summary["region_peak_lr"] == (0.12, 0.2)
    assert summary["near_explore"] == 0.57  # the best point within 0.1 of 50%
    assert summary["outside_explore"] == 0.62  # the best point beyond it
    assert summary["gap"] == pytest.approx(0.05 * (0.03**2 - 0.02**2))  # outside's advantage
    assert summary["decision"] == "robust"
    assert table["mean"].is_monotonic_decreasing


def test_a_grid_is_not_a_search():
    rows = [
        trial("knee", 0.98, s, explore_fraction=f, peak_lr=lr)
        for f in (0.0, 0.5)
        for lr in (0.05, 0.1, 0.2, 0.4)
        for s in SEEDS
    ]
    assert not is_search(frame(rows, []))


def test_report_has_a_section_per_swept_axis(tmp_path):
    rows = [trial("knee", 0.980, s, epochs=e, decay="linear") for s in SEEDS for e in (10, 20)]
    rows += [trial("knee", 0.981, s, epochs=e, decay="cosine") for s in SEEDS for e in (10, 20)]
    rows += [trial("cosine", 0.975, s, epochs=e, decay=None) for s in SEEDS for e in (10, 20)]
    runs = frame(rows, ["epochs", "decay"])

    write_report(runs, tmp_path, "axes")

    markdown = (tmp_path / "report.md").read_text()
    assert "## Knee against baseline schedules" in markdown
    assert "+0.50 (+0.38 to +0.62)" in markdown  # knee 50% linear ahead of cosine, +-2.35*0.1/2
    assert "## Training budget" in markdown
    assert "cosine 20 epochs" in markdown
    assert "## Decay shape of the exploit phase" in markdown
    assert "+0.10 (-0.02 to +0.22)" in markdown  # cosine decay ahead of linear decay


def test_a_search_report_judges_the_point_near_half(tmp_path):
    points = [(0.05, 0.1), (0.2, 0.05), (0.45, 0.08), (0.57, 0.12), (0.62, 0.2), (0.9, 0.03)]
    rows = [
        trial("knee", 0.98 - 0.05 * (f - 0.6) ** 2, seed, explore_fraction=f, peak_lr=lr)
        for f, lr in points
        for seed in SEEDS
    ]

    verdict = write_report(frame(rows, []).assign(search="optuna"), tmp_path, "search")

    # A search has its own words: a guide, never the test's "robust".
    assert verdict.status == "near the best"
    assert verdict.explanation.startswith("Search (a guide, not a test): the best point within")
    assert "robust" not in verdict.explanation
    assert "within (explore 57%, peak LR 0.12)" in verdict.explanation
    assert "(explore 62%, peak LR 0.2)" in verdict.explanation
    assert (tmp_path / "search_landscape.png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "accuracy_vs_explore.png").exists()  # no grid, no explore curve
    assert "## Search" in (tmp_path / "report.md").read_text()


def test_one_fraction_at_many_peak_lrs_is_still_a_grid():
    """Only the trials' search tag makes a search: this grid looks like one by shape."""
    rows = [
        trial("knee", 0.98, s, explore_fraction=0.5, peak_lr=lr)
        for lr in (0.05, 0.1, 0.2, 0.4)
        for s in SEEDS
    ]
    assert not is_search(frame(rows, []).assign(search="grid"))


TEN = range(10)
TEN_EFFECTS = (0.000, 0.003, -0.002, 0.001, 0.002, -0.001, 0.0005, -0.0005, 0.0015, -0.0015)


def ten_seeds(schedule: str, accuracy: float, **params) -> list[dict]:
    return [
        {**trial(schedule, accuracy, 0, **params), "seed": s, "test_acc": accuracy + effect}
        for s, effect in zip(TEN, TEN_EFFECTS, strict=True)
    ]


@pytest.mark.parametrize(
    ("cosine", "status"), [(0.980, "matches"), (0.990, "falls short"), (0.982, "inconclusive")]
)
def test_a_schedule_study_answers_knee_against_each_baseline(tmp_path, cosine, status):
    """One explore fraction against baselines: the headline is Knee at 50% against each
    baseline (the old headline: 'INCONCLUSIVE ... no other fraction'). The paired gaps have
    no spread but the sd floor (one 0.0005 step): cosine 1 point ahead is far above the margin,
    0.2 points ahead straddles it (0.002 +- 1.83 x 0.0005 / sqrt(10))."""
    rows = ten_seeds("knee", 0.980) + ten_seeds("cosine", cosine) + ten_seeds("linear", 0.979)
    runs = frame(rows, [])

    verdict = write_report(runs, tmp_path, "schedules")

    assert verdict.kind == "schedule"
    assert verdict.status == status
    markdown = (tmp_path / "report.md").read_text()
    assert "## Does Knee at 50% explore match the baseline schedules?" in markdown
    assert f"**Verdict: {status}.**" in markdown
    assert "no other explore fraction" not in markdown
    if status == "falls short":
        assert "cosine ahead of it by 1.00 points" in verdict.explanation


def test_a_budget_study_answers_whether_the_short_budget_matches_the_full_one(tmp_path):
    rows = ten_seeds("knee", 0.980, epochs=20) + ten_seeds("knee", 0.981, epochs=40)
    rows += ten_seeds("cosine", 0.980, epochs=40) + ten_seeds("cosine", 0.97, epochs=20)
    runs = frame(rows, ["epochs"])

    verdict = write_report(runs, tmp_path, "budget")

    assert verdict.kind == "budget"
    assert verdict.status == "matches"
    assert verdict.explanation.startswith("Knee 50% 20 epochs matches every baseline at the full")
    assert (
        "## Does Knee at a shorter budget match the full one?"
        in (tmp_path / "report.md").read_text()
    )


def test_tables_follow_the_metric_direction():
    """A loss: lower is better, so Knee 0.1 below cosine is 0.1 *ahead* of it."""
    rows = [
        {**row, "test_loss": 1.0 - (0.1 if row["schedule"] == "knee" else 0.0)}
        for row in ten_seeds("knee", 0.98) + ten_seeds("cosine", 0.98)
    ]
    table = schedule_table(frame(rows, []), Policy(metric="test_loss", margin=0.01))

    assert table.set_index("schedule").loc["cosine", "knee_ahead"] == pytest.approx(0.1)
