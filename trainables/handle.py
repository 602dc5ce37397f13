"""The handle a training loop gets: the swept schedule, reports, resumable state, sharpness.

A study's training loop is a function ``fit(config, trial)``, the built-in one
(:func:`trainables.train.fit`) or a user's (``trainable: mypkg.train:fit`` in the study):

.. code-block:: python

    def fit(config: dict, trial: Trial) -> dict | None:
        torch.manual_seed(trial.seed)
        model, optimizer = ..., torch.optim.SGD(..., lr=trial.peak_lr)
        scheduler = trial.schedule(optimizer, total_steps=trial.epochs * steps_per_epoch)
        state = trial.restore()  # None on a first try; else what the last checkpoint saved
        start = 0 if state is None else state["epoch"]
        for epoch in range(start + 1, trial.epochs + 1):
            ...  # optimizer.step(); scheduler.step() once per optimizer step
            trial.report({"val_loss": ..., "val_acc": ...}, state={"epoch": epoch, ...})
        trial.sharpness(model, loss_fn, batches)  # optional: Keskar sharpness, logged once

``config`` is the trial's flat config (what Ray Tune hands a trainable: ``peak_lr``, ``seed``,
``explore_fraction``, ``epochs`` ... and the loop's own ``trainable.*`` options); the handle has
the same typed (:attr:`Trial.config`, :attr:`Trial.options`). The n-th :meth:`Trial.report` is
step n of the trial (its ``epoch`` in MLflow, what ASHA's grace period counts). A ``state``
given with a report is what a retried or resumed trial gets back from :meth:`Trial.restore`
(torch's global RNG is saved and restored with it). What ``fit`` returns is logged once at the
end, with sharpness and the trial's compute seconds.

This module is pure PyTorch: the trial that runs the loop (``study.trial``) decides where
reports and checkpoints go.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainables.config import Knee, Sharpness, TrainConfig
from trainables.plugins import WorkloadError
from trainables.schedules import make_schedule
from trainables.sharpness import hessian_top_eigenvalue, hessian_trace, keskar_sharpness

# The built-in training loops, registered as any user's is: name -> "module:callable".
TRAINABLES = {"classifier": "trainables.train:fit", "lm": "trainables.lm:fit"}
KEY = "trainable"  # the study key a loop's problems are reported under

# A checkpoint's envelope around the loop's own state: what restore() and the study read back.
ENVELOPE_KEYS = frozenset({"state", "torch_rng", "history", "trial_seconds"})

# on_report(metrics, checkpoint): ``checkpoint`` (None when the report carries no state) makes
# the envelope to save; the receiver calls it only when it saves one.
ReportSink = Callable[[dict[str, float], Callable[[], dict[str, Any]] | None], None]


class Diverged(Exception):
    """Raised by :meth:`Trial.report` when a loss or the objective is NaN or infinite: the loop
    stops there and the trial ends diverged, with its last finite report."""


class Trial:
    """One trial as its training loop sees it. Made by the study's trial (or a test)."""

    def __init__(
        self,
        config: TrainConfig,
        on_report: ReportSink | None = None,
        envelope: Mapping[str, Any] | None = None,
        required: Iterable[str] = (),
    ) -> None:
        """``envelope``: the checkpoint a retried or resumed trial continues from;
        ``required``: metrics every report must have (the study's objective)."""
        self.config = config
        self._on_report = on_report
        self._envelope = envelope
        self._required = tuple(required)
        self.history: list[dict[str, float]] = list(envelope["history"]) if envelope else []
        self.final: dict[str, float] = {}  # measured once at the end: sharpness, ...
        self.tags: dict[str, str] = {}  # said of the run once: e.g. the digest of its data
        self.diverged = False
        self._schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
        self._last_step_lr: float | None = None  # the LR the last optimizer step ran at
        self._seconds = float(envelope["trial_seconds"]) if envelope else 0.0
        self._started = time.perf_counter()

    # -- what the loop reads ------------------------------------------------------------------

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def peak_lr(self) -> float:
        return self.config.peak_lr

    @property
    def epochs(self) -> int | None:
        """The trial's budget in epochs (swept by ``sweep.epochs``), or None for a budget in
        steps; the loop decides what an epoch is."""
        return self.config.epochs

    @property
    def steps(self) -> int | None:
        """The trial's budget in optimizer steps (``train.steps``), or None for one in epochs."""
        return self.config.steps

    @property
    def eval_every(self) -> int:
        """Steps between evaluations (and reports) of a budget in steps."""
        return self.config.evaluations_every

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def options(self) -> Mapping[str, Any]:
        """The study's ``trainable.options``: the loop's own settings."""
        return self.config.trainable.options

    @property
    def device(self) -> torch.device:
        """``train.device`` resolved: ``auto`` is CUDA when there is one."""
        return resolve_device(self.config.device)

    @property
    def reports(self) -> int:
        """Reports made so far (a restored trial counts its checkpoint's)."""
        return len(self.history)

    @property
    def step(self) -> int:
        """The progress of the last report: its ``step=`` (optimizer steps), else its number;
        0 before the first."""
        return int(self.history[-1]["epoch"]) if self.history else 0

    # -- what the loop calls ------------------------------------------------------------------

    def schedule(
        self, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """The trial's schedule (Knee at its explore fraction and decay shape, or the baseline)
        over ``total_steps`` optimizer steps, with the study's warmup: step it once per
        optimizer step. Every parameter group peaks at ``peak_lr`` and, after the warmup, never
        goes below ``min_lr_ratio * peak_lr``."""
        scheduler = run_schedule(self.config, optimizer, total_steps)
        if not self._schedulers:  # the first schedule's optimizer is the one ``lr`` reports
            optimizer.register_step_pre_hook(self._record_step_lr)
        self._schedulers.append(scheduler)
        return scheduler

    def restore(self) -> Any:
        """The ``state`` of the last report that saved one, or None on a first try. Torch's
        global RNG is set back to where it was at that report."""
        if self._envelope is None:
            return None
        torch.set_rng_state(self._envelope["torch_rng"])
        return self._envelope["state"]

    def report(
        self, metrics: Mapping[str, float], state: Any = None, step: int | None = None
    ) -> None:
        """Report one step's metrics (plain numbers), and with ``state`` (anything
        ``torch.save`` writes: state dicts, numbers, tensors) a checkpoint to continue from.
        ``step``: the trial's progress at this report (its optimizer steps, for a budget in
        steps: the MLflow step, what ASHA's grace period counts); default the report's number.

        Adds ``lr`` (the LR of the last optimizer step) when the loop's schedule came from
        :meth:`schedule` and the metrics lack it. Raises :class:`Diverged` when a loss or the
        objective is not finite (the report is not kept), and
        :class:`~trainables.plugins.WorkloadError` when the objective is missing.
        """
        row = {k: _number(k, v) for k, v in metrics.items() if k != "epoch"}
        if self._schedulers and "lr" not in row:
            # After scheduler.step() the scheduler's LR is the next step's: the last step's was
            # read just before that step ran (before any step: the LR the first one will use).
            last = self._last_step_lr
            row["lr"] = float(self._schedulers[0].get_last_lr()[0]) if last is None else last
        missing = [k for k in self._required if k not in row]
        if missing:
            raise WorkloadError(
                f"objective.metric: {', '.join(missing)} not among the metrics "
                f"{self.config.trainable.fit} reports ({', '.join(row) or 'none'})"
            )
        progress = self.reports + 1 if step is None else int(step)
        if progress <= self.step:
            raise WorkloadError(
                f"{KEY}: report step {progress} after step {self.step}; steps only go forward"
            )
        watched = [k for k in row if k.endswith("loss") or k in self._required]
        if any(not math.isfinite(row[k]) for k in watched):
            self.diverged = True
            raise Diverged(f"step {progress}: {row}")
        row = {"epoch": progress, **row}
        self.history.append(row)
        self._pause()
        if self._on_report is not None:
            self._on_report(row, None if state is None else lambda: self._wrap(state))
        self._started = time.perf_counter()

    def tag(self, key: str, value: str) -> None:
        """Say something of this trial's run that is not a number (the digest of its data, a
        tokenizer's name): an MLflow tag of its run, set with its final metrics."""
        self.tags[str(key)] = str(value)

    def sharpness(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        batches: Iterable[tuple[Tensor, Tensor]],
    ) -> dict[str, float]:
        """Keskar sharpness (percent) of ``model`` on ``batches`` (the first
        ``sharpness.batches`` of them), and the Hessian's top eigenvalue and trace when the
        study asks; logged once with the trial's final metrics, and returned."""
        measured = measure_sharpness(model, loss_fn, batches, self.config.sharpness)
        self.final |= measured
        return measured

    # -- for the trial that runs the loop -----------------------------------------------------

    @property
    def trial_seconds(self) -> float:
        """Compute time so far: the loop's own, not time spent handing reports on."""
        return self._seconds + time.perf_counter() - self._started

    def _record_step_lr(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        self._last_step_lr = float(optimizer.param_groups[0]["lr"])

    def _pause(self) -> None:
        self._seconds += time.perf_counter() - self._started

    def _wrap(self, state: Any) -> dict[str, Any]:
        return {
            "state": state,
            "torch_rng": torch.get_rng_state(),
            "history": [dict(h) for h in self.history],
            "trial_seconds": self._seconds,
        }


def _number(key: str, value: Any) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    # numbers.Real takes numpy's scalars too (np.float32 is not a float); a bool is no metric.
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise WorkloadError(
            f"{KEY}: metric {key!r} is a {type(value).__name__}; report plain numbers"
        )
    return float(value)


def measure_sharpness(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    asked: Sharpness,
) -> dict[str, float]:
    """Keskar sharpness (percent) of ``model`` on the first ``asked.batches`` of ``batches``,
    and the Hessian's top eigenvalue and trace when ``asked.hessian``: what every loop's final
    metrics hold (:meth:`Trial.sharpness`; the built-in loops too)."""
    fixed = [batch for _, batch in zip(range(asked.batches), batches, strict=False)]
    found = keskar_sharpness(model, loss_fn, fixed, epsilon=asked.epsilon, steps=asked.steps)
    measured = {"sharpness": found.sharpness}
    if asked.hessian:
        measured["hessian_top_eigenvalue"] = hessian_top_eigenvalue(model, loss_fn, fixed)
        measured["hessian_trace"] = hessian_trace(model, loss_fn, fixed)
    return measured


def resolve_device(name: str) -> torch.device:
    """A config's ``device``: ``auto`` is CUDA when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_schedule(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule ``config`` names over ``total_steps`` optimizer steps, as every loop gets it
    (:meth:`Trial.schedule`; the built-in loops too)."""
    knee = config.schedule if isinstance(config.schedule, Knee) else Knee()  # a baseline: unused
    return make_schedule(
        config.schedule.name,
        optimizer,
        total_steps,
        peak_lr=config.peak_lr,
        explore_fraction=knee.explore_fraction,
        warmup_fraction=config.warmup(total_steps),
        decay=knee.decay,
        min_lr_ratio=config.min_lr_ratio,
    )
