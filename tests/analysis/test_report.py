"""analysis.report.write_report on studies written with the MLflow client and read back with
load_runs (tests/factories.py writes them), and on frames built as load_runs returns them: the
files written, summary.csv checked against numbers worked out by hand, every figure a real PNG,
the verdict and the sections each kind of study gets. What ``knee-study report`` prints, its
exit status and its options: tests/study/test_report_command.py."""

import re
import statistics

import pandas as pd
import pytest
from factories import (
    PLATEAU_FIGURES,
    PLATEAU_SEEDS,
    TEST_IMAGES,
    arm,
    grid,
    image_accuracy,
    log_curve_study,
    log_hopeless_study,
    log_plateau_study,
    log_study,
    plateau_sharpness,
    runs_frame,
    search_trials,
    split_search,
    sweep,
    tag_search,
)
from factories import plateau as plateau_accuracy
from matplotlib.image import imread

from analysis import curves
from analysis.policy import Policy
from analysis.report import FILES, verdict_line, write_report
from analysis.runs import AnalysisError, load_history, load_runs


def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def report(runs: pd.DataFrame, out, name: str = "plateau", **options):
    """write_report as ``knee-study report`` calls it (the title it gives)."""
    return write_report(runs.copy(), out, f"Knee study report: {name}", **options)


@pytest.fixture(scope="module")
def plateau(tmp_path_factory) -> pd.DataFrame:
    """factories.log_plateau_study, read back: 0%, 50% and 100% explore x peak LRs 0.05 and
    0.1 x 8 seeds, accuracies k / 540."""
    uri = store(tmp_path_factory.mktemp("store"))
    log_plateau_study(uri)
    return load_runs("plateau", uri)


def test_report_writes_every_file_and_returns_the_verdict(plateau, tmp_path):
    verdict = report(plateau, tmp_path, margin=0.002)  # robust: see below

    assert verdict.status == "robust"
    assert verdict_line(verdict).startswith("verdict: ROBUST: 50% explore is robust")
    for name in ("report.md", "report.html", "summary.csv", "runs.csv", *PLATEAU_FIGURES):
        assert (tmp_path / name).is_file(), name
    assert {p.name for p in tmp_path.iterdir()} <= set(FILES)  # the list is whole


def test_summary_csv_matches_hand_computed_values(plateau, tmp_path):
    report(plateau, tmp_path)

    summary = pd.read_csv(tmp_path / "summary.csv").set_index(["peak_lr", "explore_fraction"])

    assert len(summary) == 6
    for (peak_lr, fraction), row in summary.iterrows():
        values = [image_accuracy(fraction, peak_lr, seed) for seed in PLATEAU_SEEDS]
        sharp = [plateau_sharpness(fraction, seed) for seed in PLATEAU_SEEDS]
        assert row["test_acc_n"] == 8
        assert row["test_acc_mean"] == pytest.approx(statistics.mean(values))
        assert row["test_acc_std"] == pytest.approx(statistics.stdev(values))
        # t(0.975, df=7) = 2.364624
        half = 2.364624 * statistics.stdev(values) / 8**0.5
        assert row["test_acc_ci_high"] == pytest.approx(statistics.mean(values) + half, rel=1e-6)
        assert row["test_acc_best_seed"] == 7
        assert row["test_acc_worst_seed"] == 0
        assert row["sharpness_mean"] == pytest.approx(statistics.mean(sharp))
        # Lower sharpness is flatter, the paper's better: the best seed is the lowest (seed 0).
        assert (row["sharpness_best_seed"], row["sharpness_best"]) == (0, pytest.approx(sharp[0]))
        assert (row["sharpness_worst_seed"], row["sharpness_worst"]) == (7, pytest.approx(sharp[7]))
        assert row["test_acc_diverged"] == 0


def test_figures_are_real_pngs(plateau, tmp_path):
    report(plateau, tmp_path)

    for name in PLATEAU_FIGURES:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        height, width, _ = imread(tmp_path / name).shape
        assert height > 200, name
        assert width > 400, name


def test_html_is_self_contained_and_md_links_the_figures(plateau, tmp_path):
    report(plateau, tmp_path, margin=0.002)

    html = (tmp_path / "report.html").read_text()
    markdown = (tmp_path / "report.md").read_text()
    assert html.count('src="data:image/png;base64,') == len(PLATEAU_FIGURES)
    assert 'src="accuracy' not in html
    for name in PLATEAU_FIGURES:
        assert f"]({name})" in markdown
    assert "**Verdict: robust.**" in markdown
    assert "one of 540 test images" in markdown  # the resolution the verdict had


