"""The contract of study/tune_state.py with the installed Ray: a real, tiny Tune experiment (two
trials, three results each, a checkpoint with every result), and every fact the module reads of
Tune's state checked against what Tune itself says (its ResultGrid, its Trial objects in a
callback). On a Ray whose layout differs, a test fails with the assumption that broke: update
study/tune_state.py, then the cap on ``ray[tune]`` in pyproject.toml."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest
import ray
from ray import tune

from study import tune_state
from study.checkpoints import read_backup
from study.snapshot_backup import SnapshotBackup

pytestmark = pytest.mark.slow

RESULTS = 3  # per trial, each with a checkpoint
KEEP = 2  # CheckpointConfig(num_to_keep), as study.driver sets it
FIX = "update study/tune_state.py"


def _assumed(what: str) -> str:
    return f"Ray {ray.__version__}: {what} ({FIX}, checked against Ray {tune_state.CHECKED_RAY})"


class _Watcher(tune.Callback):
    """At the end of every step of Tune's loop: what study.tune_state reads then (where the
    driver's staging folder is, the snapshot the step saved there) next to what Tune's Trial
    objects say at that moment."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not trials:
            return
        try:  # kept for the test to raise: raised here, it would only fail Tune's run
            folders = tune_state.local_state_folders(trials)
            snapshot = tune_state.newest_snapshot(folders.staging) if folders else None
            records = tune_state.read_trials(snapshot.read_bytes()) if snapshot else None
        except tune_state.TuneLayoutError as error:
            self.steps.append({"error": error})
            return
        self.steps.append(
            {
                "folders": folders,
                "snapshot": snapshot.name if snapshot else None,
                "records": records,
                "trials": {
                    t.trial_id: {
                        "status": t.status,
                        "epoch": t.last_result["epoch"] if t.has_reported_at_least_once else None,
                        "checkpoint": Path(t.checkpoint.path).name if t.checkpoint else None,
                    }
                    for t in trials
                },
            }
        )


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A finished two-trial experiment stored locally, as a study stores it."""

    def trainable(config):  # defined here: pickled by value, so workers need not import tests
        for epoch in range(1, RESULTS + 1):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "state.txt").write_text(f"{config['seed']} {epoch}")
                worker = {"command": psutil.Process().cmdline(), "cwd": os.getcwd()}
                tune.report(
                    {"epoch": epoch, **worker}, checkpoint=tune.Checkpoint.from_directory(folder)
                )

    storage = tmp_path_factory.mktemp("tune-state")
    watcher = _Watcher()
    saved = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "0"  # a save every step, as study.ray_env sets it
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"seed": tune.grid_search([0, 1])},
            tune_config=tune.TuneConfig(trial_dirname_creator=lambda trial: trial.trial_id),
            run_config=tune.RunConfig(
                name="contract",
                storage_path=str(storage),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP),
                callbacks=[watcher, SnapshotBackup()],
                verbose=0,
            ),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("TUNE_GLOBAL_CHECKPOINT_S")
        else:
            os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = saved
    assert not grid.errors, grid.errors
    results = {r.metrics["trial_id"]: r for r in grid}
    return {"folder": Path(grid.experiment_path), "results": results, "steps": watcher.steps}


def test_the_experiment_folder_holds_tunes_files_where_the_module_looks(experiment):
    folder = experiment["folder"]
    assert (folder / tune_state.TUNER_FILE).is_file(), _assumed(
        f"Tuner.restore no longer reads {tune_state.TUNER_FILE} in the experiment folder"
    )
    snapshots = tune_state.snapshots(folder)
    assert len(snapshots) == 1, _assumed(
        f"a session no longer keeps one snapshot {tune_state.SNAPSHOT_GLOB}: "
        f"{sorted(p.name for p in folder.iterdir())}"
    )
    session = tune_state.session_of(snapshots[0])
    names = [p.name for p in tune_state.session_files(folder, session)]
    assert names == sorted([snapshots[0].name, f"basic-variant-state-{session}.json"]), _assumed(
        f"a grid search's session no longer keeps its snapshot and its basic-variant-state: "
        f"{sorted(p.name for p in folder.iterdir())}"
    )
    for path in tune_state.session_files(folder, session):
        assert tune_state.reads_back_whole(path.read_bytes()), _assumed(
            f"{path.name} is neither JSON nor a pickle"
        )
    for trial_id in experiment["results"]:
        kept = tune_state.checkpoint_folders(folder / trial_id)
        expected = [f"checkpoint_{i:06d}" for i in range(RESULTS - KEEP, RESULTS)]
        assert kept == expected, _assumed(
            f"a trial's checkpoints are no longer folders checkpoint_<index>, numbered from 0 in "
            f"the order saved: {sorted(p.name for p in (folder / trial_id).iterdir())}"
        )


def test_the_snapshot_records_each_trial_as_tunes_result_grid_has_it(experiment):
    folder, results = experiment["folder"], experiment["results"]
    snapshot = tune_state.newest_snapshot(folder)
    records = tune_state.read_trials(snapshot.read_bytes())  # TuneLayoutError names what broke

    assert set(records) == set(results), _assumed("the snapshot's trial ids are not the trials'")
    for trial_id, record in records.items():
        result = results[trial_id]
        assert record.status == tune_state.FINISHED, _assumed(
            f"a finished trial's status is {record.status!r}, not {tune_state.FINISHED!r}"
        )
        assert record.finished
        assert record.folder == Path(result.path).name == trial_id, _assumed(
            "a trial's 'relative_logdir' is no longer its folder in the experiment folder"
        )
        assert record.num_failures == 0, _assumed(
            "the run metadata no longer holds 'num_failures' (an int)"
        )
        assert record.start_time is not None, _assumed(
            "the run metadata no longer holds 'start_time'"
        )
        assert record.last_result is not None, _assumed(
            "the run metadata no longer holds 'last_result' (a dict)"
        )
        assert record.epoch == result.metrics["epoch"] == RESULTS, _assumed(
            "the run metadata's 'last_result' is not the trial's last result"
        )
        assert record.checkpoints is not None, _assumed(
            "the run metadata's 'checkpoint_manager' is no longer a hex cloudpickle of a "
            "_CheckpointManager with _latest_checkpoint_result"
        )
        assert record.checkpoints == set(tune_state.checkpoint_folders(folder / trial_id)), (
            _assumed("the checkpoint manager no longer names the checkpoint folders kept")
        )
        assert record.restores_from == Path(result.checkpoint.path).name, _assumed(
            "the checkpoint a trial restores from is no longer the highest-numbered one its "
            "checkpoint manager names"
        )


def test_at_each_step_end_the_staging_folder_holds_that_steps_save(experiment):
    """What SnapshotBackup relies on: during the run, the staging folder Trial.storage names
    holds the snapshot of the step just ended (every trial as Tune's Trial objects have it), and
    Tune copies it into the experiment folder the module names."""
    steps, folder = experiment["steps"], experiment["folder"]
    assert steps, "Tune's callbacks never got on_step_end with trials"
    snapshot = tune_state.newest_snapshot(folder)
    for step in steps:
        if "error" in step:
            raise step["error"]
        folders = step["folders"]
        assert folders is not None, _assumed("a local experiment's storage is not local")
        assert folders.experiment == folder, _assumed(
            "Trial.storage.experiment_fs_path is not the experiment folder"
        )
        assert folders.staging != folder, _assumed(
            "the driver no longer stages Tune's state outside the experiment folder"
        )
        assert step["snapshot"] == snapshot.name, _assumed(
            "at a step's end, the staging folder (Trial.storage.experiment_driver_staging_path) "
            f"holds no snapshot of the session: {step['snapshot']}"
        )
        recorded = {
            trial_id: {
                "status": record.status,
                "epoch": record.epoch,
                "checkpoint": record.restores_from,
            }
            for trial_id, record in step["records"].items()
        }
        assert recorded == step["trials"], _assumed(
            "the staging folder's snapshot at a step's end is not of that step (Tune saves its "
            "state before the callbacks' on_step_end)"
        )
    running = [t for step in steps for t in step["trials"].values() if t["status"] == "RUNNING"]
    assert any(t["checkpoint"] for t in running), "no step caught a trial running with a checkpoint"


def test_the_backup_holds_the_final_set_of_the_session(experiment):
    folder = experiment["folder"]
    snapshot = tune_state.newest_snapshot(folder)
    files = tune_state.session_files(folder, tune_state.session_of(snapshot))
    assert read_backup(snapshot) == {p.name: p.read_bytes() for p in files}


def test_each_trial_ran_in_a_worker_the_module_recognises(experiment):
    for trial_id, result in experiment["results"].items():
        command, cwd = result.metrics["command"], result.metrics["cwd"]
        assert tune_state.is_trial_worker(command, cwd, trial_id), _assumed(
            f"a trial's worker is no longer titled {tune_state.TRIAL_WORKER_TITLE}... with a "
            f"working directory named like the trial's folder: {command[:1]} in {cwd}"
        )
