"""The driver stopped mid-study: SIGKILL to its process group (a crash, an OOM kill) or SIGINT
(Ctrl-C), then ``knee-study resume``. Finished trials are not run again, every trial ends with
one FINISHED run holding each epoch once, and nothing is left RUNNING. While the study runs,
nothing it started listens beyond loopback."""

import signal

import pytest
from harness import (
    LOOPBACK,
    Study,
    assert_complete_picture,
    checkpoint_files,
    latest_checkpoint,
    mlflow_picture,
    study_args,
    trial_states,
)

from study import tune_state

pytestmark = pytest.mark.slow

EPOCHS = 12
SWEEP = {"explore_fraction": [0.5], "peak_lr": [0.05], "seed": [0, 1, 2]}  # 3 trials, 2 at a time


def _mid_study(output, finished: int):
    """True once ``finished`` trials are done and another has checkpoints but is still running."""
    states = trial_states(output)
    done = [t for t, s in states.items() if s["status"] == "TERMINATED"]
    running = [
        t
        for t, s in states.items()
        if s["status"] == "RUNNING" and latest_checkpoint(output, t) >= 1
    ]
    return len(done) >= finished and running


def _run_runs(output):
    """trial_id -> (status, end_time, trial_seconds) of each child run."""
    _, _, children = mlflow_picture(output)
    return {
        r.data.tags["trial_id"]: (
            r.info.status,
            r.info.end_time,
            r.data.metrics.get("trial_seconds"),
        )
        for r in children
    }


def _stop_and_resume(tmp, name, sig, finished, damage_snapshot=False):
    output = tmp / "study"
    study = Study(study_args(output, name, EPOCHS, SWEEP), tmp / "run.log")
    try:
        study.wait_for(
            lambda: _mid_study(output, finished), 180, f"{finished} trial(s) finished, one running"
        )
        listening = study.listening_sockets()
        commands = [" ".join(p.cmdline()) for p in study.processes()]
        study.signal_group(sig)
        code = study.wait(120)
    finally:
        leftovers = study.stop()
    if damage_snapshot:
        # As a kill in the middle of Tune rewriting its experiment snapshot leaves it (one run in
        # four here): resume must put the last good copy back.
        snapshot = max((output / "tune").glob("experiment_state-*.json"))
        snapshot.write_bytes(b"")
    stopped = {
        "code": code,
        "log": study.output(),
        "leftovers": leftovers,
        "states": trial_states(output),
        "runs": _run_runs(output),
        "parent": mlflow_picture(output)[1].info.status,
        "checkpoints": {t: checkpoint_files(output, t) for t in trial_states(output)},
    }
    resumed = Study(["resume", str(output)], tmp / "resume.log")
    try:
        resume_code = resumed.wait(300)
    finally:
        resume_leftovers = resumed.stop()
    return {
        "output": output,
        "listening": listening,
        "commands": commands,
        "stopped": stopped,
        "resumed": {
            "code": resume_code,
            "log": resumed.output(),
            "leftovers": resume_leftovers,
            "states": trial_states(output),
            "runs": _run_runs(output),
            "checkpoints": {t: checkpoint_files(output, t) for t in trial_states(output)},
        },
    }


@pytest.fixture(scope="module")
def killed_driver(tmp_path_factory):
    return _stop_and_resume(
        tmp_path_factory.mktemp("killed-driver"),
        "killed-driver",
        signal.SIGKILL,
        1,
        damage_snapshot=True,
    )


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    return _stop_and_resume(tmp_path_factory.mktemp("interrupted"), "interrupted", signal.SIGINT, 0)


def test_a_killed_driver_leaves_runs_open_that_resume_finishes(killed_driver):
    stopped, resumed = killed_driver["stopped"], killed_driver["resumed"]
    assert stopped["code"] == -signal.SIGKILL
    assert "RUNNING" in {status for status, _, _ in stopped["runs"].values()}
    assert resumed["code"] == 0, resumed["log"][-3000:]
    assert resumed["leftovers"] == []
    assert_complete_picture(killed_driver["output"], trials=3, epochs=EPOCHS)


def test_resume_does_not_rerun_finished_trials(killed_driver):
    stopped, resumed = killed_driver["stopped"], killed_driver["resumed"]
    finished = [t for t, s in stopped["states"].items() if s["status"] == "TERMINATED"]
    unfinished = [t for t in stopped["states"] if t not in finished]
    assert finished
    assert unfinished
    for trial_id in finished:
        assert resumed["runs"][trial_id] == stopped["runs"][trial_id]  # same end, same seconds
        assert resumed["checkpoints"][trial_id] == stopped["checkpoints"][trial_id]  # untouched
        assert (
            resumed["states"][trial_id]["start_time"] == stopped["states"][trial_id]["start_time"]
        )
        assert f"trial {trial_id} continues after epoch" not in resumed["log"]  # never restored
    # Continued from the checkpoint the restored state names, not from scratch. (Files on disk
    # may be newer: a checkpoint written in the step the driver died in, or after the last good
    # copy of the state, is not in it.)
    for trial_id in unfinished:
        named = stopped["states"][trial_id]["restores_from"]
        if named is not None:  # checkpoint_00000k holds epoch k + 1 (one an epoch)
            epoch = tune_state.checkpoint_index(named) + 1
            assert f"trial {trial_id} continues after epoch {epoch}\n" in resumed["log"]


def test_ctrl_c_stops_the_study_cleanly_with_exit_130(interrupted):
    stopped = interrupted["stopped"]
    assert stopped["code"] == 130, stopped["log"][-3000:]
    assert f"knee-study resume {interrupted['output']}" in stopped["log"]
    assert "Tuner.restore" not in stopped["log"]  # Tune's own hint, which the CLI replaces
    assert "study stopped" in stopped["log"]
    assert stopped["leftovers"] == []  # every process exited by itself
    assert stopped["parent"] == "KILLED"
    assert "RUNNING" not in {status for status, _, _ in stopped["runs"].values()}
    assert "KILLED" in {status for status, _, _ in stopped["runs"].values()}


def test_an_interrupted_study_resumes_to_a_complete_picture(interrupted):
    resumed = interrupted["resumed"]
    assert resumed["code"] == 0, resumed["log"][-3000:]
    assert resumed["leftovers"] == []
    assert_complete_picture(interrupted["output"], trials=3, epochs=EPOCHS)


def test_a_local_study_listens_on_loopback_only(killed_driver):
    """Driver, GCS, raylet, agents and trial workers: every listening socket is on loopback."""
    listening = killed_driver["listening"]
    assert listening  # the check saw the study's sockets at all
    for process, address, port in listening:
        assert address in LOOPBACK, f"{process} listens on {address}:{port}"
    listeners = " ".join(process for process, _, _ in listening)
    for part in ("gcs_server", "raylet", "ray::ImplicitFunc", "knee-study run"):
        assert part in listeners, f"no listening socket seen for {part}"


def test_the_ray_dashboard_is_off_by_default(killed_driver):
    """Ray keeps a minimal dashboard process (no web UI, no frontend) and nothing on its port."""
    assert all(port != 8265 for _, _, port in killed_driver["listening"])
    dashboards = [c for c in killed_driver["commands"] if "dashboard.py" in c]
    assert dashboards, killed_driver["commands"]  # the check saw Ray's dashboard process at all
    for command in dashboards:
        assert "--minimal" in command, dashboards
        assert "--disable-frontend" in command, dashboards