# The gap 100% - 50% in images per seed is 0, 1, 0, 0, 0, 0, 0, 0: mean 1/4320, sd 0.354/540,
# taken as at least one image (1/540): its 90% paired t interval is mean +- t(0.95, df=7)
# 1.894579 * (1/540) / sqrt(8) = [-0.001009, 0.001472]. 0% - 50% is -2, -1, -2, ... images:
# upper bound -0.00223. Robust needs every upper bound below the margin: yes at 0.2 points, not
# at 0.1 (nor is any lower bound above it: inconclusive).
@pytest.mark.parametrize(("margin", "status"), [(0.002, "ROBUST"), (0.001, "INCONCLUSIVE")])
def test_margin_against_the_paired_interval(plateau, tmp_path, margin, status):
    verdict = report(plateau, tmp_path, margin=margin)

    assert verdict_line(verdict).startswith(f"verdict: {status}:")
    table = pd.read_csv(tmp_path / "runs.csv")  # the verdict's inputs, as the report saw them
    assert len(table) == 48
    markdown = (tmp_path / "report.md").read_text()
    assert "-0.101 to 0.147" in markdown  # the interval, in points
    (header,) = [line for line in markdown.splitlines() if "| compared with " in line]
    assert header.startswith("|   peak LR |")  # as the other tables say it
    assert "peak_lr" not in markdown


def test_fractions_that_round_to_one_percent_get_rows_of_their_own(tmp_path):
    uri = store(tmp_path)
    fractions = [0.0, 0.002, 0.5, 0.75]
    trials = grid(explore_fraction=fractions, peak_lr=[0.05], seed=[0, 1, 2])
    for t in trials:
        t.update(schedule="knee", test_acc=0.9 + 0.01 * t["seed"], sharpness=1.0 + t["seed"])
    log_study(uri, "fine", trials)

    report(load_runs("fine", uri), tmp_path / "r", "fine")

    markdown = (tmp_path / "r" / "report.md").read_text()
    header = "explore (cells: mean ± 95% CI half-width (n))"
    rows = [line for line in markdown.splitlines() if line.startswith("| 0.2% ")]
    assert len(rows) == 2  # accuracy and sharpness tables: 0.2% apart from 0%
    assert markdown.count(f"| {header}") == 2
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert sorted(summary["explore_fraction"]) == fractions


def test_runs_without_test_acc_are_refused_before_anything_is_written(tmp_path):
    uri = store(tmp_path)
    trials = grid(explore_fraction=[0.0, 0.5], peak_lr=[0.05], seed=[0, 1, 2])
    for t in trials:
        t.update(schedule="knee", sharpness=1.0, trial_seconds=3.0)
    log_study(uri, "noacc", trials)

    with pytest.raises(
        AnalysisError, match="no test_acc metric; metrics found: sharpness, trial_seconds"
    ):
        report(load_runs("noacc", uri), tmp_path / "r", "noacc")
    assert not (tmp_path / "r").exists()


def test_study_without_a_usable_trial_gets_a_short_inconclusive_report(tmp_path):
    uri = store(tmp_path)
    log_hopeless_study(uri)

    verdict = report(load_runs("hopeless", uri), tmp_path / "r", "hopeless")

    assert verdict_line(verdict).startswith(
        "verdict: INCONCLUSIVE: 50% explore: inconclusive, no usable trials"
    )
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert (
        "8 trials: 0 finished, 5 diverged, 0 stopped early by the scheduler, 3 failed, killed "
        "or still running." in markdown
    )
    runs = pd.read_csv(tmp_path / "r" / "runs.csv")
    assert len(runs) == 8
    assert all(run_id in markdown for run_id in runs["run_id"])  # the left-out trials table
    assert (tmp_path / "r" / "report.html").is_file()


