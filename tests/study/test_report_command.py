"""`knee-study report` as a user runs it, through ``study.cli.main``: its exit status, what it
prints (where the report is, the verdict line), its one line on stderr for bad input, the
options it checks (--margin, --fraction, --out, --parent-run), which report folder it writes
and which MLflow run it attaches it to, and what history it fetches. The report's content is
analysis.report.write_report's, tested in tests/analysis/test_report.py on the same studies
(tests/factories.py writes them into MLflow)."""

import pandas as pd
import pytest
from factories import (
    PLATEAU_FIGURES,
    PLATEAU_SEEDS,
    experiment_id,
    grid,
    image_accuracy,
    log_curve_study,
    log_hopeless_study,
    log_plateau_study,
    log_study,
    search_trials,
)
from matplotlib.image import imread
from mlflow import MlflowClient
from mlflow.entities import Param

from analysis import report as report_module
from study import folder
from study.cli import EXIT_BAD_INPUT, main
from study.config import load_config


@pytest.fixture(scope="module")
def plateau_study(tmp_path_factory):
    """factories.log_plateau_study: robust at a 0.2-point margin, inconclusive at 0.1."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    log_plateau_study(uri)
    return uri


def report(uri: str, out, *extra: str) -> int:
    return main(
        ["report", "--experiment", "plateau", "--tracking-uri", uri, "--out", str(out), *extra]
    )


def report_of(uri: str, name: str, out) -> int:
    return main(["report", "--experiment", name, "--tracking-uri", uri, "--out", str(out)])


def test_report_prints_the_verdict_and_writes_every_file(plateau_study, tmp_path, capsys):
    assert report(plateau_study, tmp_path, "--margin", "0.002") == 0  # robust: see below

    out = capsys.readouterr().out
    assert "verdict: ROBUST: 50% explore is robust" in out
    assert str(tmp_path / "report.html") in out
    assert f"report of {3 * 2 * len(PLATEAU_SEEDS)} trials" in out
    for name in ("report.md", "report.html", "summary.csv", "runs.csv", *PLATEAU_FIGURES):
        assert (tmp_path / name).is_file(), name
    assert {p.name for p in tmp_path.iterdir()} <= set(report_module.FILES)  # the list is whole


# The interval behind these verdicts is worked out in tests/analysis/test_report.py: robust at
# a 0.2-point margin, not at 0.1. The command passes --margin on to the verdict it prints.
@pytest.mark.parametrize(("margin", "status"), [("0.002", "ROBUST"), ("0.001", "INCONCLUSIVE")])
def test_margin_decides_the_verdict_printed(plateau_study, tmp_path, capsys, margin, status):
    assert report(plateau_study, tmp_path, "--margin", margin) == 0

    assert f"verdict: {status}:" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 48


def test_fraction_names_the_fraction_judged(plateau_study, tmp_path, capsys):
    assert report(plateau_study, tmp_path, "--fraction", "1.0") == 0

    assert "verdict: " in (out := capsys.readouterr().out)
    assert "100% explore" in out
    assert "50% explore" not in out


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


def test_an_out_that_is_a_file_exits_2_and_leaves_it(plateau_study, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine")

    assert report(plateau_study, out) == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--out: {out} is a file" in err
    assert out.read_text() == "mine"


def test_experiment_without_sweep_params_lists_what_it_found(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("other"))
    client.log_batch(run.info.run_id, params=[Param("lr", "0.1"), Param("depth", "3")])

    code = main(
        ["report", "--experiment", "other", "--tracking-uri", uri, "--out", str(tmp_path / "r")]
    )

    assert code == EXIT_BAD_INPUT
    assert "params found: depth, lr" in capsys.readouterr().err


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


def test_a_study_without_a_usable_trial_exits_0_with_an_inconclusive_verdict(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_hopeless_study(uri)

    assert report_of(uri, "hopeless", tmp_path / "r") == 0

    assert "verdict: INCONCLUSIVE: 50% explore: inconclusive, no usable trials" in (
        capsys.readouterr().out
    )
    assert (tmp_path / "r" / "report.html").is_file()


def test_a_study_of_baselines_alone_exits_0_saying_there_is_nothing_to_judge(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = grid(explore_fraction=[None], peak_lr=[0.05], seed=[0, 1, 2], schedule=["cosine"])
    for t in trials:
        t.update(test_acc=0.9 + 0.01 * t["seed"], sharpness=1.0 + t["seed"])
    log_study(uri, "baselines", trials)

    assert report_of(uri, "baselines", tmp_path / "r") == 0

    assert (
        "verdict: INCONCLUSIVE: 50% explore: inconclusive, no Knee trials to judge (50% explore "
        "was not run" in capsys.readouterr().out
    )


def test_a_report_of_a_shared_experiment_names_its_studies(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = grid(explore_fraction=[0.5], peak_lr=[0.1], seed=[0], test_acc=[0.9])
    first = log_study(uri, "two-studies", trials)
    client = MlflowClient(uri)
    experiment = experiment_id(uri, "two-studies")
    second = client.create_run(experiment)
    child = client.create_run(experiment, tags={"mlflow.parentRunId": second.info.run_id})
    params = {"explore_fraction": 0.5, "peak_lr": 0.1, "seed": 0}
    client.log_batch(child.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    args = ["report", "--experiment", "two-studies", "--tracking-uri", uri]

    assert main([*args, "--out", str(tmp_path / "a")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "holds 2 studies" in err
    assert first in err
    assert main([*args, "--out", str(tmp_path / "b"), "--parent-run", first]) == 0
    assert (tmp_path / "b" / "report.md").is_file()


def test_a_failing_report_after_a_study_is_one_line_with_the_retry_command(
    tmp_path, capsys, monkeypatch
):
    """A bug in the report must not turn a finished study into a traceback: the report a
    study writes when it ends (study.reporting.after_study) says so in one line with the
    command that retries it, and raises nothing, so the study's outcome stands."""
    import analysis.report
    from study import reporting

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = log_study(uri, "done", search_trials(3))
    meta = folder.StudyMeta(uri, experiment_id(uri, "done"), parent)
    cfg = load_config(None, ["name=done"])
    capsys.readouterr()  # MLflow's own lines as it creates the store

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the report\nand its second line")

    monkeypatch.setattr(analysis.report, "write_report", broken)

    assert reporting.after_study(cfg, meta, tmp_path / "study") is None

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
        t.update(schedule="knee", test_acc=image_accuracy(t["explore_fraction"], 0.05, t["seed"]))
    own_parent = log_study(uri, "own", trials)
    other_parent = log_study(uri, "other", trials)
    study = tmp_path / "study"
    folder.create(study, load_config(None, ["name=own"]))
    folder.write_meta(study, folder.StudyMeta(uri, experiment_id(uri, "own"), own_parent))
    client = MlflowClient(uri)

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


