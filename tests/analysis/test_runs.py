"""analysis/runs.py: load_runs / load_history read back what the MLflow client wrote (tests/
factories.py writes it as knee-study run lays it out), typed, parents left out."""

import numpy as np
import pytest
from factories import grid, log_study
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from analysis import runs as runs_module
from analysis.runs import AnalysisError, load_history, load_runs
from trainables.results import PARENT_RUN_TAG


def test_one_typed_row_per_trial_and_no_parent(tracking_uri):
    trials = grid(explore_fraction=[0.0, 0.5], peak_lr=[0.1], seed=[0, 1, 2])
    for t in trials:
        t.update(schedule="knee", epochs=30, nesterov=False, data_root=None)
        t.update(test_acc=0.9 + t["seed"] / 100, sharpness=2.0)
    trials[0]["status"], trials[1]["diverged"] = "FAILED", True
    parent = log_study(tracking_uri, "typed", trials)

    runs = load_runs("typed", tracking_uri)

    assert len(runs) == 6
    assert parent not in set(runs["run_id"])
    assert runs["explore_fraction"].dtype == float
    assert runs["peak_lr"].dtype == float
    assert runs["seed"].dtype == int
    assert runs["epochs"].dtype.kind == "i"
    assert runs["nesterov"].dtype == bool
    assert runs["data_root"].isna().all()
    assert set(runs["schedule"]) == {"knee"}
    assert sorted(runs["test_acc"]) == pytest.approx([0.90, 0.90, 0.91, 0.91, 0.92, 0.92])
    assert runs["status"].tolist().count("FAILED") == 1
    assert runs["diverged"].sum() == 1
    assert {"explore_fraction", "seed", "epochs"} <= set(runs.attrs["params"])


def test_trials_the_scheduler_stopped_are_marked_with_their_epoch(tracking_uri):
    """The tracker tags a trial ASHA stopped (KILLED, stopped_early, stopped_at_epoch); a run
    KILLED because the study was interrupted is not a stopped trial."""
    trials = grid(explore_fraction=[0.5], peak_lr=[0.1], seed=[0, 1, 2], test_acc=[0.9])
    trials[1]["status"] = trials[2]["status"] = "KILLED"
    log_study(tracking_uri, "stopped", trials)
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name("stopped").experiment_id
    (asha,) = client.search_runs([experiment_id], filter_string="params.seed = '1'")
    client.set_tag(asha.info.run_id, "stopped_early", "true")
    client.set_tag(asha.info.run_id, "stopped_at_epoch", "24")

    runs = load_runs("stopped", tracking_uri).set_index("seed")

    assert runs["stopped"].tolist() == [False, True, False]
    assert runs["stopped"].dtype == bool
    assert runs["stopped_at_epoch"].dtype == float
    assert runs.loc[1, "stopped_at_epoch"] == 24.0
    assert runs.loc[[0, 2], "stopped_at_epoch"].isna().all()
    assert runs["status"].tolist() == ["FINISHED", "KILLED", "KILLED"]


def test_pages_through_many_runs(tracking_uri, monkeypatch):
    monkeypatch.setattr(runs_module, "_PAGE", 4)  # 10 runs: three search requests
    log_study(tracking_uri, "paged", grid(explore_fraction=[0.5], peak_lr=[0.1], seed=range(10)))

    assert sorted(load_runs("paged", tracking_uri)["seed"]) == list(range(10))


def test_runs_without_the_sweep_params_are_left_out(tracking_uri):
    parent = log_study(tracking_uri, "mixed", grid(explore_fraction=[0.5], peak_lr=[0.1], seed=[0]))
    client = MlflowClient(tracking_uri)
    stray = client.create_run(client.get_experiment_by_name("mixed").experiment_id)
    client.log_batch(stray.info.run_id, params=[Param("lr", "0.1")])

    runs = load_runs("mixed", tracking_uri)

    assert len(runs) == 1
    assert stray.info.run_id not in set(runs["run_id"])
    assert parent not in set(runs["run_id"])