def test_a_report_written_over_another_leaves_none_of_its_files(plateau, tmp_path):
    """The figures and summary of a full report do not survive under a later inconclusive one;
    files that are not a report's stay."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    report(plateau, out)
    assert (out / "summary.csv").is_file()
    uri = store(tmp_path)
    log_hopeless_study(uri)

    report(load_runs("hopeless", uri), out, "hopeless")

    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "report.html",
        "report.md",
        "runs.csv",
    ]
    assert len(pd.read_csv(out / "runs.csv")) == 8  # the hopeless study's, not the plateau's


@pytest.mark.parametrize(
    ("last", "seeds"), [(3, "each over 3 usable seeds"), (1, "each over 1 to 3 usable seeds")]
)
def test_search_report_says_its_own_method_and_the_seeds_it_had(tmp_path, last, seeds):
    uri = store(tmp_path)
    log_study(uri, "search", search_trials(last))
    tag_search(uri, "search")

    report(load_runs("search", uri), tmp_path / "r", "search")

    assert {p.name for p in (tmp_path / "r").iterdir()} <= set(FILES)
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "## Search" in markdown
    assert f"8 points, {seeds}" in markdown
    assert "every seed" not in markdown
    assert "Method: the search ran each suggested point" in markdown
    assert "the best explore fraction's mean" not in markdown  # the grid's method
    (header,) = [line for line in markdown.splitlines() if line.startswith("| explore ")]
    assert "mean (%)" in header
    assert "std (%)" in header


def test_schedule_table_says_its_plus_minus_is_a_std(tmp_path):
    uri = store(tmp_path)
    knee = grid(explore_fraction=[0.0, 0.5], peak_lr=[0.05], seed=[0, 1, 2])
    cosine = grid(explore_fraction=[None], peak_lr=[0.05], seed=[0, 1, 2])
    for t in knee:
        t.update(schedule="knee", test_acc=0.9 + 0.01 * t["seed"])
    for t in cosine:
        t.update(schedule="cosine", test_acc=0.89 + 0.01 * t["seed"])
    log_study(uri, "baselines", knee + cosine)

    report(load_runs("baselines", uri), tmp_path / "r", "baselines")

    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "| test accuracy (%): mean ± std (n) " in markdown
    assert "| explore (cells: mean ± 95% CI half-width (n)) " in markdown


@pytest.mark.parametrize("schedules", [["cosine"], ["cosine", "linear"]])
def test_a_study_of_baselines_alone_gets_an_inconclusive_report(tmp_path, schedules):
    """No Knee trial, so no explore fraction to judge: the verdict says so, and the report keeps
    what applies (the schedules side by side, sharpness against accuracy)."""
    uri = store(tmp_path)
    trials = grid(explore_fraction=[None], peak_lr=[0.05], seed=[0, 1, 2], schedule=schedules)
    for t in trials:
        t["test_acc"] = (530 + t["seed"] + (t["schedule"] == "linear")) / TEST_IMAGES
        t["sharpness"] = 1.0 + t["seed"]
    log_study(uri, "baselines", trials)

    verdict = report(load_runs("baselines", uri), tmp_path / "r", "baselines")

    assert verdict_line(verdict).startswith(
        "verdict: INCONCLUSIVE: 50% explore: inconclusive, no Knee trials to judge (50% explore "
        "was not run"
    )
    written = {p.name for p in (tmp_path / "r").iterdir()}
    assert written == {"report.md", "report.html", "runs.csv", "sharpness_vs_accuracy.png"}
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "## Accuracy against explore fraction" not in markdown
    assert "## Sharpness and accuracy" in markdown
    assert "## Baseline schedules" in markdown
    # cosine: 530-532 of 540 images, linear: 531-533: means 98.33% and 98.52%, sd one image.
    assert "| cosine     | 98.33 ± 0.19 (n=3) " in markdown
    assert ("| linear     | 98.52 ± 0.19 (n=3) " in markdown) == (len(schedules) == 2)


@pytest.fixture(scope="module")
def curve_study(tmp_path_factory) -> str:
    """factories.log_curve_study: the plateau's fractions and peak LRs, seeds 0-3 finished with
    three epochs of history, seed 4 diverged everywhere."""
    uri = store(tmp_path_factory.mktemp("curves"))
    log_curve_study(uri)
    return uri


def test_report_draws_learning_curves_from_the_finished_trials_history(curve_study, tmp_path):
    runs = load_runs("curves", curve_study)
    needed = curves.needed(runs)
    history = load_history(None, curve_study, runs=needed, metrics=curves.METRICS)

    report(runs, tmp_path, "curves", history=history)

    assert len(needed) == 24  # the 24 finished trials, not the 6 diverged
    for name in ("learning_curves.png", "distributions.png"):
        assert imread(tmp_path / name).shape[0] > 400, name
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert markdown.index("## Learning curves") < markdown.index("## Distributions over seeds")
    assert markdown.index("## How much the explore fraction matters") < markdown.index(
        "## Learning curves"
    )
    assert "](learning_curves.png)" in markdown
    assert "](distributions.png)" in markdown
    assert html.count('src="data:image/png;base64,') == markdown.count("](")
    assert 'alt="test accuracy, training loss and LR against epoch' in html


def test_report_without_history_has_distributions_but_no_learning_curves(curve_study, tmp_path):
    runs = load_runs("curves", curve_study)

    write_report(runs, tmp_path, "no history")

    assert not (tmp_path / "learning_curves.png").exists()
    assert (tmp_path / "distributions.png").is_file()
    markdown = (tmp_path / "report.md").read_text()
    assert "## Learning curves" not in markdown
    assert "## Distributions over seeds" in markdown


# Schedule, budget, decay and search studies, built as load_runs returns them (factories.arm:
# each seed's effect shared by every arm, so paired gaps have no spread of their own).


def test_report_has_a_section_per_swept_axis(tmp_path):
    rows = [
        *(t for e in (10, 20) for t in arm("knee", 0.980, epochs=e, decay="linear")),
        *(t for e in (10, 20) for t in arm("knee", 0.981, epochs=e, decay="cosine")),
        *(t for e in (10, 20) for t in arm("cosine", 0.975, epochs=e, decay=None)),
    ]

    write_report(runs_frame(rows), tmp_path, "axes")

    markdown = (tmp_path / "report.md").read_text()
    assert "## Knee against baseline schedules" in markdown
    assert "+0.50 (+0.38 to +0.62)" in markdown  # knee 50% linear ahead of cosine, +-2.35*0.1/2
    assert "## Training budget" in markdown
    assert "cosine 20 epochs" in markdown
    assert "## Decay shape of the exploit phase" in markdown
    assert "+0.10 (-0.02 to +0.22)" in markdown  # cosine decay ahead of linear decay


SEARCH_POINTS = [(0.05, 0.1), (0.2, 0.05), (0.45, 0.08), (0.57, 0.12), (0.62, 0.2), (0.9, 0.03)]


def test_a_search_report_judges_the_point_near_half(tmp_path):
    # Accuracy peaks at explore 0.6: 0.98 - 0.05 (f - 0.6)^2, the same at every peak LR.
    rows = [
        t
        for f, lr in SEARCH_POINTS
        for t in arm("knee", 0.98 - 0.05 * (f - 0.6) ** 2, explore_fraction=f, peak_lr=lr)
    ]

    verdict = write_report(runs_frame(rows).assign(search="optuna"), tmp_path, "search")

    # A search has its own words: a guide, never the test's "robust".
    assert verdict.status == "near the best"
    assert verdict.explanation.startswith("Search (a guide, not a test): the best point within")
    assert "robust" not in verdict.explanation
    assert "within (explore 57%, peak LR 0.12)" in verdict.explanation
    assert "(explore 62%, peak LR 0.2)" in verdict.explanation
    assert (tmp_path / "search_landscape.png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "accuracy_vs_explore.png").exists()  # no grid, no explore curve
    assert "## Search" in (tmp_path / "report.md").read_text()


def ten_seeds(schedule: str, accuracy: float, **params) -> list[dict]:
    return arm(schedule, accuracy, seeds=10, **params)


@pytest.mark.parametrize(
    ("cosine", "status"), [(0.980, "matches"), (0.990, "falls short"), (0.982, "inconclusive")]
)
def test_a_schedule_study_answers_knee_against_each_baseline(tmp_path, cosine, status):
    """One explore fraction against baselines: the headline is Knee at 50% against each
    baseline (the old headline: 'INCONCLUSIVE ... no other fraction'). The paired gaps have
    no spread but the sd floor (one 0.0005 step): cosine 1 point ahead is far above the margin,
    0.2 points ahead straddles it (0.002 +- 1.83 x 0.0005 / sqrt(10))."""
    rows = ten_seeds("knee", 0.980) + ten_seeds("cosine", cosine) + ten_seeds("linear", 0.979)

    verdict = write_report(runs_frame(rows), tmp_path, "schedules")

    assert verdict.kind == "schedule"
    assert verdict.status == status
    markdown = (tmp_path / "report.md").read_text()
    assert "## Does Knee at 50% explore match the baseline schedules?" in markdown
    assert f"**Verdict: {status}.**" in markdown
    assert "no other explore fraction" not in markdown
    if status == "falls short":
        assert "cosine ahead of it by 1.00 points" in verdict.explanation


@pytest.mark.parametrize("unit", ["epochs", "steps"])  # steps: a language model's budget
def test_a_budget_study_answers_whether_the_short_budget_matches_the_full_one(tmp_path, unit):
    rows = ten_seeds("knee", 0.980, **{unit: 20}) + ten_seeds("knee", 0.981, **{unit: 40})
    rows += ten_seeds("cosine", 0.980, **{unit: 40}) + ten_seeds("cosine", 0.97, **{unit: 20})

    verdict = write_report(runs_frame(rows), tmp_path, "budget")

    assert verdict.kind == "budget"
    assert verdict.status == "matches"
    assert verdict.explanation.startswith(f"Knee 50% 20 {unit} matches every baseline at the full")
    markdown = (tmp_path / "report.md").read_text()
    assert "## Does Knee at a shorter budget match the full one?" in markdown
    assert f"| knee 50% 20 {unit} |" in markdown  # the budget table, in the study's unit


# A user-chosen objective: val_loss, lower is better, margin 0.01 (in val_loss, not points).
LOSS = Policy(metric="val_loss", mode="min", margin=0.01)


def val_loss(worse: float):
    """1 - factories.plateau: 0.05 at 0% explore, 0.02 from 25% on, the seed's shift (seed 1
    the lowest loss, seed 4 the highest) and a jitter of at most 0.0002; ``worse`` at 50%."""
    return lambda f, lr, s: 1 - plateau_accuracy(f, s) + (worse if f == 0.5 else 0.0)


def objective_part(markdown: str) -> str:
    """The report's words before its sharpness sections (which stay in sharpness's own), the
    figures' file names left out (fixed whatever the metric: accuracy_vs_explore.png)."""
    words = markdown.split("## Sharpness against explore fraction")[0]
    return re.sub(r"\]\([a-z_]+\.png\)", "]", words)


