"""The trial side of a study: the Tune trainable every trial worker runs, and its checkpoint file.

Ray is imported inside :func:`run_trial`, which only ever runs in a trial worker: this module
may be imported anywhere (resume's checks read :data:`STATE_FILE` before Ray's environment is
settled).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from trainables.results import EpochsReport, FinalReport
from trainables.train import train

STATE_FILE = "state.pt"  # a trial checkpoint's one file: train()'s state, torch.save'd
REPORT_INTERVAL_S = 10.0  # longest a trial keeps finished epochs to itself between checkpoints


def run_trial(config: dict[str, Any], checkpoint_every: int = 1) -> None:
    """The Tune trainable: train one config, reporting with each checkpoint, then the final metrics.

    Every ``checkpoint_every``-th epoch and the last send one report with a checkpoint (one
    ``torch.save`` file); between them an epoch is reported on its own only when the last report
    is ``REPORT_INTERVAL_S`` old. Each report (:class:`trainables.results.EpochsReport`) carries
    the metrics of every epoch not yet reported, so nothing is lost by reporting less often: a
    report is a round trip to the driver that the trial waits for (~30 ms; forty of them took as
    long as training a digits trial). After a restore the first report also carries the
    checkpoint's own history, so the tracker can fill in any epoch its run lacks.
    """
    import ray
    from ray import tune

    # Keep Ray Train's line per saved checkpoint out of the driver's terminal (the trial table
    # already shows progress).
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, weights_only=False)
        # Said in the driver's terminal (Ray forwards a trial's stdout): where a retried or
        # resumed trial picks up.
        trial_id = tune.get_context().get_trial_id()
        print(f"knee-study: trial {trial_id} continues after epoch {state['epoch']}", flush=True)
    unreported = list(state["history"]) if state else []
    epochs = config["epochs"]
    last_report = time.monotonic()

    def on_epoch(metrics: dict[str, float], train_state: dict[str, Any]) -> None:
        nonlocal last_report
        unreported.append(metrics)
        due = metrics["epoch"] % checkpoint_every == 0 or metrics["epoch"] == epochs
        if not due and time.monotonic() - last_report < REPORT_INTERVAL_S:
            return
        report = EpochsReport(tuple(unreported)).to_result()
        if due:
            with tempfile.TemporaryDirectory() as folder:
                torch.save(train_state, Path(folder) / STATE_FILE)
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(report)
        unreported.clear()
        last_report = time.monotonic()

    result = dict(train(config, on_epoch=on_epoch, state=state))
    diverged = result.pop("diverged")
    tune.report(FinalReport(result, diverged, tuple(unreported)).to_result())