def test_report_fetches_only_the_history_the_learning_curves_draw(tmp_path, monkeypatch):
    """factories.log_curve_study: 24 finished trials with three epochs of history, 6 diverged;
    train_acc logged but not drawn."""
    import analysis.runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_curve_study(uri)
    fetched = []
    load_history = analysis.runs.load_history

    def recording(*args, **kwargs):
        fetched.append(kwargs)
        return load_history(*args, **kwargs)

    monkeypatch.setattr(analysis.runs, "load_history", recording)

    assert report_of(uri, "curves", tmp_path / "r") == 0

    # Only what the figure draws: the 24 finished trials (not the 6 diverged), 3 metrics.
    (call,) = fetched
    assert call["metrics"] == ("test_acc", "train_loss", "lr")
    assert len(call["runs"]) == 24
    assert not call["runs"]["diverged"].any()
    for name in ("learning_curves.png", "distributions.png"):
        assert imread(tmp_path / "r" / name).shape[0] > 400, name
    assert "## Learning curves" in (tmp_path / "r" / "report.md").read_text()


def _loss_study(uri: str, name: str, full_explore_gain: float) -> str:
    """Explore 0%, 50% and 100% x 8 seeds whose only metric is val_loss (nats, lower is better):
    0.40 + 0.001 seed everywhere, less ``full_explore_gain`` at 100% explore."""
    trials = grid(explore_fraction=[0.0, 0.5, 1.0], peak_lr=[0.05], seed=list(PLATEAU_SEEDS))
    for t in trials:
        t.update(schedule="knee", epochs=3)

    def history(trial):
        loss = 0.40 + 0.001 * trial["seed"] - full_explore_gain * (trial["explore_fraction"] == 1)
        return {"val_loss": [loss + 0.2, loss + 0.1, loss]}  # the last epoch is the final value

    return log_study(uri, name, trials, history)


