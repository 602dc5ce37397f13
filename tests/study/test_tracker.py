"""The tracker's promises when a study is resumed: one run per trial, every step once, the final
metrics once, however the trial's results arrive again; and a restored tracker writes to the
store the study is in now."""

import pickle
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from study.study_run import start_study_run
from study.tracker import TrialTracker, logging_to
from trainables.results import EPOCH_METRICS, EpochsReport, FinalReport

EPOCHS = 4


def _epoch(epoch: int) -> dict:
    return {"epoch": epoch, **{key: 0.1 * epoch for key in EPOCH_METRICS}}


def _epochs(*epochs: int) -> dict:
    """A trial's report of these epochs, as the trial writes it."""
    return EpochsReport(tuple(_epoch(e) for e in epochs)).to_result()


def _final(*unreported: int) -> dict:
    """A trial's final report, with these epochs not reported before."""
    metrics = {**_epoch(EPOCHS), "sharpness": 1.5, "trial_seconds": 2.0}
    return FinalReport(metrics, False, tuple(_epoch(e) for e in unreported)).to_result()


def test_a_resumed_trial_that_reports_its_last_epochs_again_logs_each_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "resumed", {})
    trial = SimpleNamespace(trial_id="abc_00000", config={"seed": 0, "epochs": EPOCHS})
    tracker = TrialTracker(uri, experiment_id, parent)
    tracker.on_trial_start(0, [], trial)
    for epoch in range(1, EPOCHS + 1):
        tracker.on_trial_result(0, [], trial, _epochs(epoch))
    tracker.on_trial_result(0, [], trial, _final())
    # The driver dies before Tune records the trial as finished. The resumed driver (its tracker
    # unpickled from Tune's state) restores the trial from its last checkpoint: the history comes
    # again, then the final result.
    resumed = pickle.loads(pickle.dumps(tracker))
    resumed.on_trial_start(0, [], trial)
    resumed.on_trial_result(0, [], trial, _final(3, 4))
    resumed.on_trial_complete(0, [], trial)

    client = MlflowClient(uri)
    runs = client.search_runs([experiment_id], filter_string="tags.trial_id = 'abc_00000'")
    assert len(runs) == 1
    assert runs[0].info.status == "FINISHED"
    for key in EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, key)]
        assert sorted(steps) == list(range(1, EPOCHS + 1)), key
    for key in ("sharpness", "trial_seconds"):
        assert len(client.get_metric_history(runs[0].info.run_id, key)) == 1, key


def _trial_runs(uri: str, experiment_id: str) -> dict:
    """trial_id -> its run, as a user reads the store back."""
    runs = MlflowClient(uri).search_runs([experiment_id], filter_string="tags.trial_id != ''")
    return {run.data.tags["trial_id"]: run for run in runs}


def test_a_trial_the_scheduler_stops_is_killed_and_tagged_and_a_full_one_finished(tmp_path):
    """Tune's stop_trial (ASHA's STOP) calls on_trial_complete after the last epoch's result,
    with no final result: that run is KILLED, tagged with the epoch it stopped at."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "asha", {})
    full = SimpleNamespace(trial_id="abc_00000", config={"seed": 0, "epochs": EPOCHS})
    stopped = SimpleNamespace(trial_id="abc_00001", config={"seed": 1, "epochs": EPOCHS})
    tracker = TrialTracker(uri, experiment_id, parent)
    for trial in (full, stopped):
        tracker.on_trial_start(0, [], trial)
    for epoch in range(1, EPOCHS + 1):
        tracker.on_trial_result(0, [], full, _epochs(epoch))
    tracker.on_trial_result(0, [], full, _final())
    tracker.on_trial_complete(0, [], full)
    tracker.on_trial_result(0, [], stopped, _epochs(1, 2))
    tracker.on_trial_complete(0, [], stopped)

    runs = _trial_runs(uri, experiment_id)
    assert runs["abc_00000"].info.status == "FINISHED"
    assert "stopped_early" not in runs["abc_00000"].data.tags
    assert "stopped_at_epoch" not in runs["abc_00000"].data.tags
    assert runs["abc_00001"].info.status == "KILLED"
    assert runs["abc_00001"].data.tags["stopped_early"] == "true"
    assert runs["abc_00001"].data.tags["stopped_at_epoch"] == "2"
    assert "sharpness" not in runs["abc_00001"].data.metrics
    finished = MlflowClient(uri).search_runs(
        [experiment_id], filter_string="attributes.status = 'FINISHED' and tags.trial_id != ''"
    )
    assert [run.data.tags["trial_id"] for run in finished] == ["abc_00000"]
    pickle.dumps(tracker)  # Tune saves it with its experiment state


def test_after_a_driver_restart_completion_is_judged_by_what_the_run_already_has(tmp_path):
    """The restored tracker (unpickled, caches empty) is told a trial completed. One trial sent
    its final result before the driver died: FINISHED. One had reported epochs 1-2 then, and
    after the restart epoch 3 before the scheduler stopped it: KILLED at epoch 3. One had
    reported epoch 1 and is stopped with no result since: KILLED at epoch 1."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "restored", {})
    trials = [
        SimpleNamespace(trial_id=f"abc_0000{i}", config={"seed": i, "epochs": EPOCHS})
        for i in range(3)
    ]
    done, later, idle = trials
    tracker = TrialTracker(uri, experiment_id, parent)
    for trial in trials:
        tracker.on_trial_start(0, [], trial)
    for epoch in range(1, EPOCHS + 1):
        tracker.on_trial_result(0, [], done, _epochs(epoch))
    tracker.on_trial_result(0, [], done, _final())
    tracker.on_trial_result(0, [], later, _epochs(1, 2))
    tracker.on_trial_result(0, [], idle, _epochs(1))

    resumed = pickle.loads(pickle.dumps(tracker))
    resumed.on_trial_complete(0, [], done)
    resumed.on_trial_start(0, [], later)
    resumed.on_trial_result(0, [], later, _epochs(1, 2, 3))
    resumed.on_trial_complete(0, [], later)
    pickle.loads(pickle.dumps(resumed)).on_trial_complete(0, [], idle)

    runs = _trial_runs(uri, experiment_id)
    assert runs[done.trial_id].info.status == "FINISHED"
    assert "stopped_early" not in runs[done.trial_id].data.tags
    for trial, epoch in ((later, "3"), (idle, "1")):
        run = runs[trial.trial_id]
        assert run.info.status == "KILLED", trial.trial_id
        assert run.data.tags["stopped_early"] == "true"
        assert run.data.tags["stopped_at_epoch"] == epoch


