"""The driver side of a study: how its trials pack onto the cluster, the param space, the trial
scheduler, and the Tuner that runs them (built for a new study, restored for a resumed one).

Import this module only after :func:`study.ray_env.prepare_ray_env` ran: Ray reads its
environment when it is imported (:mod:`study.cluster` connects first).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from study.config import StudyConfig, trial_label
from study.errors import BadInput
from study.search import search_algorithm, search_space
from study.snapshot_backup import SnapshotBackup
from study.storage import DEFAULT_NAME
from study.tracker import TrialTracker, logging_to
from study.trial import run_trial

# Ray Train's line per saved checkpoint stays out of the driver's terminal (the trial table
# already shows progress); trial workers say the same in study.trial.
logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)


class PlanError(BadInput):
    """The cluster cannot run the study as configured."""


@dataclass(frozen=True)
class ResourcePlan:
    """How trials map onto the cluster."""

    cpus_per_trial: float
    gpus_per_trial: float
    concurrent_trials: int  # trials that fit at once, capped by resources.max_concurrent
    gpu_memory_fraction: float | None  # per-trial cap when trials share a GPU

    def as_tune_resources(self) -> dict[str, float]:
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}


def plan_resources(cfg: StudyConfig, cluster: Mapping[str, float]) -> ResourcePlan:
    """Check the study fits ``cluster`` (``ray.cluster_resources()``) and say how it packs.

    Raises :class:`PlanError` when a single trial cannot be placed at all, instead of letting
    Tune wait forever for resources that will never appear. With ``resources.autoscaling`` the
    nodes up now say nothing: trials wait as pending (up to ``max_concurrent``; Tune itself keeps
    at most 200 pending for a grid), which is what asks Ray's autoscaler for nodes.
    """
    res = cfg.resources
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if res.autoscaling:
        fit = cfg.num_trials
    else:
        fit = _fit_now(res.cpus_per_trial, res.gpus_per_trial, cpus, gpus)
    sharing = 0 < res.gpus_per_trial < 1
    return ResourcePlan(
        cpus_per_trial=res.cpus_per_trial,
        gpus_per_trial=res.gpus_per_trial,
        concurrent_trials=max(1, min(fit, res.max_concurrent or fit, cfg.num_trials)),
        gpu_memory_fraction=res.gpus_per_trial if sharing else None,
    )


def _fit_now(cpus_per_trial: float, gpus_per_trial: float, cpus: float, gpus: float) -> int:
    """How many trials the cluster's resources hold at once; PlanError when not even one."""
    if cpus_per_trial > cpus:
        raise PlanError(
            f"resources.cpus_per_trial: a trial needs {cpus_per_trial} CPUs, the cluster has "
            f"{cpus:g} (an autoscaling cluster: set resources.autoscaling=true)"
        )
    if gpus_per_trial > gpus:
        raise PlanError(
            f"resources.gpus_per_trial: a trial needs {gpus_per_trial} GPUs, the cluster has "
            f"{gpus:g} (set resources.gpus_per_trial=0 to train on CPUs; an autoscaling "
            "cluster: set resources.autoscaling=true)"
        )
    fit = math.floor(cpus / cpus_per_trial + 1e-9)
    if gpus_per_trial > 0:
        fit = min(fit, math.floor(gpus / gpus_per_trial + 1e-9))
    return fit


def param_space(cfg: StudyConfig, plan: ResourcePlan) -> dict[str, Any]:
    """The keys every trial's flat train() config shares, plus Optuna's ranges for a search;
    the search algorithm (:func:`study.search.search_algorithm`) sets the swept values."""
    space: dict[str, Any] = {**cfg.trial_base(), **search_space(cfg)}
    if plan.gpu_memory_fraction is not None:
        space["gpu_memory_fraction"] = plan.gpu_memory_fraction
    return space


def build_tuner(
    cfg: StudyConfig,
    plan: ResourcePlan,
    output: Path,
    tracker: TrialTracker,
    storage: str | None = None,
    name: str = DEFAULT_NAME,
    points: list[dict[str, Any]] | None = None,
) -> tune.Tuner:
    """A Tuner for the whole grid (or its ``points``: an extension's new ones), writing Ray's
    state under ``<storage>/<name>``.

    ``storage`` is an absolute path or a URI (``study.storage.resolve_storage``); None: the
    study folder ``output``.
    """
    search_alg, num_samples = search_algorithm(cfg, plan.concurrent_trials, points)
    return tune.Tuner(
        _trainable(cfg, plan),
        param_space=param_space(cfg, plan),
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            num_samples=num_samples,
            scheduler=_trial_scheduler(cfg),
            # One actor trains trial after trial: no process start-up per trial.
            reuse_actors=True,
            trial_name_creator=lambda trial: trial_label(trial.config),
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage or str(output.resolve()),
            failure_config=tune.FailureConfig(max_failures=cfg.tune.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # The tracker logs to MLflow; the backup keeps Tune's own state resumable.
            callbacks=[tracker, SnapshotBackup()],
            progress_reporter=tune.CLIReporter(
                parameter_columns=list(cfg.swept()),
                metric_columns=_table_metrics(cfg),
                max_report_frequency=15,
            ),
            verbose=1,
        ),
    )


def restore_tuner(cfg: StudyConfig, plan: ResourcePlan, path: str, tracking_uri: str) -> tune.Tuner:
    """The Tuner of a study whose driver stopped, from Ray's experiment folder ``path`` (local or
    URI, ``study.storage.experiment_path``). Its tracker comes back with Tune's state, writing
    to ``tracking_uri``: where the study's store is now (a moved folder's own store)."""
    with logging_to(tracking_uri):
        return tune.Tuner.restore(path, _trainable(cfg, plan), resume_errored=True)


def _trainable(cfg: StudyConfig, plan: ResourcePlan):
    objective = cfg.objective
    selection = [objective.selection_metric] if cfg.selection_needed else []
    trainable = tune.with_parameters(
        run_trial,
        checkpoint_every=cfg.tune.checkpoint_every,
        objective=objective.metric,
        required=selection,
    )
    return tune.with_resources(trainable, plan.as_tune_resources())


def _table_metrics(cfg: StudyConfig) -> dict[str, str]:
    """The trial table's metric columns: progress (its epoch, or step), the objective and what
    selects by it, sharpness."""
    objective = cfg.objective
    shown = [objective.selection_metric, objective.metric, "sharpness"]
    progress = "epoch" if cfg.budget_unit == "epochs" else "step"
    return {"epoch": progress, **{metric: metric for metric in shown}}


def _trial_scheduler(cfg: StudyConfig):
    if cfg.tune.scheduler == "fifo":
        return FIFOScheduler()
    # The config already refused a grace period inside the explore phase and warned.
    return ASHAScheduler(
        time_attr="epoch",
        metric=cfg.objective.selection_metric,
        mode=cfg.objective.mode,
        grace_period=cfg.tune.grace_period,
        max_t=max(cfg.budgets),
        # A trial past the last rung trains on and sends its final result (sharpness): ASHA's
        # default stops it at max_t, on its last epoch's report, before that result.
        stop_last_trials=False,
    )