def test_a_val_loss_report_is_in_val_loss_throughout(tmp_path):
    runs = sweep(val_loss(0.0), metric="val_loss")  # no test_acc at all

    verdict = write_report(runs, tmp_path, "loss", policy=LOSS)

    assert verdict.status == "robust"
    assert verdict_line(verdict).startswith(
        "verdict: ROBUST: 50% explore is robust: at every peak LR (2) no other explore fraction "
        "beats it by more than 0.01 in val_loss"
    )
    markdown = (tmp_path / "report.md").read_text()
    for words in (
        "Margin: 0.01 of val_loss (val_loss, lower is better).",
        "## val_loss against explore fraction",
        "![val_loss vs explore fraction](accuracy_vs_explore.png)",
        "val_loss (lower is better): mean ± 95% CI half-width over seeds",
        " its mean (val_loss) |",
        " ahead of it (val_loss) |",
        " range (val_loss) |",
        "![final val_loss and sharpness over seeds per explore fraction](distributions.png)",
    ):
        assert words in markdown, words
    # 50% at peak LR 0.05 over seeds 0-9: mean 0.01995, sd 0.0026513, so a 95% half-width of
    # t(0.975, df=9) 2.262157 * 0.0026513 / sqrt(10) = 0.0018966: 4 significant digits each.
    assert "| 50%  " in markdown
    assert "0.01995 ± 0.001897 (n=10)" in markdown
    said = objective_part(markdown)
    for wrong in ("accuracy", "points", "(%)", "in percent", "test images", "steps of"):
        assert wrong not in said, wrong