def test_a_stopped_trial_that_trains_again_after_a_restart_loses_its_stopped_tags(tmp_path):
    """The tracker tagged the run stopped, then the driver died before Tune's snapshot had the
    trial stopped: the restored study continues it from its checkpoint to the end."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "again", {})
    trial = SimpleNamespace(trial_id="abc_00000", config={"seed": 0, "epochs": EPOCHS})
    tracker = TrialTracker(uri, experiment_id, parent)
    tracker.on_trial_start(0, [], trial)
    tracker.on_trial_result(0, [], trial, _epochs(1, 2))
    tracker.on_trial_complete(0, [], trial)
    stopped = _trial_runs(uri, experiment_id)[trial.trial_id]
    assert (stopped.info.status, stopped.data.tags.get("stopped_early")) == ("KILLED", "true")

    resumed = pickle.loads(pickle.dumps(tracker))
    resumed.on_trial_start(0, [], trial)
    resumed.on_trial_result(0, [], trial, _epochs(1, 2, 3))
    resumed.on_trial_result(0, [], trial, _epochs(4))
    resumed.on_trial_result(0, [], trial, _final())
    resumed.on_trial_complete(0, [], trial)

    run = _trial_runs(uri, experiment_id)[trial.trial_id]
    assert run.info.status == "FINISHED"
    assert not {"stopped_early", "stopped_at_epoch"} & run.data.tags.keys()
    assert "sharpness" in run.data.metrics


def test_a_tracker_restored_inside_logging_to_writes_to_the_store_named_there(tmp_path):
    """A moved or copied study folder: Tune's state holds the tracker pickled with the old
    store's URI; restored inside logging_to it writes to the new one, and outside, as before."""
    old, new = (f"sqlite:///{tmp_path / name}" for name in ("old.db", "new.db"))
    tracker = TrialTracker(old, "1", "0" * 32, run_tags={"search": "grid"})
    state = pickle.dumps(tracker)

    with logging_to(new):
        restored = pickle.loads(state)
    again = pickle.loads(state)

    assert restored.tracking_uri == new
    assert (restored.experiment_id, restored.parent_run_id) == ("1", "0" * 32)
    assert restored.run_tags == {"search": "grid"}
    assert again.tracking_uri == old


def test_a_loops_own_metrics_are_logged_and_a_failed_trial_is_failed_with_its_reason(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "own-loop", {})
    trial = SimpleNamespace(trial_id="own_00000", config={"seed": 0, "epochs": 2})
    tracker = TrialTracker(uri, experiment_id, parent)
    tracker.on_trial_start(0, [], trial)
    epochs = ({"epoch": 1, "perplexity": 9.0}, {"epoch": 2, "perplexity": 7.5})
    tracker.on_trial_result(0, [], trial, EpochsReport(epochs).to_result())
    reason = "objective.metric: loop:fit never reported val_loss (found perplexity)"
    final = FinalReport(epochs[-1], False, (), (), reason).to_result()
    # The driver dies after the final report: the resumed tracker finds the run failed already.
    resumed = pickle.loads(pickle.dumps(tracker))
    resumed.on_trial_result(0, [], trial, final)
    resumed.on_trial_complete(0, [], trial)

    client = MlflowClient(uri)
    (run,) = client.search_runs([experiment_id], filter_string="tags.trial_id = 'own_00000'")
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == reason
    history = client.get_metric_history(run.info.run_id, "perplexity")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 9.0),
        (2, 7.5),
    ]


