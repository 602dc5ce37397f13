"""Real studies for the fault tests: the installed ``knee-study`` in a session of its own, watched
through the files Ray writes, every process of that session reaped afterwards, and the MLflow
picture it left read back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil
from mlflow import MlflowClient

from study import tune_state
from study.checkpoints import read_backup
from trainables.results import DIVERGED_TAG, EPOCH_METRICS, PARENT_RUN_TAG, TRIAL_ID_TAG

BIN = Path(sys.executable).parent
KNEE_STUDY = str(BIN / "knee-study")  # the installed command
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def environment(**extra: str) -> dict[str, str]:
    """The test process's environment (loopback-only Ray, see tests/conftest.py) plus ``extra``,
    less what an in-process ``knee-study`` main() set for itself: each study sets its own."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **extra}
    env.pop("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", None)
    return env


def study_args(
    output: Path, name: str, epochs: int, sweep: Mapping[str, list], *sets: str
) -> list[str]:
    """``run`` arguments for a tiny study: every setting a fault test relies on is pinned here
    (the shipped default may change), ``sets`` add or override ``key=value`` items."""
    items = [f"sweep.{key}={values}" for key, values in sweep.items()]
    items += [
        f"name={name}",
        f"train.epochs={epochs}",
        "sharpness.steps=3",
        "sharpness.batches=2",
        "tune.checkpoint_every=1",
        "tune.max_failures=2",
        "resources.cpus_per_trial=1",
        "resources.max_concurrent=2",
        *sets,
    ]
    return ["run", *(arg for item in items for arg in ("--set", item)), "--output", str(output)]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition`` until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def session_processes(sid: int) -> list[psutil.Process]:
    """Live processes of session ``sid``: a command started in a new session and all it spawned
    (Ray's daemons and workers keep their driver's session even in process groups of their own)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == sid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (OSError, psutil.Error):
            pass  # gone meanwhile
    return found


def stop_session(sid: int, grace: float = 30.0, term: bool = True) -> list[str]:
    """End every process of session ``sid``: wait up to ``grace`` seconds for them to exit (after
    SIGTERM when ``term``), then SIGKILL what is left. Returns the names of the processes that had
    to be killed or signalled."""
    processes = session_processes(sid)
    if term:
        for process in processes:
            _signal(process, signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=grace)
    names = [_name(p) for p in alive]
    for process in alive:
        _signal(process, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=10)
    left = session_processes(sid)
    assert not left, f"processes outlived SIGKILL: {[_name(p) for p in left]}"
    return [_name(p) for p in processes] if term else names


def _signal(process: psutil.Process, sig: int) -> None:
    with contextlib.suppress(psutil.Error):  # gone meanwhile
        process.send_signal(sig)


def _name(process: psutil.Process) -> str:
    try:
        # Paths by their last part: a long checkout path must not push the program's name
        # past the cut (CI's gcs_server binary path alone is over 80 characters).
        words = [Path(word).name if word.startswith("/") else word for word in process.cmdline()]
        return f"{process.pid} {' '.join(words)[:80]}"
    except psutil.Error:
        return str(process.pid)


def listening_sockets(processes: list[psutil.Process]) -> list[tuple[str, str, int]]:
    """(process, address, port) of every listening TCP socket or bound UDP socket."""
    found = []
    for process in processes:
        try:
            for conn in process.net_connections(kind="inet"):
                udp = conn.type == socket.SOCK_DGRAM and not conn.raddr
                if conn.status == psutil.CONN_LISTEN or udp:
                    found.append((_name(process), conn.laddr.ip, conn.laddr.port))
        except psutil.Error:
            pass  # gone meanwhile
    return found


class Study:
    """``knee-study ARGS`` running in a session of its own, output to ``log``."""

    def __init__(self, args: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [KNEE_STUDY, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env or environment()),
                start_new_session=True,
            )
        self.sid = self.proc.pid

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(
                f"knee-study ran past {timeout} s:\n{self.output()[-3000:]}"
            ) from None

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str):
        """:func:`wait_for` that fails at once, with the study's output, if the study ends first."""

        def check():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"knee-study exited ({self.proc.returncode}) before {what}:\n"
                    f"{self.output()[-3000:]}"
                )
            return condition()

        return wait_for(check, timeout, what)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        return session_processes(self.sid)

    def signal_group(self, sig: int) -> None:
        """Signal the driver's process group, as a terminal does for Ctrl-C."""
        os.killpg(self.proc.pid, sig)

    def stop(self, grace: float = 30.0) -> list[str]:
        """Wait up to ``grace`` seconds for every process of the study to exit by itself, then
        kill the rest; returns the ones that had to be killed (none after a clean stop)."""
        with contextlib.suppress(subprocess.TimeoutExpired):  # hung: killed with the rest
            self.proc.wait(grace)
        return stop_session(self.sid, grace=grace, term=False)

    def trial_worker(self, trial_id: str) -> psutil.Process | None:
        """The Ray worker training ``trial_id`` (a study names each trial's folder by its id)."""
        for process in self.processes():
            try:
                if tune_state.is_trial_worker(process.cmdline(), process.cwd(), trial_id):
                    return process
            except psutil.Error:
                pass
        return None

    def listening_sockets(self) -> list[tuple[str, str, int]]:
        return listening_sockets(self.processes())


