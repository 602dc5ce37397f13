"""A study folder moved while its study is stopped resumes where it is now: Tune's state, the
trials' checkpoints and its own MLflow store all come from the moved folder, and the tracker
Tune restores writes there (the old path is gone: any write to it would fail the study)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.stores import default_tracking_uri

pytestmark = pytest.mark.slow

KNEE_STUDY = str(Path(sys.executable).parent / "knee-study")
EPOCHS = 80  # ~5 s a trial here: time to stop the study while its second trial trains


def _children(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("moved")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.trial_id != ''")
    return runs


def _second_trial_training(uri: str) -> bool:
    """One trial finished, the other has logged an epoch and is still running."""
    try:
        runs = _children(uri)
    except Exception:  # the store being made
        return False
    statuses = sorted(run.info.status for run in runs)
    return statuses == ["FINISHED", "RUNNING"] and all("test_acc" in r.data.metrics for r in runs)


def test_a_moved_study_folder_resumes_into_its_own_store(tmp_path):
    output = tmp_path / "study"
    sets = [
        "name=moved",
        "sweep.explore_fraction=[0.5]",
        "sweep.peak_lr=[0.05]",
        "sweep.seed=[0, 1]",
        f"train.epochs={EPOCHS}",
        "sharpness.steps=2",
        "sharpness.batches=1",
        "tune.checkpoint_every=1",
        "resources.max_concurrent=1",
    ]
    argv = [KNEE_STUDY, "run", "--output", str(output), *(a for s in sets for a in ("--set", s))]
    with open(tmp_path / "run.log", "w") as log:
        driver = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 240
        while not _second_trial_training(default_tracking_uri(output)):
            assert driver.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the second trial never started"
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C
        code = driver.wait(120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    log = (tmp_path / "run.log").read_text()
    assert code == 130, log[-3000:]
    assert f"knee-study resume {output}" in log

    moved = tmp_path / "elsewhere" / "moved-study"
    moved.parent.mkdir()
    output.rename(moved)
    proc = subprocess.run(
        [KNEE_STUDY, "resume", str(moved)], capture_output=True, text=True, timeout=300
    )

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not output.exists()  # nothing was written at the old place
    assert "continues after epoch" in proc.stdout  # from the moved folder's checkpoint
    uri = default_tracking_uri(moved)
    client = MlflowClient(uri)
    runs = _children(uri)
    assert sorted(run.info.status for run in runs) == ["FINISHED", "FINISHED"]
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
        assert sorted(steps) == list(range(1, EPOCHS + 1))  # every epoch once
        assert "sharpness" in run.data.metrics
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    assert parent.info.artifact_uri.startswith((moved / "mlartifacts").as_uri())
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["report"]