def test_params_are_canonical_and_a_baseline_has_no_knee_params(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "params", {})
    tracker = TrialTracker(uri, experiment_id, parent)
    config = {"schedule": "cosine", "explore_fraction": None, "decay": None, "peak_lr": 50.0}
    config |= {"seed": 2, "weight_decay": 5e-4, "eps": 1e-8, "nesterov": False}
    trial = SimpleNamespace(trial_id="base_00000", config=config)
    tracker.on_trial_start(0, [], trial)

    client = MlflowClient(uri)
    (run,) = client.search_runs([experiment_id], filter_string="params.peak_lr = '50'")
    assert run.data.params == {
        "schedule": "cosine",
        "peak_lr": "50",  # as the run's name says it: lr=50
        "seed": "2",
        "weight_decay": "0.0005",
        "eps": "1e-08",
        "nesterov": "False",
    }


def test_a_dataset_another_study_inserted_at_the_same_moment_is_logged_on_the_next_try(tmp_path):
    # The store looks a dataset up, then inserts it: a second study doing the same at once breaks
    # its unique constraint (seen with two studies on one server). The retry finds that row.
    from mlflow.exceptions import MlflowException

    from study.preflight import TrainedOn

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "race", {})
    digits = TrainedOn("digits", "ab" * 32, "sklearn.datasets.load_digits", {"train": 1131})
    first = TrialTracker(uri, experiment_id, parent, trained_on=digits)
    second = TrialTracker(uri, experiment_id, parent, trained_on=digits)
    first.on_trial_start(0, [], SimpleNamespace(trial_id="a_00000", config={"seed": 0}))
    log_inputs, calls = second.client.log_inputs, []

    def racing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise MlflowException("UNIQUE constraint failed: datasets.experiment_id, datasets.name")
        return log_inputs(*args, **kwargs)

    second.client.log_inputs = racing
    second.on_trial_start(0, [], SimpleNamespace(trial_id="b_00000", config={"seed": 1}))

    client = MlflowClient(uri)
    runs = client.search_runs([experiment_id], filter_string="tags.trial_id LIKE '%_00000'")
    assert len(calls) == 2
    assert len(runs) == 2
    for run in runs:
        (found,) = run.inputs.dataset_inputs
        assert (found.dataset.name, found.dataset.digest) == ("digits", "ab" * 8)


def test_a_failed_trial_whose_run_could_not_be_closed_still_ends_failed(tmp_path, monkeypatch):
    """Closing the run raises once (the store busy): Tune retries the trial, which fails the
    same way again, and its run still ends FAILED, never FINISHED."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "close-fails", {})
    trial = SimpleNamespace(trial_id="bad_00000", config={"seed": 0, "epochs": 2})
    tracker = TrialTracker(uri, experiment_id, parent)
    tracker.on_trial_start(0, [], trial)
    epochs = ({"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.6})
    final = FinalReport(epochs[-1], False, epochs, (), "data: labels outside [0, 10)").to_result()
    tracker.on_trial_result(0, [], trial, final)
    client = tracker.client
    close = client.set_terminated
    calls = []

    def busy_once(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OSError("database is locked")
        return close(*args, **kwargs)

    monkeypatch.setattr(client, "set_terminated", busy_once)
    with pytest.raises(OSError, match="locked"):  # Tune takes the trial for failed, retries it
        tracker.on_trial_complete(0, [], trial)
    tracker.on_trial_start(0, [], trial)
    tracker.on_trial_result(0, [], trial, final)
    tracker.on_trial_complete(0, [], trial)

    (run,) = MlflowClient(uri).search_runs(
        [experiment_id], filter_string="tags.trial_id = 'bad_00000'"
    )
    assert run.info.status == "FAILED"


def test_a_resumed_loop_reporting_a_metric_only_sometimes_logs_each_step_once(tmp_path):
    """A loop of one's own reports 'accuracy' at step 1 only and 'train_loss' at every step:
    after a restart the run has step 2 (of train_loss, not of the alphabetically first metric),
    so the steps resent from the checkpoint are not logged twice."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "sparse", {})
    trial = SimpleNamespace(trial_id="sparse_00000", config={"seed": 0, "epochs": 3})
    steps = (
        {"epoch": 1, "accuracy": 0.5, "train_loss": 1.0},
        {"epoch": 2, "train_loss": 0.8},
        {"epoch": 3, "train_loss": 0.6},
    )
    tracker = TrialTracker(uri, experiment_id, parent)
    tracker.on_trial_start(0, [], trial)
    tracker.on_trial_result(0, [], trial, EpochsReport(steps[:2]).to_result())

    resumed = pickle.loads(pickle.dumps(tracker))
    resumed.on_trial_start(0, [], trial)
    resumed.on_trial_result(0, [], trial, EpochsReport(steps[1:]).to_result())

    client = MlflowClient(uri)
    (run,) = client.search_runs([experiment_id], filter_string="tags.trial_id = 'sparse_00000'")
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
