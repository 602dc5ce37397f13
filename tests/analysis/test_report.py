"""`knee-study report` on experiments written with the MLflow client: the verdict printed, the
files written, summary.csv checked against numbers worked out by hand, every figure a real PNG."""

import statistics
from typing import ClassVar

import pandas as pd
import pytest
from fake_studies import grid, log_study
from matplotlib.image import imread
from mlflow import MlflowClient

from analysis import report as report_module
from study import folder
from study.cli import EXIT_BAD_INPUT, main
from study.config import load_config

FIGURES = (
    "accuracy_vs_explore.png",
    "sharpness_vs_explore.png",
    "sharpness_vs_accuracy.png",
    "accuracy_heatmap.png",
    "distributions.png",  # the plateau study has no per-epoch history: no learning curves
)
TEST_IMAGES = 540  # accuracies are k / 540, as on the digits test split


def accuracy(fraction: float, peak_lr: float, seed: int) -> float:
    """A plateau from 50% explore on, one image per seed of spread, 0% two images worse, and 50%
    one image short of 100% at seed 1: per seed, 100% minus 50% is 0, 1, 0, 0 images."""
    correct = 530 + seed - (2 if fraction == 0 else 0) - (peak_lr == 0.1)
    correct -= fraction == 0.5 and seed == 1
    return correct / TEST_IMAGES


SEEDS = range(8)  # robust needs 7 or more: fewer cannot rule out a 30% excess of divergence


@pytest.fixture(scope="module")
def plateau_study(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    trials = grid(explore_fraction=[0.0, 0.5, 1.0], peak_lr=[0.05, 0.1], seed=list(SEEDS))
    for t in trials:
        t.update(schedule="knee", epochs=20)
        t["test_acc"] = accuracy(t["explore_fraction"], t["peak_lr"], t["seed"])
        t["sharpness"] = 1.0 + 2.0 * t["explore_fraction"] + 0.1 * t["seed"]
    log_study(uri, "plateau", trials)
    return uri


def report(uri: str, out, *extra: str) -> int:
    return main(
        ["report", "--experiment", "plateau", "--tracking-uri", uri, "--out", str(out), *extra]
    )


def test_report_prints_the_verdict_and_writes_every_file(plateau_study, tmp_path, capsys):
    assert report(plateau_study, tmp_path, "--margin", "0.002") == 0  # robust: see below

    out = capsys.readouterr().out
    assert "verdict: ROBUST: 50% explore is robust" in out
    assert str(tmp_path / "report.html") in out
    for name in ("report.md", "report.html", "summary.csv", "runs.csv", *FIGURES):
        assert (tmp_path / name).is_file(), name
    assert {p.name for p in tmp_path.iterdir()} <= set(report_module.FILES)  # the list is whole


def test_summary_csv_matches_hand_computed_values(plateau_study, tmp_path):
    report(plateau_study, tmp_path)

    summary = pd.read_csv(tmp_path / "summary.csv").set_index(["peak_lr", "explore_fraction"])

    assert len(summary) == 6
    for (peak_lr, fraction), row in summary.iterrows():
        values = [accuracy(fraction, peak_lr, seed) for seed in SEEDS]
        sharp = [1.0 + 2.0 * fraction + 0.1 * seed for seed in SEEDS]
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


def test_figures_are_real_pngs(plateau_study, tmp_path):
    report(plateau_study, tmp_path)

    for name in FIGURES:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        height, width, _ = imread(tmp_path / name).shape
        assert height > 200, name
        assert width > 400, name


def test_html_is_self_contained_and_md_links_the_figures(plateau_study, tmp_path):
    report(plateau_study, tmp_path, "--margin", "0.002")

    html = (tmp_path / "report.html").read_text()
    markdown = (tmp_path / "report.md").read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert 'src="accuracy' not in html
    for name in FIGURES:
        assert f"]({name})" in markdown
    assert "**Verdict: robust.**" in markdown
    assert "one of 540 test images" in markdown  # the resolution the verdict had


# The gap 100% - 50% in images per seed is 0, 1, 0, 0, 0, 0, 0, 0: mean 1/4320, sd 0.354/540,
# taken as at least one image (1/540): its 90% paired t interval is mean +- t(0.95, df=7)
# 1.894579 * (1/540) / sqrt(8) = [-0.001009, 0.001472]. 0% - 50% is -2, -1, -2, ... images:
# upper bound -0.00223. Robust needs every upper bound below the margin: yes at 0.2 points, not
# at 0.1 (nor is any lower bound above it: inconclusive).
@pytest.mark.parametrize(("margin", "status"), [("0.002", "ROBUST"), ("0.001", "INCONCLUSIVE")])
def test_margin_against_the_paired_interval(plateau_study, tmp_path, capsys, margin, status):
    assert report(plateau_study, tmp_path, "--margin", margin) == 0

    assert f"verdict: {status}:" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "runs.csv")  # the verdict's inputs, as the report saw them
    assert len(table) == 48
    markdown = (tmp_path / "report.md").read_text()
    assert "-0.101 to 0.147" in markdown  # the interval, in points
    (header,) = [line for line in markdown.splitlines() if "| compared with " in line]
    assert header.startswith("|   peak LR |")  # as the other tables say it
    assert "peak_lr" not in markdown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--experiment", "nope"], "no MLflow experiment named 'nope'"),
        (["--experiment", "Default"], "experiment 'Default' has no runs"),
        (["--experiment", "plateau", "--margin", "0"], "--margin"),
        (["--experiment", "plateau", "--fraction", "1.5"], "--fraction"),
        ([], "name a study folder, or --experiment and --tracking-uri"),
    ],
)
def test_bad_report_input_exits_2_with_one_line(
    plateau_study, argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = ["--tracking-uri", plateau_study] if argv else []

    assert main(["report", *argv, *uri, "--out", str(tmp_path / "r")]) == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "r").exists()


