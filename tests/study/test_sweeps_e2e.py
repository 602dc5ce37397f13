"""Studies beyond the explore grid, through the real CLI on digits: baselines, budgets and decay
shapes swept together, and an Optuna search; the MLflow store and the report checked after."""

import itertools
import json
import re

import pytest
from mlflow import MlflowClient

from study.stores import default_tracking_uri

pytestmark = pytest.mark.slow


def child_runs(output, name):
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.fixture(scope="module")
def axes_study(tmp_path_factory, knee_study):
    output = tmp_path_factory.mktemp("axes") / "study"
    sets = {
        "name": "axes",
        "sweep.schedule": "[knee, cosine]",
        "sweep.epochs": "[2, 3]",
        "sweep.decay": "[linear, cosine]",
        "sweep.explore_fraction": "[0.5]",
        "sweep.peak_lr": "[0.05]",
        "sweep.seed": "[0, 1]",
        "sharpness.steps": 2,
    }
    return output, knee_study("run", "--output", str(output), sets=sets)


def test_baselines_run_once_per_budget_and_seed_not_per_knee_axis(axes_study):
    output, proc = axes_study
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = child_runs(output, "axes")

    knee = [r for r in runs if r.data.params["schedule"] == "knee"]
    cosine = [r for r in runs if r.data.params["schedule"] == "cosine"]
    assert len(knee) == 2 * 2 * 2  # seeds x budgets x decay shapes
    assert len(cosine) == 2 * 2  # seeds x budgets: explore fraction and decay are Knee's own
    for run in cosine:  # a baseline's run has no Knee params at all
        assert not {"explore_fraction", "decay"} & run.data.params.keys()
    assert {r.data.params["decay"] for r in knee} == {"linear", "cosine"}
    for run in runs:
        assert run.info.status == "FINISHED"
        epochs = int(run.data.params["epochs"])  # each trial trains its own budget
        history = client.get_metric_history(run.info.run_id, "test_acc")
        assert sorted(m.step for m in history) == list(range(1, epochs + 1))


def test_report_has_schedule_budget_and_decay_sections(axes_study):
    output, _ = axes_study
    report = (output / "report" / "report.md").read_text()

    for section in (
        "## Knee against baseline schedules",
        "## Training budget",
        "## Decay shape of the exploit phase",
    ):
        assert section in report
    assert "cosine 3 epochs" in report  # baselines at the full budget
    assert "knee 50% linear 2 epochs" in report  # Knee at the short one


@pytest.fixture(scope="module")
def optuna_study(tmp_path_factory, knee_study):
    output = tmp_path_factory.mktemp("optuna") / "study"
    sets = {
        "name": "optuna",
        "tune.search": "optuna",
        "tune.num_samples": 4,
        "sweep.explore_fraction": "[0, 1]",
        "sweep.peak_lr": "[0.01, 0.3]",
        "sweep.seed": "[0, 1]",
        "train.epochs": 2,
        "sharpness.steps": 2,
    }
    return output, knee_study("run", "--output", str(output), sets=sets)


def test_optuna_runs_every_suggestion_over_every_seed(optuna_study):
    output, proc = optuna_study
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, runs = child_runs(output, "optuna")

    points: dict[tuple[float, float], set[int]] = {}
    for run in runs:
        params = run.data.params
        point = (float(params["explore_fraction"]), float(params["peak_lr"]))
        points.setdefault(point, set()).add(int(params["seed"]))
        assert run.info.status == "FINISHED"
    assert len(runs) == 4 * 2
    assert list(points.values()) == [{0, 1}] * 4  # four suggestions, each over both seeds
    for explore, lr in points:
        assert 0 <= explore <= 1
        assert 0.01 <= lr <= 0.3


def test_optuna_report_shows_the_search(optuna_study):
    output, proc = optuna_study
    report = (output / "report" / "report.md").read_text()

    assert "## Search" in report
    assert "4 points, each over 2 usable seeds" in report
    assert (output / "report" / "search_landscape.png").read_bytes().startswith(b"\x89PNG")
    # A search's line is its own (a guide, not the test): its best point near 50% explore.
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("search: ")]
    assert "the best point within 10 points of 50% explore" in line
    assert "robust" not in line