@pytest.mark.parametrize(
    ("gain", "verdict"),
    [
        (0.0, "verdict: ROBUST"),  # every fraction alike
        (-0.05, "verdict: ROBUST"),  # 100% explore is worse: a higher loss
        (0.05, "verdict: NOT ROBUST"),  # 100% explore is better by 5x the margin
    ],
)
def test_a_loss_objective_is_judged_lower_is_better_in_its_own_units(
    tmp_path, monkeypatch, capsys, gain, verdict
):
    """The study's objective (val_loss, min, margin 0.01 nats) decides its report; the same runs
    judged as if higher were better would call a better 100% explore worse."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = _loss_study(uri, "loss", gain)
    study = tmp_path / "study"
    objective = "objective={metric: val_loss, mode: min, margin: 0.01}"
    sweep = ["sweep.explore_fraction=[0.0, 0.5, 1.0]", "sweep.peak_lr=[0.05]"]
    folder.create(study, load_config(None, ["name=loss", objective, *sweep]))
    folder.write_meta(study, folder.StudyMeta(uri, experiment_id(uri, "loss"), parent))

    assert main(["report", str(study)]) == 0
    said = capsys.readouterr().out
    assert verdict + ":" in said, said
    # The parent run answers the question where runs are compared: tag, description, numbers.
    answered = MlflowClient(uri).get_run(parent).data
    decided = verdict.removeprefix("verdict: ").lower()
    assert answered.tags["verdict"] == decided
    assert answered.tags["mlflow.note.content"].startswith(f"**Verdict: {decided}.** 50% explore")
    assert answered.tags["objective"] == "val_loss (min), margin 0.01"
    assert answered.metrics["verdict/peak_lr_0.05/seeds"] == len(PLATEAU_SEEDS)
    best = answered.metrics["verdict/peak_lr_0.05/best_fraction"]
    if gain:  # 100% explore is the best fraction where it is better, and only there
        assert (best == 1.0) == (gain > 0)
    # knee-study report over the experiment alone names the metric; its direction follows it.
    out = tmp_path / "by-name"
    argv = ["report", "--experiment", "loss", "--tracking-uri", uri, "--out", str(out)]
    assert main([*argv, "--metric", "val_loss", "--margin", "0.01"]) == 0
    assert verdict + ":" in capsys.readouterr().out
    assert "val_loss" in (out / "report.md").read_text()
    if gain > 0:  # the direction is what decides: higher-is-better calls 100% explore worse
        assert main([*argv, "--metric", "val_loss", "--mode", "max", "--margin", "0.01"]) == 0
        assert "verdict: ROBUST:" in capsys.readouterr().out


def test_a_report_across_parent_runs_of_one_store(tmp_path, capsys):
    """Several studies in one store, named by their parent runs: judged each by the objective
    its parent run records (its ``objective`` tag), then together."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = log_plateau_study(uri, "plateau-a"), log_plateau_study(uri, "plateau-b")
    hopeless = log_hopeless_study(uri)
    out = tmp_path / "across"

    def across(*parents: str) -> pd.DataFrame:
        flags = [a for p in parents for a in ("--parent-run", p)]
        assert main(["report", "--tracking-uri", uri, *flags, "--out", str(out)]) == 0
        return pd.read_csv(out / "studies.csv")

    rows = across(first, second)
    assert rows["study"].tolist() == ["plateau-a", "plateau-b"]
    assert rows["decision"].tolist() == ["robust", "robust"]  # at the 0.2-point margin
    assert "verdict across them: ROBUST" in capsys.readouterr().out

    rows = across(first, hopeless)  # a study with no usable trial: never robust across them
    assert rows["decision"].tolist() == ["robust", "inconclusive"]
    assert "verdict across them: INCONCLUSIVE" in capsys.readouterr().out

    # plateau-b's own report judged it at a 0.1-point margin, where it is inconclusive.
    MlflowClient(uri).set_tag(second, "objective", "test_acc (max), margin 0.001")
    rows = across(first, second)
    assert rows["margin"].tolist() == [0.002, 0.001]
    assert rows["decision"].tolist() == ["robust", "inconclusive"]


def test_parent_runs_across_studies_need_their_store(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(["report", "--parent-run", "a", "--parent-run", "b", "--out", str(tmp_path)])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == (
        "knee-study: error: report: --parent-run across studies needs --tracking-uri, the store\n"
    )


def test_parent_runs_across_studies_are_read_with_care(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = log_plateau_study(uri, "plateau-a"), log_plateau_study(uri, "plateau-b")
    out = str(tmp_path / "across")

    def across(*parents: str) -> tuple[int, str]:
        flags = [a for p in parents for a in ("--parent-run", p)]
        code = main(["report", "--tracking-uri", uri, *flags, "--out", out])
        return code, capsys.readouterr().err

    # No objective recorded (its report never attached): said, and judged by test accuracy.
    code, err = across(first, second)
    assert code == 0
    assert f"knee-study: note: plateau-a ({first}) records no objective" in err
    # The same study twice would count its seeds twice: refused before anything is read.
    code, err = across(first, second, first)
    assert code == EXIT_BAD_INPUT
    assert err == f"knee-study: error: study run {first} is named twice: each study counts once\n"
    # A tag that is not the objective as a study records it: refused, never a guess.
    for bad in ("test_acc (max), margin inf", "test_acc (max), margin 0", "val_loss, margin 1"):
        MlflowClient(uri).set_tag(second, "objective", bad)
        code, err = across(first, second)
        assert code == EXIT_BAD_INPUT
        assert err.endswith(f"its objective tag is {bad!r}, not 'METRIC (max|min), margin M'\n")


def test_study_folders_and_parent_runs_are_not_mixed_across_studies(tmp_path, capsys):
    args = ["report", str(tmp_path / "a"), str(tmp_path / "b"), "--parent-run", "c"]
    assert main([*args, "--tracking-uri", "sqlite:///x.db"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == (
        "knee-study: error: report: across studies, name study folders or --parent-run runs, "
        "not both\n"
    )
