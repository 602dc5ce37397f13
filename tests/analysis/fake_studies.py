"""MLflow experiments written directly with the MLflow client (no training), with known answers."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from trainables.results import PARENT_RUN_TAG, final_tags

Trial = dict  # params (explore_fraction, peak_lr, seed, ...) and metrics (test_acc, ...)


def log_study(
    tracking_uri: str,
    name: str,
    trials: Iterable[Trial],
    history: Callable[[Trial], dict[str, list[float]]] | None = None,
) -> str:
    """Log ``trials`` as child runs of one parent run, as ``knee-study run`` lays them out.

    A trial's keys in ``METRIC_KEYS`` become final metrics, ``status`` and ``diverged`` set the
    run's state, everything else is a param. ``history(trial)`` gives per-epoch values.
    Returns the parent run id.
    """
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(name)
    parent = client.create_run(experiment_id, run_name=name)
    client.log_batch(parent.info.run_id, params=[Param("sweep.peak_lr", "[0.05, 0.1]")])
    now = int(time.time() * 1000)
    for trial in trials:
        trial = dict(trial)
        status = trial.pop("status", "FINISHED")
        diverged = trial.pop("diverged", False)
        metrics = {k: trial.pop(k) for k in METRIC_KEYS if k in trial}
        run = client.create_run(experiment_id, tags={PARENT_RUN_TAG: parent.info.run_id})
        epochs = history(trial) if history else {}
        client.log_batch(
            run.info.run_id,
            params=[Param(k, str(v)) for k, v in trial.items()],
            metrics=[Metric(k, v, now, 3) for k, v in metrics.items()]
            + [
                Metric(k, v, now, step)
                for k, values in epochs.items()
                for step, v in enumerate(values, 1)
            ],
            tags=[RunTag(k, v) for k, v in final_tags(diverged).items()],
        )
        client.set_terminated(run.info.run_id, status=status)
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id


METRIC_KEYS = ("test_acc", "sharpness", "trial_seconds")


def grid(**axes) -> list[Trial]:
    """Every combination of the axes, as trials: grid(peak_lr=[0.1], seed=[0, 1])."""
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]