def test_max_concurrent_holds_for_a_grid(tmp_path, knee_study):
    """resources.max_concurrent=1 on a 2-CPU machine: trials run one after another (Tune ignores
    its max_concurrent_trials for a grid's generator; the generator must hold the limit)."""
    sets = {
        "name": "serial",
        "resources.max_concurrent": 1,
        "sweep.schedule": "[knee, cosine]",  # and a baseline while decay is not swept
        "sweep.explore_fraction": "[0.0, 1.0]",
        "sweep.peak_lr": "[0.05]",
        "sweep.seed": "[0]",
        "train.epochs": 2,
        "sharpness.steps": 2,
    }
    proc = knee_study("run", "--output", str(tmp_path / "study"), sets=sets)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # MLflow's record: each trial's run starts when Tune starts the trial and ends when it
    # completes, so one at a time means no two runs overlap.
    _, runs = child_runs(tmp_path / "study", "serial")
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert len(spans) == 3
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), spans
    # And Tune's own table never shows more than one trial's CPU in use.
    usage = re.findall(r"Logical resource usage: ([\d.]+)/([\d.]+) CPUs", proc.stdout)
    assert usage, proc.stdout[-2000:]
    assert {float(used) for used, _ in usage} <= {0.0, 1.0}, usage


def _ray_last_results(output) -> dict[str, tuple[str, dict]]:
    """trial_id -> (status, last result) as Tune's experiment snapshot holds them."""
    snapshot = max((output / "tune").glob("experiment_state-*.json"))
    trials = {}
    for trial_json, runtime_json in json.loads(snapshot.read_text())["trial_data"]:
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        trials[trial["trial_id"]] = (trial["status"], runtime.get("last_result") or {})
    return trials


def test_asha_stopped_trials_are_killed_and_tagged_the_rest_finished(tmp_path, knee_study):
    """ASHA judges at epoch 4 of 6 (one rung, past the 50% explore phase): trials below its
    cutoff are stopped there, the rest train on to their final result (sharpness)."""
    epochs, grace = 6, 4
    sets = {
        "name": "asha",
        "sweep.explore_fraction": "[0.0, 0.5]",
        # 0.002 learns slowly: behind at the rung. One trial at a time, each 0.05 trial before
        # its 0.002 twin (the grid's order): the first 0.002 trial reaches the rung behind the
        # one there and is stopped, whatever the machine's speed. Two at a time, the arrival
        # order was the machine's: on a busy one both 0.002 trials came first and none stopped.
        "sweep.peak_lr": "[0.05, 0.002]",
        "resources.max_concurrent": 1,
        "sweep.seed": "[0]",
        "train.epochs": epochs,
        "tune.scheduler": "asha",
        "tune.grace_period": grace,
        "tune.checkpoint_every": 1,  # a report each epoch: ASHA judges at the rung itself
        "sharpness.steps": 2,
    }
    output = tmp_path / "study"
    proc = knee_study("run", "--output", str(output), sets=sets)
    # A study whose trials ASHA stopped is finished, not interrupted.
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "study finished" in proc.stdout

    ray_trials = _ray_last_results(output)
    assert {status for status, _ in ray_trials.values()} == {"TERMINATED"}
    ray_stopped = {t for t, (_, last) in ray_trials.items() if "diverged" not in last}
    num_stopped = int(re.findall(r"AsyncHyperBand: num_stopped=(\d+)", proc.stdout)[-1])
    assert len(ray_stopped) == num_stopped
    assert 0 < num_stopped < len(ray_trials)  # the first trial at the rung always goes on

    _, runs = child_runs(output, "asha")
    assert len(runs) == len(ray_trials) == 4
    for run in runs:
        trial_id, tags = run.data.tags["trial_id"], run.data.tags
        last_epoch = ray_trials[trial_id][1]["epoch"]
        if trial_id in ray_stopped:
            assert last_epoch == grace < epochs
            assert run.info.status == "KILLED"
            assert tags["stopped_early"] == "true"
            assert tags["stopped_at_epoch"] == str(last_epoch)
            assert "sharpness" not in run.data.metrics
        else:
            assert last_epoch == epochs
            assert run.info.status == "FINISHED"
            assert not {"stopped_early", "stopped_at_epoch"} & tags.keys()
            assert "sharpness" in run.data.metrics
    from analysis.runs import load_runs

    frame = load_runs("asha", default_tracking_uri(output))
    trial_of = {run.info.run_id: run.data.tags["trial_id"] for run in runs}
    assert {trial_of[r] for r in frame.loc[frame["stopped"], "run_id"]} == ray_stopped
    assert set(frame.loc[frame["stopped"], "stopped_at_epoch"]) == {float(grace)}
