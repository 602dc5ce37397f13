"""Studies against real servers: a Ray head started with ``ray start --head`` (token auth on), a
two-node Ray cluster, and an ``mlflow server``. The MLflow picture is the one the embedded
default leaves; two studies at once on one server keep their runs apart; a driver without the
cluster's token is turned away."""

import contextlib
import json

import pytest
from harness import (
    LOOPBACK,
    Study,
    assert_complete_picture,
    environment,
    listening_sockets,
    mlflow_picture,
    session_processes,
    study_args,
)
from mlflow import MlflowClient

from analysis.runs import load_history
from trainables.results import PARENT_RUN_TAG

pytestmark = pytest.mark.slow

EPOCHS = 3
SWEEP = {"explore_fraction": [0.5, 1.0], "peak_lr": [0.05], "seed": [0]}


def _run(tmp, name, cluster, *extra, sweep=SWEEP, env=None, experiment=None):
    output = tmp / name
    args = study_args(output, experiment or name, EPOCHS, sweep, "resources.max_concurrent=1")
    study = Study(
        [*args, "--address", cluster.address, *extra], tmp / f"{name}.log", env or cluster.env
    )
    return output, study


def _finish(study, timeout=300):
    try:
        return study.wait(timeout)
    finally:
        assert study.stop() == []  # the driver left nothing running


def test_a_study_on_a_two_node_cluster(tmp_path, two_node_cluster):
    output, study = _run(tmp_path, "two-nodes", two_node_cluster, sweep=SWEEP)
    assert _finish(study) == 0, study.output()[-3000:]
    assert_complete_picture(output, trials=2, epochs=EPOCHS)


def test_two_studies_at_once_on_a_ray_head_and_an_mlflow_server(tmp_path, ray_head, mlflow_server):
    """Each gives the embedded default's picture, in the server. Same name, so same experiment:
    each study's trials are children of its own parent only."""
    seeds = {"first": [1, 2], "second": [3, 4]}
    studies, leftovers = {}, {}
    with contextlib.ExitStack() as started:  # both stopped, whichever fails to start or finish
        for name, seed in seeds.items():
            sweep = {"explore_fraction": [0.5], "peak_lr": [0.05], "seed": seed}
            output, study = _run(
                tmp_path,
                name,
                ray_head,
                "--tracking-uri",
                mlflow_server,
                sweep=sweep,
                experiment="together",
            )
            studies[name] = (output, study)
            started.callback(lambda name=name, study=study: leftovers.update({name: study.stop()}))
        codes = {name: study.wait(300) for name, (_, study) in studies.items()}
    for name, (_, study) in studies.items():
        assert codes[name] == 0, study.output()[-3000:]
        assert leftovers[name] == []  # the driver left nothing running

    parents, tune_folders = set(), set()
    for name, (output, study) in studies.items():
        assert_complete_picture(output, trials=2, epochs=EPOCHS)
        _, parent, children = mlflow_picture(output)
        parents.add(parent.info.run_id)
        assert sorted(int(run.data.params["seed"]) for run in children) == seeds[name]
        meta = json.loads((output / "study.json").read_text())
        assert (meta["tracking_uri"], meta["address"]) == (mlflow_server, ray_head.address)
        # Tune stages a driver's state in the head's session under the second it started and
        # the experiment's name: on a shared head each study's name is its own.
        assert meta["tune_name"].startswith("together-")
        assert list((output / meta["tune_name"]).glob("experiment_state-*.json"))
        tune_folders.add(meta["tune_name"])
        # Everything went to the server, the report's attached copy too.
        assert not (output / "mlflow.db").exists()
        assert not (output / "mlartifacts").exists()
        log = study.output()
        page = f"{mlflow_server}/#/experiments/{meta['experiment_id']}/runs"
        view = "viewStateShareKey=knee-study"  # the study's saved view of its Runs page
        assert f"browse it:    {page}?workflowType=machine_learning&{view}\n" in log
        assert "View run" not in log  # MLflow's two lines per finished run, through the table
        # load_history's requests to a server go several at a time: the same values as asking
        # MLflow one run at a time.
        history = load_history("together", mlflow_server, parent_run_id=parent.info.run_id)
        assert len(history) == 2 * EPOCHS
        client = MlflowClient(mlflow_server)
        for run in children:
            mine = history[history["run_id"] == run.info.run_id]
            asked = client.get_metric_history(run.info.run_id, "test_acc")
            assert dict(zip(mine["epoch"], mine["test_acc"], strict=True)) == {
                m.step: m.value for m in asked
            }
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("together")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 + 4  # two parents, four trials: nothing doubled, nothing lost
    assert {r.info.run_id for r in runs if PARENT_RUN_TAG not in r.data.tags} == parents
    assert len(tune_folders) == 2


