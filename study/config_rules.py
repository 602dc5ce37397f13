"""The rules across a study's sections that need more than a line: an ASHA scheduler and an
Optuna search. Each raises ValueError with a message that names its keys (pydantic turns it into
the study's one-line ConfigError)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from trainables.corpus import CORPUS_NAMES
from trainables.data import DATASET_NAMES
from trainables.results import EPOCH_METRICS, LM_METRICS

if TYPE_CHECKING:
    from study.config import StudyConfig

log = logging.getLogger("study.config")


def check_asha(cfg: StudyConfig) -> None:
    """ASHA judges trials mid-training: only after a grace period past the longest explore
    phase, and never when an explore phase lasts the whole budget."""
    warmup, longest = cfg.warmup_fraction, max(cfg.sweep.explore_fraction)
    budget, unit = max(cfg.budgets), cfg.budget_unit
    explore_end = math.ceil((warmup + longest) * budget - 1e-9)
    if explore_end >= budget:
        raise ValueError(
            "tune.scheduler: asha judges trials after the longest explore phase, which "
            f"here lasts the whole budget ({budget} {unit}; warmup + explore "
            f"{warmup + longest:g}): use fifo"
        )
    grace = cfg.tune.grace_period
    if grace is None or not explore_end < grace <= budget:
        raise ValueError(
            "tune.grace_period: asha needs a grace period past the longest explore "
            f"phase and within the budget ({explore_end + 1}..{budget} {unit}), got {grace}"
        )
    log.warning(
        "tune.scheduler asha judges trials mid-training, when a trial still exploring at "
        "peak LR looks worst: it would prune exactly the trials the study is about. "
        "Trials are judged only after the grace period of %d %s (the longest explore "
        "phase ends at %d).",
        cfg.tune.grace_period,
        unit,
        explore_end,
    )


# What each built-in loop needs: its budget's unit, the data it trains on (the classifier also
# takes a loader "module:callable"), whether it has a model section, and the metrics it reports
# every time (its objective is one of them). A user's loop is checked on its first report: only
# it knows what it reports.
_BUILTINS = {
    "classifier": ("epochs", DATASET_NAMES, True, True, EPOCH_METRICS),
    "lm": ("steps", CORPUS_NAMES, False, False, LM_METRICS),
}


def check_builtin_workload(cfg: StudyConfig) -> None:
    """A built-in loop's study names the budget, data and model it trains on and an objective
    it reports."""
    name = cfg.trainable.fit
    unit, datasets, plugins, needs_model, metrics = _BUILTINS[name]
    if cfg.train.budget_key != unit:
        raise ValueError(f"train.{unit}: trainable {name} counts its budget in {unit}")
    if cfg.data is None:
        raise ValueError(f"data: required by trainable {name}: name its dataset")
    plugin = ":" in cfg.data.dataset
    if cfg.data.dataset not in datasets and not (plugin and plugins):
        also = " (or a loader, 'module:callable')" if plugins else ""
        raise ValueError(
            f"data.dataset: trainable {name} trains on {', '.join(datasets)}{also}, got "
            f"{cfg.data.dataset!r}"
        )
    if needs_model and cfg.model is None:
        raise ValueError(f"model: required by trainable {name}: name its model")
    if not needs_model and cfg.model is not None:
        raise ValueError(f"model: trainable {name} builds its own (its trainable.options size it)")
    if cfg.objective.metric not in metrics:
        raise ValueError(
            f"objective.metric: trainable {name} reports {', '.join(metrics)} every time; got "
            f"{cfg.objective.metric!r}"
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
    for key in ("epochs", "steps", "decay"):
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