def test_parent_run_id_keeps_one_study_of_a_shared_experiment(tracking_uri):
    first = log_study(tracking_uri, "shared", grid(explore_fraction=[0.5], peak_lr=[0.1], seed=[0]))
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name("shared").experiment_id
    second = client.create_run(experiment_id)
    for seed in (1, 2):
        child = client.create_run(experiment_id, tags={PARENT_RUN_TAG: second.info.run_id})
        params = {"explore_fraction": 0.5, "peak_lr": 0.1, "seed": seed}
        client.log_batch(child.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    with pytest.raises(AnalysisError, match="holds 2 studies"):
        load_runs("shared", tracking_uri)  # each seed would count twice
    assert load_runs("shared", tracking_uri, parent_run_id=first)["seed"].tolist() == [0]
    assert sorted(load_runs("shared", tracking_uri, second.info.run_id)["seed"]) == [1, 2]


def test_unknown_experiment_lists_what_exists(tracking_uri):
    log_study(tracking_uri, "exists", grid(explore_fraction=[0.5], peak_lr=[0.1], seed=[0]))

    with pytest.raises(AnalysisError, match=r"no MLflow experiment named 'nope'.*exists"):
        load_runs("nope", tracking_uri)


def test_experiment_without_sweep_params_lists_params_found(tracking_uri):
    client = MlflowClient(tracking_uri)
    run = client.create_run(client.create_experiment("other"))
    client.log_batch(run.info.run_id, params=[Param("learning_rate", "0.1")])

    with pytest.raises(AnalysisError, match=r"1 run\(s\) but none.*params found: learning_rate"):
        load_runs("other", tracking_uri)


def test_history_has_one_row_per_trial_and_epoch(tracking_uri):
    trials = grid(explore_fraction=[0.0, 1.0], peak_lr=[0.1], seed=[0])

    def history(trial):
        base = trial["explore_fraction"]
        return {"test_acc": [base + 0.1, base + 0.2, base + 0.3], "lr": [0.1, 0.1, 0.0]}

    log_study(tracking_uri, "history", trials, history=history)

    frame = load_history("history", tracking_uri, metrics=("test_acc", "lr"))

    assert len(frame) == 6
    for fraction, epochs in frame.groupby("explore_fraction"):
        assert epochs["epoch"].tolist() == [1, 2, 3]
        assert epochs["test_acc"].tolist() == pytest.approx(
            [fraction + 0.1, fraction + 0.2, fraction + 0.3]
        )
        assert epochs["lr"].tolist() == pytest.approx([0.1, 0.1, 0.0])


def test_analysis_never_imports_ray():
    """Reports run where Ray is not installed or not wanted: analysis depends on pandas only."""
    import subprocess
    import sys

    code = (
        "import sys, analysis.runs, analysis.robustness, analysis.plots, analysis.report; "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runs_logged_by_rays_mlflow_callback(tracking_uri):
    """Ray's MLflowLoggerCallback: no parent run, config keys as params, Ray's bookkeeping and
    a 0/1 diverged as metrics. The metric must not clobber the diverged column."""
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("ray-callback")
    for seed, diverged in ((0, 0.0), (1, 1.0)):
        run = client.create_run(experiment_id)
        params = {"explore_fraction": 0.5, "peak_lr": 0.1, "seed": seed}
        metrics = {"test_acc": 0.9, "diverged": diverged, "done": 1.0, "training_iteration": 3}
        client.log_batch(
            run.info.run_id,
            params=[Param(k, str(v)) for k, v in params.items()],
            metrics=[Metric(k, v, 0, 3) for k, v in metrics.items()],
        )
        client.set_terminated(run.info.run_id)

    runs = load_runs("ray-callback", tracking_uri).set_index("seed")

    assert runs["diverged"].tolist() == [False, True]
    assert runs["diverged"].dtype == bool
    assert set(runs["schedule"]) == {"knee"}
    assert set(runs["search"]) == {"grid"}


def test_a_baseline_run_without_knee_params_is_a_trial(tmp_path):
    """knee-study logs no explore fraction or decay on a baseline's run: it is still read, its
    explore fraction missing."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [
        {"schedule": "knee", "explore_fraction": 0.5, "peak_lr": 0.1, "seed": 0, "test_acc": 0.9},
        {"schedule": "cosine", "peak_lr": 0.1, "seed": 0, "test_acc": 0.8},  # no explore param
        {"peak_lr": 0.1, "seed": 0, "test_acc": 0.7},  # neither: not a trial of a study
    ]
    log_study(uri, "baselines", trials)

    runs = load_runs("baselines", uri)
    assert sorted(runs["schedule"]) == ["cosine", "knee"]
    cosine = runs[runs["schedule"] == "cosine"].iloc[0]
    assert np.isnan(cosine["explore_fraction"])
    assert cosine["test_acc"] == 0.8


def test_an_infinite_metric_reads_back_infinite_and_counts_as_diverged(tracking_uri):
    """MLflow's sqlite store keeps inf as the largest float; read back as it was logged, a
    finished trial's infinite sharpness is a divergence of that metric, not a usable value."""
    from analysis.trials import metric_outcome

    trials = grid(explore_fraction=[0.5], peak_lr=[0.1], seed=[0, 1])
    for t in trials:
        t.update(schedule="knee", test_acc=0.9, sharpness=np.inf if t["seed"] else 2.0)
    log_study(tracking_uri, "infinite", trials)

    runs = load_runs("infinite", tracking_uri).set_index("seed")

    assert runs.loc[1, "sharpness"] == np.inf
    assert runs.loc[0, "sharpness"] == 2.0
    assert metric_outcome(runs, "sharpness").tolist() == ["finished", "diverged"]