def test_a_driver_without_the_clusters_token_is_turned_away(tmp_path, ray_head):
    """Token auth is on: without RAY_AUTH_MODE=token and the token, no driver joins."""
    # Ray retries a refused connection for ~20 s (one try a second): two tries tell the same.
    env = environment(RAY_NUM_REDIS_GET_RETRIES="2")
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    output, study = _run(tmp_path, "no-token", ray_head, env=env)
    assert _finish(study, timeout=180) == 2
    lines = study.output().strip().splitlines()
    assert lines[-1].startswith("knee-study: error: Failed to connect to Ray cluster at"), lines
    assert "RAY_AUTH_MODE=token" in lines[-1]
    assert not output.exists()


def test_the_ray_head_listens_on_loopback_only(ray_head):
    listening = listening_sockets(session_processes(ray_head.session))
    assert listening
    for process, address, port in listening:
        assert address in LOOPBACK, f"{process} listens on {address}:{port}"


LONG_EPOCHS = 250  # long enough to lose the server mid-trial (about 10 s a trial here)


def _most_epochs_logged(uri: str, experiment: str) -> int:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    return max((len(client.get_metric_history(r.info.run_id, "test_acc")) for r in runs), default=0)


def test_a_study_whose_mlflow_server_goes_away_stops_and_resumes(tmp_path, own_mlflow_server):
    """The server dies mid-study: the study stops with Tune's state saved (exit 130, one line, no
    traceback); once the server is back, resume finishes it with every epoch in MLflow once."""
    server, output = own_mlflow_server, tmp_path / "study"
    sweep = {"explore_fraction": [0.5], "peak_lr": [0.05], "seed": [0, 1]}
    args = [*study_args(output, "server-lost", LONG_EPOCHS, sweep), "--tracking-uri", server.uri]
    # A dead server fails within a second, not after MLflow's minutes of backoff. Two quick
    # retries stay: with none, a request on a kept-alive connection the server has just closed
    # (uvicorn drops idle ones after 5 s) fails the resumed study on a live server.
    env = environment(
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="2",
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="0",
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER="0.1",
    )
    study = Study(args, tmp_path / "run.log", env)
    try:
        study.wait_for(
            lambda: _most_epochs_logged(server.uri, "server-lost") >= 3, 180, "epochs in MLflow"
        )
        server.stop()
        code = study.wait(180)
    finally:
        leftovers = study.stop()
    log = study.output()
    assert code == 130, log[-3000:]
    assert leftovers == []
    assert "Traceback" not in log
    assert "knee-study: MLflow failed: API request to" in log
    assert f"continue it:  knee-study resume {output}" in log

    server.start()
    resumed = Study(["resume", str(output)], tmp_path / "resume.log", env)
    try:
        code = resumed.wait(300)
    finally:
        assert resumed.stop() == []
    assert code == 0, resumed.output()[-3000:]
    assert "continues after epoch" in resumed.output()  # from checkpoints, not from scratch
    assert_complete_picture(output, trials=2, epochs=LONG_EPOCHS)
