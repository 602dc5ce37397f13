"""The study's report around the study: attached to MLflow, never in the way of its outcome."""

import pandas as pd

from analysis.policy import Policy
from analysis.verdict import Verdict
from study import reporting


def test_a_report_that_cannot_be_attached_to_mlflow_is_one_line_not_an_error(tmp_path, capsys):
    """The files in the study folder are the report: MLflow refusing its copy and its verdict
    (here: no such parent run) is said in a line each and nothing is raised."""
    (tmp_path / "report.md").write_text("# a report\n")
    verdict = Verdict("robust", pd.DataFrame(), "50% explore is robust.", Policy())
    reporting.attach(f"sqlite:///{tmp_path / 'mlflow.db'}", "0" * 32, tmp_path, verdict)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("knee-study")]  # not MLflow's
    assert len(lines) == 2, err
    assert lines[0].startswith("knee-study: report not attached to the MLflow run: Mlflow")
    assert lines[0].endswith(f"(it is in {tmp_path})")
    assert lines[1].startswith("knee-study: verdict not recorded on the MLflow run: Mlflow")


def test_the_verdict_is_recorded_where_the_report_files_cannot_go(tmp_path, capsys, monkeypatch):
    """A server that does not serve artifacts: the parent run still says its verdict, and its
    description says where the report is instead."""
    from mlflow import MlflowClient

    from study import study_run

    def refuse(*args):
        raise OSError("artifacts are not served here")

    monkeypatch.setattr(study_run, "attach_report", refuse)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _, parent = study_run.start_study_run(uri, "no-artifacts", {})
    verdict = Verdict("robust", pd.DataFrame(), "50% explore is robust.", Policy())
    reporting.attach(uri, parent, tmp_path, verdict)

    assert "report not attached to the MLflow run: OSError: artifacts are not served here" in (
        capsys.readouterr().err
    )
    tags = MlflowClient(uri).get_run(parent).data.tags
    assert tags["verdict"] == "robust"
    assert "The whole report is in the study folder, under report/." in tags["mlflow.note.content"]


def test_the_extend_hint_names_the_seeds_an_inconclusive_study_needs(tmp_path):
    from study.config import load_config

    cfg = load_config(None, ["sweep.seed=[0, 2]"])
    hint = reporting.extend_hint(cfg, tmp_path)
    bare = Verdict("inconclusive", pd.DataFrame(), "50% explore: inconclusive.", Policy())
    asked = Verdict(
        "inconclusive", pd.DataFrame({"seeds_needed": [9, None]}), "inconclusive.", Policy()
    )

    # Robust needs 7 finished seeds whatever the gaps; a verdict that estimates 9 asks for 9.
    assert hint(bare) == (
        "To decide it, grow the study to 7 seeds a setting (only the new seeds run, under the "
        f"same parent run): `knee-study extend {tmp_path} --set 'sweep.seed=[0, 2, 1, 3, 4, 5, "
        "6]'`"
    )
    assert "grow the study to 9 seeds" in hint(asked)
    assert "sweep.seed=[0, 2, 1, 3, 4, 5, 6, 7, 8]" in hint(asked)
    assert hint(Verdict("robust", pd.DataFrame(), "robust.", Policy())) is None


def test_a_grid_study_hands_its_report_the_grid_it_swept():
    """Every swept condition and fraction, so one MLflow has no run of is named; not the seeds
    (no condition) and nothing for a search, whose sweep values are ranges."""
    from study.config import load_config

    sets = ["sweep.peak_lr=[0.05, 0.1]", "sweep.epochs=[10, 20]", "sweep.seed=[0, 1]"]
    cfg = load_config(None, sets)
    assert reporting.study_grid(cfg) == {
        "explore_fraction": cfg.sweep.explore_fraction,
        "peak_lr": [0.05, 0.1],
        "epochs": [10, 20],
    }
    search = load_config(
        None, ["tune.search=optuna", "tune.num_samples=4", "sweep.explore_fraction=[0, 1]"]
    )
    assert reporting.study_grid(search) is None


def test_a_parent_run_gives_the_grid_its_params_record(tmp_path):
    from study import study_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = {"sweep.explore_fraction": [0.0, 0.5], "sweep.peak_lr": [0.05, 0.1]}
    _, parent = study_run.start_study_run(uri, "grid", {**params, "sweep.seed": [0, 1]})

    source = reporting.parent_source(uri, parent)

    assert source.swept == {"explore_fraction": [0.0, 0.5], "peak_lr": [0.05, 0.1]}