# What Ray Tune leaves in <output>/tune (a study on its own local Ray): read-only views for
# watching a study, read through study.tune_state like resume reads it.


def trial_states(output: Path) -> dict[str, dict[str, Any]]:
    """trial_id -> {"status", "num_failures", "start_time", "epoch", "restores_from"} from Tune's
    newest experiment snapshot or its last good copy ({} while there is none or it is being
    rewritten). ``epoch``: of the trial's last result the state holds; ``restores_from``: the
    checkpoint folder a restore of this state continues from. With a checkpoint every epoch (as
    :func:`study_args` pins) that is usually the last result's, but not always: Tune registers a
    result's checkpoint in a later step of its loop than the result, and a snapshot can fall
    between. A snapshot laid out otherwise than study.tune_state expects raises its
    TuneLayoutError."""
    snapshot = tune_state.newest_snapshot(output / "tune")
    if snapshot is None:
        return {}
    backup = read_backup(snapshot) or {}
    for content in (_read(snapshot), backup.get(snapshot.name)):
        try:  # a damaged snapshot: its last good copy, as resume uses it
            trials = tune_state.read_trials(content or b"")
            break
        except ValueError:
            pass
    else:
        return {}
    return {
        trial_id: {
            "status": trial.status,
            "num_failures": trial.num_failures,
            "start_time": trial.start_time,
            "epoch": trial.epoch,
            "restores_from": trial.restores_from,
        }
        for trial_id, trial in trials.items()
    }


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def checkpoints(output: Path, trial_id: str) -> list[str]:
    """The trial's checkpoint folders on disk, oldest first (Tune keeps the newest two)."""
    return tune_state.checkpoint_folders(output / "tune" / trial_id)


def latest_checkpoint(output: Path, trial_id: str) -> int:
    """The index of the trial's newest checkpoint (epoch - 1 with one per epoch), or -1."""
    names = checkpoints(output, trial_id)
    return tune_state.checkpoint_index(names[-1]) if names else -1


def checkpoint_files(output: Path, trial_id: str) -> dict[str, int]:
    """Every file of a trial's checkpoints with its modification time."""
    folder = output / "tune" / trial_id
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in folder.glob(f"{tune_state.CHECKPOINT_GLOB}/*")
    }


# The MLflow picture a study leaves.


def mlflow_picture(output: Path) -> tuple[MlflowClient, Any, list[Any]]:
    """The study's client, parent run and child runs, found through its study.json."""
    meta = json.loads((output / "study.json").read_text())
    client = MlflowClient(meta["tracking_uri"])
    parent = client.get_run(meta["parent_run_id"])
    children = client.search_runs(
        [meta["experiment_id"]],
        filter_string=f"tags.`{PARENT_RUN_TAG}` = '{meta['parent_run_id']}'",
        max_results=1000,
    )
    return client, parent, children


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def assert_complete_picture(output: Path, trials: int, epochs: int) -> None:
    """One FINISHED parent, one FINISHED child per trial, each epoch logged exactly once."""
    client, parent, children = mlflow_picture(output)
    assert parent.info.status == "FINISHED"
    assert len(children) == trials
    assert len({run.data.tags[TRIAL_ID_TAG] for run in children}) == trials
    for run in children:
        assert run.info.status == "FINISHED", run.info.run_name
        assert run.data.tags[DIVERGED_TAG] == "false"
        for key in EPOCH_METRICS:
            assert steps(client, run.info.run_id, key) == list(range(1, epochs + 1)), key
        for key in ("sharpness", "trial_seconds"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
    # The study's report, attached to its parent run, is the one in the study folder.
    with tempfile.TemporaryDirectory() as elsewhere:  # not over the study's own copy
        attached = client.download_artifacts(parent.info.run_id, "report/report.md", elsewhere)
        assert Path(attached).read_text() == (output / "report" / "report.md").read_text()
