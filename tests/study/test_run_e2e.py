"""A small study through the real CLI: local Ray, the embedded sqlite MLflow store, then the store
read back with mlflow.search_runs as a user would."""

import json
import shutil
import tempfile
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from study.stores import default_tracking_uri

pytestmark = pytest.mark.slow

EPOCHS = 3
SWEEP = {"explore_fraction": [0.0, 1.0], "peak_lr": [0.05], "seed": [0, 1]}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory, knee_study):
    output = tmp_path_factory.mktemp("study") / "e2e"
    sets = {f"sweep.{key}": values for key, values in SWEEP.items()}
    sets |= {"train.epochs": EPOCHS, "name": "e2e-study", "sharpness.steps": 5}
    proc = knee_study("run", "--output", str(output), sets=sets)
    return output, proc


def test_run_exits_zero_and_says_where_results_are(finished_study):
    output, proc = finished_study
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(output) in proc.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in proc.stdout


def test_run_ends_with_its_report_and_verdict(finished_study):
    output, proc = finished_study
    # The sweep has 0% and 100% explore only: 50% was not swept, so no verdict but "inconclusive".
    assert "verdict: INCONCLUSIVE: 50% explore: inconclusive" in proc.stdout
    assert "at peak LR 0.05 (not swept)" in proc.stdout
    for name in ("report.html", "report.md", "summary.csv", "accuracy_vs_explore.png"):
        assert (output / "report" / name).is_file(), name


def test_mlflow_has_one_finished_child_run_per_trial_with_full_histories(finished_study):
    output, _ = finished_study
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name("e2e-study")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]

    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 4
    grid = {
        (float(r.data.params["explore_fraction"]), int(r.data.params["seed"])) for r in children
    }
    assert grid == {(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["diverged"] == "false"
        assert run.data.params["peak_lr"] == "0.05"
        assert run.data.params["schedule"] == "knee"
        for key in ("test_acc", "sharpness", "trial_seconds"):
            assert key in run.data.metrics
        assert 0.0 <= run.data.metrics["test_acc"] <= 1.0
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), key
        # Ray's bookkeeping never becomes a metric.
        assert not {"pid", "timestamp", "done", "training_iteration"} & set(run.data.metrics)
        # What it trained on, as MLflow's dataset input, and where it came from.
        (trained_on,) = run.inputs.dataset_inputs
        assert trained_on.dataset.name == "digits"
        assert json.loads(trained_on.dataset.profile) == {
            "train": 1131,
            "val": 126,
            "test": 540,
            "num_classes": 10,
            "input_shape": [1, 8, 8],
        }
        assert len(trained_on.dataset.digest) == 16
        assert run.data.tags["mlflow.source.name"] == "knee-study"


def _attached_report(output, name="report.md") -> str:
    """The copy of a report file on the study's parent run in MLflow, as a user downloads it."""
    meta = json.loads((output / "study.json").read_text())
    with tempfile.TemporaryDirectory() as elsewhere:
        path = mlflow.artifacts.download_artifacts(
            run_id=meta["parent_run_id"],
            artifact_path=f"report/{name}",
            tracking_uri=meta["tracking_uri"],
            dst_path=elsewhere,
        )
        return Path(path).read_text()


def _files(path: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")
    }


def test_the_report_is_attached_to_the_study_run_and_follows_a_rewrite(finished_study, knee_study):
    output, _ = finished_study
    written = (output / "report" / "report.md").read_text()
    assert _attached_report(output) == written
    assert (
        _attached_report(output, "report.html") == (output / "report" / "report.html").read_text()
    )

    # Asked again with another margin, the study's own report changes, and so does its copy.
    proc = knee_study("report", str(output), "--margin", "0.05")
    assert proc.returncode == 0, proc.stderr
    rewritten = (output / "report" / "report.md").read_text()
    assert rewritten != written
    assert _attached_report(output) == rewritten


def test_a_copied_study_reports_into_its_own_store_never_the_originals(
    finished_study, knee_study, tmp_path
):
    """cp -r STUDY COPY && knee-study report COPY once overwrote the original's attached report
    (study.json named the original's store, whose artifact paths name the original's folder)."""
    output, _ = finished_study
    copy = tmp_path / "copy"
    shutil.copytree(output, copy)
    original = _files(output)

    proc = knee_study("report", str(copy), "--margin", "0.01")

    assert proc.returncode == 0, proc.stderr
    assert f"report of 4 trials in {copy / 'report' / 'report.html'}" in proc.stdout
    assert _files(output) == original  # its store, its artifacts, its report: untouched
    meta = json.loads((copy / "study.json").read_text())
    assert meta["tracking_uri"] == default_tracking_uri(copy)
    assert meta["store"] == "mlflow.db"
    written = (copy / "report" / "report.md").read_text()
    assert written != (output / "report" / "report.md").read_text()  # another margin
    assert _attached_report(copy) == written
    client = MlflowClient(default_tracking_uri(copy))
    artifacts = client.get_run(meta["parent_run_id"]).info.artifact_uri
    assert artifacts.startswith((copy / "mlartifacts").as_uri())
