"""Faults inside a running study: a trial's worker process killed mid-training, and a trial whose
loss blows up. The study goes on, and MLflow keeps one run per trial with every epoch once."""

import math
import re
import signal

import pytest
import torch
from harness import (
    Study,
    assert_complete_picture,
    checkpoints,
    latest_checkpoint,
    mlflow_picture,
    steps,
    study_args,
    trial_states,
)

from trainables.results import EPOCH_METRICS
from trainables.train import train

pytestmark = pytest.mark.slow

EPOCHS = 30  # ~0.3 s each with a report and a checkpoint: time to catch a trial mid-training
SWEEP = {"explore_fraction": [0.5], "peak_lr": [0.05], "seed": [0, 1]}


@pytest.fixture(scope="module")
def killed_worker(tmp_path_factory):
    """A two-trial study whose first trial's worker is SIGKILLed after its third checkpoint."""
    tmp = tmp_path_factory.mktemp("killed-worker")
    output = tmp / "study"
    study = Study(study_args(output, "killed-worker", EPOCHS, SWEEP), tmp / "run.log")
    try:
        trial_id = study.wait_for(
            lambda: next(iter(sorted(trial_states(output))), None), 120, "Tune's first snapshot"
        )

        def running_worker():
            if trial_states(output).get(trial_id, {}).get("status") != "RUNNING":
                return None
            return latest_checkpoint(output, trial_id) >= 2 and study.trial_worker(trial_id)

        worker = study.wait_for(running_worker, 120, f"trial {trial_id} mid-training")
        killed_at = checkpoints(output, trial_id)
        worker.send_signal(signal.SIGKILL)
        code = study.wait(300)
    finally:
        leftovers = study.stop()
    return {
        "output": output,
        "trial_id": trial_id,
        "pid": worker.pid,
        "killed_at": killed_at,
        "code": code,
        "log": study.output(),
        "leftovers": leftovers,
    }


def test_the_study_finishes_and_leaves_no_process_behind(killed_worker):
    assert killed_worker["code"] == 0, killed_worker["log"][-3000:]
    assert killed_worker["leftovers"] == []
    assert killed_worker["killed_at"][-1] != f"checkpoint_{EPOCHS - 1:06d}"  # mid-training


def test_the_trial_is_retried_once_from_its_last_checkpoint(killed_worker):
    trial_id = killed_worker["trial_id"]
    state = trial_states(killed_worker["output"])[trial_id]
    assert state["status"] == "TERMINATED"
    assert state["num_failures"] == 1
    restored = re.findall(
        rf"Restored on \S+ from checkpoint: .*{trial_id}/(checkpoint_\d+)", killed_worker["log"]
    )
    assert restored, "the retried trial did not restore a checkpoint"
    assert restored[0] >= "checkpoint_000001"  # not from scratch


def test_mlflow_keeps_one_finished_run_per_trial_with_every_epoch_once(killed_worker):
    assert_complete_picture(killed_worker["output"], trials=2, epochs=EPOCHS)


def test_the_retried_trial_logs_the_numbers_of_an_uninterrupted_run(killed_worker):
    client, _, children = mlflow_picture(killed_worker["output"])
    run = next(r for r in children if r.data.tags["trial_id"] == killed_worker["trial_id"])
    config = {key: _typed(value) for key, value in run.data.params.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trial trained (one CPU per trial)
    try:
        history = []
        train(config, on_epoch=lambda metrics, state: history.append(metrics))
    finally:
        torch.set_num_threads(threads)
    for key in EPOCH_METRICS:
        logged = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.value for m in logged] == pytest.approx([h[key] for h in history]), key


def _typed(text: str):
    """A trial param back as the value train() got (MLflow stores params as strings)."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


# Divergence: the loss of a trial with a huge peak LR becomes inf/NaN.

DIVERGING_EPOCHS = 8
# With half the budget warming up, peak LR 20 stays finite for the first epochs and then blows
# up; 1e6 blows up in the first epoch.
DIVERGING_SWEEP = {"explore_fraction": [0.0], "peak_lr": [0.05, 20, 1000000.0], "seed": [0]}


@pytest.fixture(scope="module")
def diverging_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diverging")
    output = tmp / "study"
    args = study_args(
        output, "diverging", DIVERGING_EPOCHS, DIVERGING_SWEEP, "train.warmup_fraction=0.5"
    )
    study = Study(args, tmp / "run.log")
    try:
        code = study.wait(300)
    finally:
        study.stop()
    client, parent, children = mlflow_picture(output)
    runs = {float(r.data.params["peak_lr"]): r for r in children}
    return {"code": code, "log": study.output(), "client": client, "parent": parent, "runs": runs}


def test_a_diverging_trial_does_not_stop_the_study(diverging_study):
    assert diverging_study["code"] == 0, diverging_study["log"][-3000:]
    assert diverging_study["parent"].info.status == "FINISHED"
    assert sorted(diverging_study["runs"]) == [0.05, 20, 1e6]
    healthy = diverging_study["runs"][0.05]
    assert healthy.info.status == "FINISHED"
    assert healthy.data.tags["diverged"] == "false"
    assert "sharpness" in healthy.data.metrics
    client = diverging_study["client"]
    assert steps(client, healthy.info.run_id, "test_acc") == list(range(1, DIVERGING_EPOCHS + 1))


@pytest.mark.parametrize("peak_lr", [20, 1e6])
def test_a_diverged_trial_is_finished_tagged_and_keeps_its_finite_epochs(diverging_study, peak_lr):
    """What train() records: the epochs before the loss went non-finite (each logged once, all
    finite), then the final result with diverged=true, trial_seconds and no sharpness."""
    client, run = diverging_study["client"], diverging_study["runs"][peak_lr]
    assert run.info.status == "FINISHED"
    assert run.data.tags["diverged"] == "true"
    assert "sharpness" not in run.data.metrics
    assert "trial_seconds" in run.data.metrics
    finite_epochs = steps(client, run.info.run_id, "train_loss")
    assert finite_epochs == list(range(1, len(finite_epochs) + 1))
    assert len(finite_epochs) < DIVERGING_EPOCHS
    for key in EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == finite_epochs
        assert all(math.isfinite(m.value) for m in history)
    if peak_lr == 20:
        assert finite_epochs, "expected finite epochs before the blow-up"
        assert (
            run.data.metrics["test_acc"]
            == client.get_metric_history(run.info.run_id, "test_acc")[-1].value
        )  # the run's metrics are its last finite epoch's
    else:
        assert finite_epochs == []
