"""The rules across a study's sections that need more than a line: an ASHA scheduler and an
Optuna search. Each raises ValueError with a message that names its keys (pydantic turns it into
the study's one-line ConfigError)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from trainables.results import EPOCH_METRICS

if TYPE_CHECKING:
    from study.config import StudyConfig

log = logging.getLogger("study.config")


def check_asha(cfg: StudyConfig) -> None:
    """ASHA judges trials mid-training: only after a grace period past the longest explore
    phase, and never when an explore phase lasts the whole budget."""
    warmup, longest = cfg.train.warmup_fraction, max(cfg.sweep.explore_fraction)
    budget = max(cfg.budgets)
    explore_end = math.ceil((warmup + longest) * budget - 1e-9)
    if explore_end >= budget:
        raise ValueError(
            "tune.scheduler: asha judges trials after the longest explore phase, which "
            f"here lasts the whole budget ({budget} epochs; warmup + explore "
            f"{warmup + longest:g}): use fifo"
        )
    grace = cfg.tune.grace_period
    if grace is None or not explore_end < grace <= budget:
        raise ValueError(
            "tune.grace_period: asha needs a grace period past the longest explore "
            f"phase and within the budget ({explore_end + 1}..{budget} epochs), got {grace}"
        )
    log.warning(
        "tune.scheduler asha judges trials mid-training, when a trial still exploring at "
        "peak LR looks worst: it would prune exactly the trials the study is about. "
        "Trials are judged only after the grace period of %d epochs (the longest explore "
        "phase ends at epoch %d).",
        cfg.tune.grace_period,
        explore_end,
    )


def check_objective(metric: str, trainable: str) -> None:
    """The built-in classifier's objective is one of the metrics it reports every epoch (a
    user's loop is checked on its first report: only it knows what it reports)."""
    if metric not in EPOCH_METRICS:
        raise ValueError(
            f"objective.metric: trainable {trainable} reports {', '.join(EPOCH_METRICS)} every "
            f"epoch; got {metric!r}"
        )


def check_search(cfg: StudyConfig) -> None:
    """An Optuna search walks explore fraction x peak LR ranges, Knee only, each point over
    every seed."""
    sweep = cfg.sweep
    for key in ("explore_fraction", "peak_lr"):
        values = getattr(sweep, key)
        if len(values) != 2 or values[0] >= values[1]:
            raise ValueError(
                f"sweep.{key}: tune.search optuna searches a [low, high] range, got {values}"
            )
    if sweep.schedule != ["knee"]:
        raise ValueError(
            "sweep.schedule: tune.search optuna searches the Knee schedule's explore "
            f"fraction; give [knee], got {sweep.schedule}"
        )
    if cfg.tune.scheduler != "fifo":
        raise ValueError(
            f"tune.scheduler: tune.search optuna averages each point over all its seeds; "
            f"early stopping ({cfg.tune.scheduler}) would cut seed groups short, use fifo"
        )
    for key in ("epochs", "decay"):
        values = getattr(sweep, key)
        if values is not None and len(values) > 1:
            raise ValueError(
                f"sweep.{key}: tune.search optuna searches explore_fraction and peak_lr "
                f"only; give one value, got {values}"
            )
    if cfg.tune.num_samples is None:
        raise ValueError("tune.num_samples: tune.search optuna needs the number of suggestions")
    if cfg.resources.autoscaling and cfg.resources.max_concurrent is None:
        raise ValueError(
            "resources.max_concurrent: tune.search optuna on an autoscaling cluster needs a "
            "limit, else every suggestion is made before any result (a random search)"
        )
