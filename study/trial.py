"""The trial side of a study: the Tune trainable every trial worker runs, and its checkpoint file.

:func:`run_trial` runs the study's training loop (the built-in ``classifier`` or a user's
``module:callable``) with a :class:`trainables.handle.Trial` handle whose reports go to Tune,
each due one with a checkpoint. Ray is imported inside it, which only ever runs in a trial
worker: this module may be imported anywhere (resume's checks read :data:`STATE_FILE` before
Ray's environment is settled).
"""

from __future__ import annotations

import logging
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from trainables.config import TrainConfig
from trainables.handle import KEY, TRAINABLES, Diverged, Trial
from trainables.plugins import WorkloadError, check_call, resolve
from trainables.results import PEAK_MEMORY, EpochsReport, FinalReport

STATE_FILE = "state.pt"  # a trial checkpoint's one file: the handle's envelope, torch.save'd
REPORT_INTERVAL_S = 10.0  # longest a trial keeps finished epochs to itself between checkpoints


def _quiet_sigterm(unraisable: Any) -> None:
    """Ray stops a worker (a study stopping, a lost tracking store) with SIGTERM, which its handler
    turns into SystemExit wherever the worker is; landing in a garbage-collection callback,
    Python prints it as an ignored exception, a traceback in the driver's terminal for a stop
    that went as planned. Anything else is printed as Python would."""
    if not isinstance(unraisable.exc_value, SystemExit):
        sys.__unraisablehook__(unraisable)


def peak_memory_mb(device: torch.device) -> float:
    """The trial's peak memory: on CUDA the most its GPU held for it; else the peak resident
    memory of its worker process (with reused actors, of every trial that actor ran so far)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def resolve_trainable(name: str) -> Callable[..., Any]:
    """The training loop ``name`` names, checked to take ``(config, trial)``."""
    fit = resolve(name, TRAINABLES, KEY)
    check_call(fit, KEY, {}, None)
    return fit


def run_trial(
    config: dict[str, Any],
    checkpoint_every: int = 1,
    objective: str = "test_acc",
    required: Sequence[str] = (),
) -> None:
    """The Tune trainable: run the loop, reporting with each checkpoint, then the final metrics.

    Every ``checkpoint_every``-th report and the one at the trial's budget (``epochs``, or
    ``steps``) carry a checkpoint (one ``torch.save`` file) when the loop gave a state; between
    them a report is sent on its own only when the last one is ``REPORT_INTERVAL_S`` old. Each
    report (:class:`trainables.results.EpochsReport`) carries the metrics of every epoch not yet
    reported, so nothing is lost by reporting less often: a report is a round trip to the
    driver that the trial waits for (~30 ms; forty of them took as long as training a digits
    trial). After a restore the first report also carries the checkpoint's own history, so the
    tracker can fill in any epoch its run lacks. ``objective``: the metric the trial must end
    with; ``required``: the metrics every report must have (what ASHA or Optuna select by).

    A :class:`~trainables.plugins.WorkloadError` (bad data, a bad model or loop, a missing
    objective) would fail on every try: the trial ends at once with a final report that says
    why, and Tune does not retry it.
    """
    import ray
    from ray import tune

    # Keep Ray Train's line per saved checkpoint out of the driver's terminal (the trial table
    # already shows progress).
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    sys.unraisablehook = _quiet_sigterm
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    envelope = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            envelope = torch.load(Path(folder) / STATE_FILE, weights_only=False)
        # Said in the driver's terminal (Ray forwards a trial's stdout): where a retried or
        # resumed trial picks up.
        trial_id = tune.get_context().get_trial_id()
        history = envelope["history"]
        done = int(history[-1]["epoch"]) if history else 0
        unit = "epoch" if config.get("epochs") else "step"
        print(f"knee-study: trial {trial_id} continues after {unit} {done}", flush=True)
    unreported = list(envelope["history"]) if envelope else []
    reports = len(unreported)  # a restored trial counts its checkpoint's
    budget = config.get("epochs") or config.get("steps")
    last_report = time.monotonic()

    def on_report(metrics: dict[str, float], wrap: Callable[[], dict] | None) -> None:
        nonlocal last_report, reports
        unreported.append(metrics)
        reports += 1
        due = wrap is not None and (reports % checkpoint_every == 0 or metrics["epoch"] >= budget)
        if not due and time.monotonic() - last_report < REPORT_INTERVAL_S:
            return
        report = EpochsReport(tuple(unreported)).to_result()
        if due:
            with tempfile.TemporaryDirectory() as folder:
                torch.save(wrap(), Path(folder) / STATE_FILE)
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(report)
        unreported.clear()
        last_report = time.monotonic()

    final = run_loop(config, on_report, envelope, objective, required, unreported)
    tune.report(final.to_result())


def run_loop(
    config: dict[str, Any],
    on_report: Callable[[dict[str, float], Callable[[], dict] | None], None],
    envelope: dict[str, Any] | None = None,
    objective: str = "test_acc",
    required: Sequence[str] = (),
    unreported: Sequence[dict[str, float]] = (),
) -> FinalReport:
    """Run the config's training loop with a handle reporting to ``on_report``; its end as a
    final report carrying ``unreported``, the epochs not yet sent (pure PyTorch: testable
    without Ray)."""
    trial = None
    try:
        cfg = TrainConfig.from_flat(config)
        fit = resolve_trainable(cfg.trainable.fit)
        trial = Trial(cfg, on_report, envelope, required)
        returned = fit(dict(config), trial) or {}
        if not isinstance(returned, dict):
            raise WorkloadError(
                f"{KEY}: {cfg.trainable.fit} returned a {type(returned).__name__}; return a "
                "dict of final metrics, or nothing"
            )
    except Diverged:
        returned = {}
    except WorkloadError as error:
        last = trial.history[-1] if trial and trial.history else {}
        tags = trial.tags if trial else {}
        return FinalReport(last, False, tuple(unreported), (), str(error).splitlines()[0], tags)
    final = {**trial.final, **returned, PEAK_MEMORY: peak_memory_mb(trial.device)}
    final.setdefault("trial_seconds", trial.trial_seconds)
    last = trial.history[-1] if trial.history else {"epoch": 0}
    metrics = {**last, **final}
    if objective not in metrics and not trial.diverged:
        found = ", ".join(k for k in metrics if k != "epoch")
        error = f"objective.metric: {cfg.trainable.fit} never reported {objective} (found {found})"
        return FinalReport(last, False, tuple(unreported), (), error, trial.tags)
    if trial.history and trial.step < cfg.budget and not trial.diverged:
        # A loop that stops itself early trained another budget: its numbers are no result of
        # this one, and averaged in they would pass for it.
        error = (
            f"{KEY}: {cfg.trainable.fit} returned after {trial.step} of its {cfg.budget} "
            f"{cfg.budget_unit}; a trial trains its whole budget (its last report at "
            f"{cfg.budget}) or raises"
        )
        return FinalReport(last, False, tuple(unreported), (), error, trial.tags)
    return FinalReport(metrics, trial.diverged, tuple(unreported), tuple(final), None, trial.tags)
