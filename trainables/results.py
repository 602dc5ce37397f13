"""What a trial reports, and every name its results go by: the one place they are spelled.

A result travels from the training loop (:func:`trainables.train.train`) through the trial's
reports to its driver (Ray Tune), into MLflow (the driver's tracker) and back out of MLflow
(the analysis). Each step writes and reads it through this module, so a name can change here
and nowhere else. Plain strings and dicts only: it imports neither Ray nor MLflow.

A trial sends its driver two kinds of report:

* :class:`EpochsReport`: the epochs trained since the last report (several when reports are
  spaced out; after a restore, the checkpoint's whole history first), the last of them also
  flat at the top level, where Tune's table and its schedulers (ASHA) read metrics;
* :class:`FinalReport`: the final metrics (sharpness, compute time, ...), whether the run
  diverged, and any epochs not yet reported.

Tune adds bookkeeping keys of its own to every result (``done``, timestamps, ``config``...);
:func:`read_report` ignores them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# The built-in classifier's per-epoch metrics (step = epoch in MLflow); accuracies are fractions,
# lr the epoch's last step's. A user's loop reports metrics of its own: every number it reports
# is logged the same way.
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr")
# The built-in language model's, at every evaluation (step = optimizer step); losses in nats,
# val_acc the share of next tokens predicted right.
LM_METRICS = ("train_loss", "val_loss", "val_perplexity", "val_acc", "lr")
# Once per trial, at the end: Keskar sharpness (percent), compute seconds, optional curvature.
FINAL_METRICS = ("sharpness", "trial_seconds", "hessian_top_eigenvalue", "hessian_trace")
# How fast and how big, once per trial, under MLflow's system/ prefix: training examples (or
# tokens) a second over the training steps alone, and the trial process's peak memory.
IMAGES_PER_SECOND = "system/images_per_second"
TOKENS_PER_SECOND = "system/tokens_per_second"
PEAK_MEMORY = "system/peak_memory_mb"  # CUDA: max allocated on the trial's GPU; else peak RSS

# The MLflow tags the driver writes on a trial's run and the analysis reads back.
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: the study's parent run
TRIAL_ID_TAG = "trial_id"  # Tune's trial id: how a retried or resumed trial finds its run
SEARCH_TAG = "search"  # grid | optuna
DIVERGED_TAG = "diverged"  # "true" | "false", set with the final metrics
STOPPED_EARLY_TAG = "stopped_early"  # "true" on a trial a scheduler (ASHA) stopped
STOPPED_AT_TAG = "stopped_at_epoch"  # the last epoch such a trial reported
ERROR_TAG = "error"  # on a trial that failed at once: the one-line reason (never retried)
CHECKPOINT_TAG = "checkpoint"  # where a finished trial's last checkpoint (its final weights) is


def lower_is_better(metric: str) -> bool:
    """Sharpness (flatter minima generalise better, as in the paper), losses and perplexity:
    lower is better. Accuracies and anything else: higher is better."""
    return metric == "sharpness" or metric.endswith(("loss", "perplexity"))


def selection_metric(metric: str) -> str:
    """What chooses among trials for an objective ``metric`` (ASHA, Optuna, a "best" point):
    the validation counterpart of a test metric (``test_acc`` -> ``val_acc``), so the test split
    is only ever reported; any other metric is its own."""
    return "val_" + metric.removeprefix("test_") if metric.startswith("test_") else metric


_KIND = "report"  # the result key that says which report it is
_EPOCHS = "epochs_since_last_report"
_FINAL = "final_metrics"  # which of a final report's metrics are measured once, at the end
_ERROR = "trial_error"
_TAGS = "trial_tags"


@dataclass(frozen=True)
class EpochsReport:
    """Epochs a trial trained since its last report, oldest first; each a mapping with
    ``epoch`` and the :data:`EPOCH_METRICS`."""

    epochs: tuple[Mapping[str, float], ...]

    def to_result(self) -> dict:
        """The dict ``tune.report`` sends: the last epoch flat, all of them listed."""
        return {**self.epochs[-1], _KIND: "epochs", _EPOCHS: [dict(e) for e in self.epochs]}


@dataclass(frozen=True)
class FinalReport:
    """A trial's end: ``metrics`` (the last epoch's and those measured once at the end, named
    by ``final``), whether it ``diverged``, and ``epochs`` not reported before. ``error``: why
    a trial failed at once (a bad dataset, model or loop: it would fail on every try)."""

    metrics: Mapping[str, float]
    diverged: bool
    epochs: tuple[Mapping[str, float], ...] = ()
    final: tuple[str, ...] = FINAL_METRICS
    error: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # what the loop said of its run

    def to_result(self) -> dict:
        return {
            **self.metrics,
            DIVERGED_TAG: self.diverged,
            _KIND: "final",
            _EPOCHS: [dict(e) for e in self.epochs],
            _FINAL: list(self.final),
            **({_ERROR: self.error} if self.error is not None else {}),
            **({_TAGS: dict(self.tags)} if self.tags else {}),
        }

    @property
    def epoch(self) -> int:
        """The epoch the trial ended at (0 when it diverged in its first)."""
        return int(self.metrics.get("epoch", 0))

    def final_metrics(self) -> dict[str, float]:
        """The metrics measured at the end that this trial has (none of them NaN)."""
        found = {k: float(self.metrics[k]) for k in self.final if k in self.metrics}
        return {k: v for k, v in found.items() if not math.isnan(v)}


Report = EpochsReport | FinalReport


def read_report(result: Mapping) -> Report | None:
    """The report a Tune result carries, or None for a result of none (a trial that never
    reported: Tune's empty result)."""
    epochs = tuple(result.get(_EPOCHS, ()))
    kind = result.get(_KIND)
    if kind == "final":
        own = (_KIND, _EPOCHS, DIVERGED_TAG, _FINAL, _ERROR, _TAGS)
        metrics = {k: v for k, v in result.items() if k not in own}
        final = tuple(result.get(_FINAL, FINAL_METRICS))
        error, tags = result.get(_ERROR), dict(result.get(_TAGS, {}))
        return FinalReport(metrics, bool(result[DIVERGED_TAG]), epochs, final, error, tags)
    if kind == "epochs":
        return EpochsReport(epochs)
    return None


def is_final(result: Mapping | None) -> bool:
    """Whether a Tune result is a trial's final report."""
    return bool(result) and result.get(_KIND) == "final"


def epoch_rows(epochs: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """Each epoch's metrics (every number it has) with its ``epoch``, oldest first."""
    rows = sorted(epochs, key=lambda e: int(e["epoch"]))
    return [
        {
            "epoch": int(e["epoch"]),
            **{k: float(v) for k, v in e.items() if k != "epoch" and _is_number(v)},
        }
        for e in rows
    ]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_failed(result: Mapping | None) -> bool:
    """Whether a Tune result is the final report of a trial that failed at once."""
    return is_final(result) and result.get(_ERROR) is not None


# What the driver tags a trial's run with, and how the analysis reads it back.
def final_tags(diverged: bool, error: str | None = None) -> dict[str, str]:
    """The tags set with a trial's final metrics (and why it failed, when it did)."""
    return {DIVERGED_TAG: str(bool(diverged)).lower(), **({ERROR_TAG: error} if error else {})}


def stopped_tags(epoch: int) -> dict[str, str]:
    """The tags of a trial a scheduler stopped after ``epoch``."""
    return {STOPPED_EARLY_TAG: "true", STOPPED_AT_TAG: str(int(epoch))}


@dataclass(frozen=True)
class RunOutcome:
    """How a trial's run says it ended, read from its tags (and, for runs Ray's stock
    ``MLflowLoggerCallback`` logged, its metrics, where divergence is a 0/1 metric)."""

    diverged: bool
    stopped: bool
    stopped_at_epoch: float  # NaN unless stopped

    @classmethod
    def of(cls, tags: Mapping[str, str], metrics: Mapping[str, float]) -> RunOutcome:
        diverged = tags.get(DIVERGED_TAG, str(bool(metrics.get(DIVERGED_TAG, 0.0))))
        stopped = tags.get(STOPPED_EARLY_TAG, "").lower() == "true"
        return cls(diverged.lower() == "true", stopped, _epoch(tags.get(STOPPED_AT_TAG), stopped))


def _epoch(tag: str | None, stopped: bool) -> float:
    if not stopped:
        return math.nan
    try:
        return float(tag)
    except (TypeError, ValueError):  # no tag, or not a number: unknown
        return math.nan


def has_final(tags: Mapping[str, str]) -> bool:
    """Whether a trial's run already has its final metrics (they come with the diverged tag)."""
    return DIVERGED_TAG in tags