def test_a_val_loss_reports_summary_csv_is_the_loss_best_seed_lowest(tmp_path):
    runs = sweep(val_loss(0.0), metric="val_loss")

    write_report(runs, tmp_path, "loss", policy=LOSS)

    summary = pd.read_csv(tmp_path / "summary.csv").set_index(["peak_lr", "explore_fraction"])
    assert not [c for c in summary if c.startswith("test_acc")]
    assert len(summary) == 10
    for (_, fraction), row in summary.iterrows():
        values = [1 - plateau_accuracy(fraction, seed) for seed in range(10)]
        assert row["val_loss_mean"] == pytest.approx(statistics.mean(values))
        assert row["val_loss_std"] == pytest.approx(statistics.stdev(values))
        assert (row["val_loss_best_seed"], row["val_loss_worst_seed"]) == (1, 4)
        assert row["val_loss_best"] == pytest.approx(min(values))
        assert "sharpness_mean" in row


def test_a_val_loss_clearly_worse_at_half_is_reported_not_robust(tmp_path):
    runs = sweep(val_loss(0.05), metric="val_loss")

    verdict = write_report(runs, tmp_path, "loss", policy=LOSS)

    assert verdict_line(verdict).startswith(
        "verdict: NOT ROBUST: 50% explore is not robust at peak LR 0.05 (25% ahead of it by 0.05"
    )
    markdown = (tmp_path / "report.md").read_text()
    assert "**Verdict: not robust.**" in markdown
    assert "points" not in objective_part(markdown)


