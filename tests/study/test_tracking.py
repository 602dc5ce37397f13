"""The tracker's promises when a study is resumed: one run per trial, every step once, the final
metrics once, however the trial's results arrive again."""

import os
import pickle
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from study.tracking import (
    TrackingError,
    TrialTracker,
    absolute_uri,
    check_tracking_uri,
    close_open_runs,
    is_local_store,
    local_path,
    start_study_run,
)
from trainables.results import EPOCH_METRICS, PARENT_RUN_TAG, EpochsReport, FinalReport

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


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///runs/mlflow.db", "sqlite:///{cwd}/runs/mlflow.db"),
        ("sqlite:///runs/mlflow.db?timeout=30", "sqlite:///{cwd}/runs/mlflow.db?timeout=30"),
        ("sqlite:////data/mlflow.db", "sqlite:////data/mlflow.db"),
        ("mlruns", "{cwd}/mlruns"),
        ("file:mlruns", "file://{cwd}/mlruns"),
        ("file:///data/mlruns", "file:///data/mlruns"),
        ("file:my store", "file://{cwd}/my%20store"),
        ("sqlite://", "sqlite://"),  # in memory
        ("sqlite:///file:runs.db?mode=ro&uri=true", "sqlite:///file:runs.db?mode=ro&uri=true"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("databricks", "databricks"),
    ],
)
def test_a_relative_local_store_is_made_absolute(uri, expected, tmp_path, monkeypatch):
    """A study's URI must name the same store wherever resume or report run from."""
    monkeypatch.chdir(tmp_path)
    assert absolute_uri(uri) == expected.format(cwd=tmp_path.resolve())


def test_a_stores_own_path_is_found_again_from_its_absolute_uri(tmp_path, monkeypatch):
    """What run stores, report and resume read back: the same path, spaces and all."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path.resolve() / "my store"
    store.mkdir()
    (store / "x.db").touch()
    for uri, path in [
        ("file:my store", store),
        ("my store", store),
        ("sqlite:///my store/x.db?timeout=5", store / "x.db"),
    ]:
        assert local_path(absolute_uri(uri)) == path
        check_tracking_uri(absolute_uri(uri), must_exist=True)


@pytest.mark.parametrize("uri", ["databricks", "databricks://my-profile", "file:///data/mlruns"])
def test_stores_mlflow_knows_pass_the_check(uri):
    check_tracking_uri(uri)


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("bogus://x", "MLflow has no store for bogus: URIs"),
        ("mssql+nosuchdriver://knee@127.0.0.1/runs", "cannot use mssql+nosuchdriver: "),
    ],
)
def test_stores_mlflow_cannot_use_are_one_line(uri, words):
    with pytest.raises(TrackingError) as refused:
        check_tracking_uri(uri)
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)


def test_closing_a_stopped_study_closes_every_open_run_on_every_page(tmp_path, monkeypatch):
    """250 open runs from a store that answers 100 a page: all closed; a finished run, the
    parent and another study's runs are left as they were."""
    search_runs = MlflowClient.search_runs

    def hundred_a_page(self, *args, max_results=1000, **kwargs):
        return search_runs(self, *args, max_results=min(max_results, 100), **kwargs)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("study")
    parent, other = (client.create_run(experiment).info.run_id for _ in range(2))
    child = {PARENT_RUN_TAG: parent}
    open_ids = {client.create_run(experiment, tags=child).info.run_id for _ in range(250)}
    done = client.create_run(experiment, tags=child).info.run_id
    client.set_terminated(done, status="FINISHED")
    others = client.create_run(experiment, tags={PARENT_RUN_TAG: other}).info.run_id
    monkeypatch.setattr(MlflowClient, "search_runs", hundred_a_page)

    assert close_open_runs(uri, experiment, parent, "KILLED") == 250

    runs = search_runs(client, [experiment], max_results=1000)
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert {statuses[i] for i in open_ids} == {"KILLED"}
    assert statuses[done] == "FINISHED"
    assert statuses[parent] == statuses[others] == "RUNNING"


_PATH_PART = st.text(
    st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -_.%#"), min_size=1
).filter(lambda part: part not in (".", ".."))


@settings(max_examples=50, deadline=None)
@given(parts=st.lists(_PATH_PART, min_size=1, max_size=3))
def test_every_local_store_uri_names_the_same_path_once_made_absolute(parts, tmp_path_factory):
    """Whatever a relative local store is called (spaces, %, #), the URI run stores names the
    path it meant from where it ran, and making it absolute again changes nothing."""
    cwd = tmp_path_factory.mktemp("cwd").resolve()
    relative = "/".join(parts)
    old = Path.cwd()
    os.chdir(cwd)
    try:
        for uri in (relative, f"file:{quote(relative)}", f"sqlite:///{relative}"):
            stored = absolute_uri(uri)
            assert local_path(stored) == cwd / relative
            assert absolute_uri(stored) == stored
    finally:
        os.chdir(old)
