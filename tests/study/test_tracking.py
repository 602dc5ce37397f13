"""The tracker's promises when a study is resumed: one run per trial, every step once, the final
metrics once, however the trial's results arrive again."""

import pickle
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from study.tracking import TrialTracker, is_local_store, start_study_run
from trainables.train import EPOCH_METRICS

EPOCHS = 4


def _epoch(epoch: int) -> dict:
    return {"epoch": epoch, **{key: 0.1 * epoch for key in EPOCH_METRICS}}


def _final() -> dict:
    return {**_epoch(EPOCHS), "diverged": False, "sharpness": 1.5, "trial_seconds": 2.0}


def test_a_resumed_trial_that_reports_its_last_epochs_again_logs_each_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, "resumed", {})
    trial = SimpleNamespace(trial_id="abc_00000", config={"seed": 0, "epochs": EPOCHS})
    tracker = TrialTracker(uri, experiment_id, parent)
    tracker.on_trial_start(0, [], trial)
    for epoch in range(1, EPOCHS + 1):
        tracker.on_trial_result(0, [], trial, _epoch(epoch))
    tracker.on_trial_result(0, [], trial, _final())
    # The driver dies before Tune records the trial as finished. The resumed driver (its tracker
    # unpickled from Tune's state) restores the trial from its last checkpoint: the history comes
    # again, then the final result.
    resumed = pickle.loads(pickle.dumps(tracker))
    resumed.on_trial_start(0, [], trial)
    resumed.on_trial_result(0, [], trial, {**_final(), "history": [_epoch(e) for e in (3, 4)]})
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


def test_two_studies_of_one_name_starting_together_share_the_experiment(tmp_path, monkeypatch):
    """The second study looked before the first one created the experiment, then lost the race
    to create it: it uses the first one's experiment, with a parent run of its own."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first_experiment, first_parent = start_study_run(uri, "together", {})
    real_lookup, lookups = MlflowClient.get_experiment_by_name, []

    def lookup(self, name):  # the first look comes before the other study's create
        lookups.append(name)
        return None if len(lookups) == 1 else real_lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", lookup)

    experiment, parent = start_study_run(uri, "together", {})

    assert experiment == first_experiment
    assert parent != first_parent
    assert len(lookups) == 2  # it lost the race and looked again


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("sqlite:////data/study/mlflow.db", True),
        ("file:///data/study/mlruns", True),
        ("/data/study/mlruns", True),
        ("http://127.0.0.1:5000", False),
        ("https://mlflow.example.org", False),
        ("postgresql://user@db.example.org/mlflow", False),  # other machines read it too
        ("databricks", False),
    ],
)
def test_only_a_local_store_keeps_artifacts_in_the_study_folder(uri, local):
    assert is_local_store(uri) is local