def test_an_accuracy_objective_on_the_validation_split_says_its_images(tmp_path):
    runs = sweep(lambda f, lr, s: (530 + s) / TEST_IMAGES, metric="val_acc")

    write_report(runs, tmp_path, "val", policy=Policy(metric="val_acc"))

    markdown = (tmp_path / "report.md").read_text()
    assert "Accuracy moves in steps of 0.185 points (one of 540 validation images)." in markdown
    assert "Validation accuracy in percent: mean ± 95% CI" in markdown
    assert "## Accuracy against explore fraction" in markdown


def test_a_schedule_study_of_val_loss_says_knee_ahead_in_val_loss(tmp_path):
    """Knee 0.01 below cosine every seed: 0.01 ahead. Knee's mean is 0.30 plus the mean of the
    ten seed effects (0.0003), its sd theirs (0.0016021)."""
    rows = arm("knee", 0.30, 10, metric="val_loss") + arm("cosine", 0.31, 10, metric="val_loss")

    verdict = write_report(runs_frame(rows), tmp_path, "schedules", policy=LOSS)

    assert verdict.status == "matches"
    markdown = (tmp_path / "report.md").read_text()
    assert (
        "val_loss per schedule (Knee at 50% explore), mean ± std over seeds, and how far Knee "
        "is ahead of each baseline in val_loss with its 90% interval (positive: Knee is "
        "better, a lower val_loss)." in markdown
    )
    assert "| val_loss (lower is better): mean ± std (n) " in markdown
    assert "| 0.3003 ± 0.001602 (n=10) " in markdown
    assert "| +0.01000 (" in markdown
    assert "points" not in objective_part(markdown)


def test_a_search_report_says_validation_accuracy_chose_its_points(tmp_path):
    """factories.split_search: validation accuracy's best point is 20% explore at peak LR 0.05,
    whose test accuracy is 0.98 - 0.05 * 0.4^2 + 0.0005 = 97.25%."""
    write_report(split_search(), tmp_path, "search")

    markdown = (tmp_path / "report.md").read_text()
    assert "Points are ranked and chosen by mean val_acc, so choosing never sees" in markdown
    assert "The best quarter (by mean val_acc) (1 points)" in markdown
    assert "the best point: explore 20%, peak LR 0.05, test accuracy 97.25%." in markdown
    (header,) = [line for line in markdown.splitlines() if line.startswith("| explore ")]
    assert " mean (%) |" in header
    assert " val_acc mean (%) |" in header
    assert "(points chosen by val_acc, compared on test_acc)" in markdown


def test_a_study_whose_trials_all_finished_leaves_none_out(plateau, tmp_path):
    """Every trial of the plateau study finished: no table of left-out trials (pandas, asked to
    assign a column to no rows, once filled one with every trial, all NaN)."""
    report(plateau, tmp_path)

    markdown = (tmp_path / "report.md").read_text()
    assert "## Trials left out of the means" not in markdown
    assert "nan" not in markdown


def test_an_accuracy_report_keeps_percent_and_points(plateau, tmp_path):
    """The default objective, test accuracy, in percent and points as before objectives."""
    report(plateau, tmp_path)

    markdown = (tmp_path / "report.md").read_text()
    for words in (
        "Margin: 0.20 accuracy points (test_acc, higher is better).",
        "## Accuracy against explore fraction",
        "Test accuracy in percent: mean ± 95% CI half-width over seeds (n usable seeds).",
        " its mean (%) |",
        " ahead of it (points) |",
        "Range: best minus worst explore fraction's mean test accuracy, in points.",
        " range (points) |",
    ):
        assert words in markdown, words