def test_experiment_without_sweep_params_lists_what_it_found(tmp_path, capsys):
    from mlflow import MlflowClient
    from mlflow.entities import Param

    uri = f"sqlite:///{tmp_path / 'other.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("other"))
    client.log_batch(run.info.run_id, params=[Param("lr", "0.1"), Param("depth", "3")])

    code = main(
        ["report", "--experiment", "other", "--tracking-uri", uri, "--out", str(tmp_path / "r")]
    )

    assert code == EXIT_BAD_INPUT
    assert "params found: depth, lr" in capsys.readouterr().err


def report_of(uri: str, name: str, out) -> int:
    return main(["report", "--experiment", name, "--tracking-uri", uri, "--out", str(out)])


def test_fractions_that_round_to_one_percent_get_rows_of_their_own(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fractions = [0.0, 0.002, 0.5, 0.75]
    trials = grid(explore_fraction=fractions, peak_lr=[0.05], seed=[0, 1, 2])
    for t in trials:
        t.update(schedule="knee", test_acc=0.9 + 0.01 * t["seed"], sharpness=1.0 + t["seed"])
    log_study(uri, "fine", trials)

    assert report_of(uri, "fine", tmp_path / "r") == 0

    markdown = (tmp_path / "r" / "report.md").read_text()
    header = "explore (cells: mean ± 95% CI half-width (n))"
    rows = [line for line in markdown.splitlines() if line.startswith("| 0.2% ")]
    assert len(rows) == 2  # accuracy and sharpness tables: 0.2% apart from 0%
    assert markdown.count(f"| {header}") == 2
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert sorted(summary["explore_fraction"]) == fractions


def test_runs_without_test_acc_exit_2_before_writing(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = grid(explore_fraction=[0.0, 0.5], peak_lr=[0.05], seed=[0, 1, 2])
    for t in trials:
        t.update(schedule="knee", sharpness=1.0, trial_seconds=3.0)
    log_study(uri, "noacc", trials)
    capsys.readouterr()  # MLflow's own lines as it creates the store

    assert report_of(uri, "noacc", tmp_path / "r") == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "no test_acc metric; metrics found: sharpness, trial_seconds" in err
    assert not (tmp_path / "r").exists()


def hopeless_study(uri: str) -> None:
    """Eight trials, none usable: five diverged, three failed."""
    trials = grid(explore_fraction=[0.0, 0.5], peak_lr=[0.05, 0.1], seed=[0, 1])
    for i, t in enumerate(trials):
        t.update(schedule="knee", test_acc=0.1)
        if i < 5:
            t["diverged"] = True  # a diverged trial still reports its last finite epoch
        else:
            t["status"] = "FAILED"
    log_study(uri, "hopeless", trials)


def test_study_without_a_usable_trial_gets_a_short_inconclusive_report(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    hopeless_study(uri)

    assert report_of(uri, "hopeless", tmp_path / "r") == 0

    assert "verdict: INCONCLUSIVE: 50% explore: inconclusive, no usable trials" in (
        capsys.readouterr().out
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


def test_a_report_written_over_another_leaves_none_of_its_files(plateau_study, tmp_path, capsys):
    """The figures and summary of a full report do not survive under a later inconclusive one;
    files that are not a report's stay."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert report(plateau_study, out) == 0
    assert (out / "summary.csv").is_file()
    hopeless = f"sqlite:///{tmp_path / 'hopeless.db'}"
    hopeless_study(hopeless)

    assert report_of(hopeless, "hopeless", out) == 0

    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "report.html",
        "report.md",
        "runs.csv",
    ]
    assert len(pd.read_csv(out / "runs.csv")) == 8  # the hopeless study's, not the plateau's


def search_trials(seeds_at_last: int) -> list[dict]:
    """Eight search points, each its own explore fraction and peak LR, three seeds each but the
    last point; the best point (95%) at 55% explore."""
    points = [(0.05 + 0.1 * i, 0.01 * (i + 1)) for i in range(8)]
    trials = []
    for i, (fraction, peak_lr) in enumerate(points):
        for seed in range(3 if i < 7 else seeds_at_last):
            accuracy = 0.95 - abs(fraction - 0.55) * 0.1 + 0.001 * seed
            trials.append(
                dict(explore_fraction=fraction, peak_lr=peak_lr, seed=seed, test_acc=accuracy)
            )
    for t in trials:
        t.update(schedule="knee")
    return trials


def tag_search(uri: str, name: str) -> None:
    """Tag every trial of experiment ``name`` as an Optuna study's, as knee-study run does."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name).experiment_id
    for run in client.search_runs([experiment], "tags.`mlflow.parentRunId` != ''"):
        client.set_tag(run.info.run_id, "search", "optuna")


@pytest.mark.parametrize(
    ("last", "seeds"), [(3, "each over 3 usable seeds"), (1, "each over 1 to 3 usable seeds")]
)
def test_search_report_says_its_own_method_and_the_seeds_it_had(tmp_path, last, seeds):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_study(uri, "search", search_trials(last))
    tag_search(uri, "search")

    assert report_of(uri, "search", tmp_path / "r") == 0

    assert {p.name for p in (tmp_path / "r").iterdir()} <= set(report_module.FILES)
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
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    knee = grid(explore_fraction=[0.0, 0.5], peak_lr=[0.05], seed=[0, 1, 2])
    cosine = grid(explore_fraction=[None], peak_lr=[0.05], seed=[0, 1, 2])
    for t in knee:
        t.update(schedule="knee", test_acc=0.9 + 0.01 * t["seed"])
    for t in cosine:
        t.update(schedule="cosine", test_acc=0.89 + 0.01 * t["seed"])
    log_study(uri, "baselines", knee + cosine)

    assert report_of(uri, "baselines", tmp_path / "r") == 0

    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "| test accuracy (%): mean ± std (n) " in markdown
    assert "| explore (cells: mean ± 95% CI half-width (n)) " in markdown


@pytest.mark.parametrize("schedules", [["cosine"], ["cosine", "linear"]])
def test_a_study_of_baselines_alone_gets_an_inconclusive_report(tmp_path, capsys, schedules):
    """No Knee trial, so no explore fraction to judge: the verdict says so, and the report keeps
    what applies (the schedules side by side, sharpness against accuracy)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = grid(explore_fraction=[None], peak_lr=[0.05], seed=[0, 1, 2], schedule=schedules)
    for t in trials:
        t["test_acc"] = (530 + t["seed"] + (t["schedule"] == "linear")) / TEST_IMAGES
        t["sharpness"] = 1.0 + t["seed"]
    log_study(uri, "baselines", trials)

    assert report_of(uri, "baselines", tmp_path / "r") == 0

    assert (
        "verdict: INCONCLUSIVE: 50% explore: inconclusive, no Knee trials to judge (50% explore "
        "was not run" in capsys.readouterr().out
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


class _Results(list):
    num_errors = 0


class _Result:
    error = None
    metrics: ClassVar[dict] = {"diverged": False}


@pytest.mark.parametrize(("errors", "code"), [(0, 0), (1, 1)])
def test_a_failing_report_after_a_study_keeps_its_exit_status(
    tmp_path, capsys, monkeypatch, errors, code
):
    """A bug in the report must not turn a finished study into a traceback: one line, the
    command to retry, and the study's own exit status."""
    from mlflow import MlflowClient

    import analysis.report
    from study import cli, folder
    from study.config import load_config

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = log_study(uri, "done", search_trials(3))
    experiment_id = MlflowClient(uri).get_experiment_by_name("done").experiment_id
    meta = folder.StudyMeta(uri, experiment_id, parent)
    cfg = load_config(None, ["name=done"])
    results = _Results([_Result()] * cfg.num_trials)
    results.num_errors = errors
    capsys.readouterr()  # MLflow's own lines as it creates the store

    class Tuner:
        def fit(self):
            return results

    class Ray:
        def shutdown(self):
            pass

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the report\nand its second line")

    monkeypatch.setattr(analysis.report, "write_report", broken)

    assert cli._fit(Tuner(), cfg, tmp_path / "study", meta, Ray()) == code

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("knee-study: no report: RuntimeError: a bug in the report")
    assert f"knee-study report {tmp_path / 'study'}" in err


def test_a_study_folders_report_goes_onto_its_run_only_when_it_is_the_studys(tmp_path, monkeypatch):
    """``report STUDY`` rewrites the study's report and its MLflow copy; a report of other runs
    (here another experiment in the same store) goes to ./report-NAME and onto no run."""
    monkeypatch.chdir(tmp_path)  # ./report-NAME, and MLflow's default artifact root, land here
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = grid(explore_fraction=[0.0, 0.5, 1.0], peak_lr=[0.05], seed=[0, 1, 2])
    for t in trials:
        t.update(schedule="knee", test_acc=accuracy(t["explore_fraction"], 0.05, t["seed"]))
    own_parent = log_study(uri, "own", trials)
    other_parent = log_study(uri, "other", trials)
    study = tmp_path / "study"
    folder.create(study, load_config(None, ["name=own"]))
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("own").experiment_id
    folder.write_meta(study, folder.StudyMeta(uri, experiment_id, own_parent))

    assert main(["report", str(study)]) == 0
    written = sorted(p.name for p in (study / "report").iterdir())
    attached = sorted(a.path for a in client.list_artifacts(own_parent, "report"))
    assert attached == [f"report/{name}" for name in written]

    before = {p.name: p.stat().st_mtime_ns for p in (study / "report").iterdir()}
    assert main(["report", str(study), "--experiment", "other"]) == 0
    assert (tmp_path / "report-other" / "report.md").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (study / "report").iterdir()} == before
    assert client.list_artifacts(other_parent) == []


def test_a_margin_in_points_rather_than_accuracy_units_is_pointed_out(
    plateau_study, tmp_path, capsys
):
    """--margin 0.2 (for "0.2 points") judges at 20 points: allowed, and said on stderr."""
    argv = ["--experiment", "plateau", "--tracking-uri", plateau_study, "--out", str(tmp_path)]

    assert main(["report", *argv, "--margin", "0.2"]) == 0
    assert "--margin 0.2 is 20 accuracy points" in capsys.readouterr().err
    assert main(["report", *argv, "--margin", "0.002"]) == 0
    assert "accuracy points" not in capsys.readouterr().err


CURVE_EPOCHS = 3  # the final metrics are logged at step 3 (fake_studies): the last epoch's


def epochs_of(trial: dict) -> dict[str, list[float]]:
    """Per-epoch test accuracy rising to the trial's final one, loss falling, a Knee LR
    (``trial``: its params, as log_study passes them)."""
    final = accuracy(trial["explore_fraction"], trial["peak_lr"], min(trial["seed"], 3))
    explore = trial["explore_fraction"] * CURVE_EPOCHS
    return {
        "test_acc": [final - 0.1 * (CURVE_EPOCHS - e) for e in range(1, CURVE_EPOCHS + 1)],
        "train_loss": [1.0 / e for e in range(1, CURVE_EPOCHS + 1)],
        "train_acc": [0.5] * CURVE_EPOCHS,  # logged, not drawn: the report must not fetch it
        "lr": [
            trial["peak_lr"]
            * (1 if e <= explore else (CURVE_EPOCHS - e) / (CURVE_EPOCHS - explore))
            for e in range(1, CURVE_EPOCHS + 1)
        ],
    }


@pytest.fixture(scope="module")
def curve_study(tmp_path_factory):
    """The plateau study's trials with three epochs of history each; one more seed that
    diverged at every fraction and peak LR."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('curves') / 'mlflow.db'}"
    trials = grid(explore_fraction=[0.0, 0.5, 1.0], peak_lr=[0.05, 0.1], seed=[0, 1, 2, 3, 4])
    for t in trials:
        t.update(schedule="knee", epochs=CURVE_EPOCHS, diverged=t["seed"] == 4)
        t["test_acc"] = accuracy(t["explore_fraction"], t["peak_lr"], min(t["seed"], 3))
        t["sharpness"] = 1.0 + 2.0 * t["explore_fraction"] + 0.1 * t["seed"]
    log_study(uri, "curves", trials, history=epochs_of)
    return uri


def test_report_draws_learning_curves_from_the_finished_trials_history(
    curve_study, tmp_path, monkeypatch
):
    import analysis.runs

    fetched = []
    load_history = analysis.runs.load_history

    def recording(*args, **kwargs):
        fetched.append(kwargs)
        return load_history(*args, **kwargs)

    monkeypatch.setattr(analysis.runs, "load_history", recording)

    assert report_of(curve_study, "curves", tmp_path) == 0

    # Only what the figure draws: the 24 finished trials (not the 6 diverged), 3 metrics.
    (call,) = fetched
    assert call["metrics"] == ("test_acc", "train_loss", "lr")
    assert len(call["runs"]) == 24
    assert not call["runs"]["diverged"].any()
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
    from analysis.runs import load_runs

    runs = load_runs("curves", curve_study)

    report_module.write_report(runs, tmp_path, "no history")

    assert not (tmp_path / "learning_curves.png").exists()
    assert (tmp_path / "distributions.png").is_file()
    markdown = (tmp_path / "report.md").read_text()
    assert "## Learning curves" not in markdown
    assert "## Distributions over seeds" in markdown
