"""How each trial ended, and which trials a comparison may use.

A trial ends one of five ways, and each weighs differently on a verdict:

* ``finished``: trained its whole budget; its final metrics enter the means.
* ``diverged``: trained to the end or until its loss blew up, and it did blow up: a known, bad
  outcome of that schedule and seed, counted in its own right (never averaged in).
* ``stopped``: a scheduler (ASHA) stopped it early; its metrics are mid-training values of a
  trial chosen for looking worse at that moment, so they are neither a result nor a failure.
* ``failed``: it crashed, was killed, or is still running: the outcome is unknown.
* ``missing``: no run at all (a grid point that never ran); it shows up as a fraction or seed
  that another condition has and this one lacks.

A frame here is what :func:`analysis.runs.load_runs` returns: one row per trial run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.runs import REQUIRED_PARAMS, AnalysisError

OUTCOMES = ("finished", "diverged", "stopped", "failed")
# The train() keys a study may sweep or vary, for frames that lost load_runs' param list.
KNOWN_CONDITIONS = [
    *("peak_lr", "epochs", "steps", "decay", "batch_size", "model", "dataset", "optimizer"),
    *("momentum", "weight_decay", "warmup_fraction"),
]
BUDGETS = ("epochs", "steps")  # what a trial's budget is counted in
_NOT_CONDITIONS = {*REQUIRED_PARAMS, "schedule"} - {"peak_lr"}


def outcome(runs: pd.DataFrame) -> pd.Series:
    """Each trial's ending, one of :data:`OUTCOMES` (see the module docstring); a frame that
    already has an ``outcome`` column (:func:`with_outcome`) is read, not worked out again."""
    if "outcome" in runs:
        return runs["outcome"]
    diverged = runs["diverged"].to_numpy(dtype=bool)
    stopped = runs["stopped"].to_numpy(dtype=bool) if "stopped" in runs else False
    finished = (runs["status"] == "FINISHED").to_numpy()
    # A diverged trial ends FINISHED: the flag decides. Anything else unfinished is a failure.
    ending = np.select(
        [diverged, stopped, finished], ["diverged", "stopped", "finished"], default="failed"
    )
    return pd.Series(ending, index=runs.index, name="outcome")


def with_outcome(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with each trial's ending as an ``outcome`` column, for the many masks a
    verdict takes over the same trials."""
    return runs.assign(outcome=outcome(runs))


def metric_outcome(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Each trial's ending as far as ``metric`` is concerned: :func:`outcome`, except that a
    finished trial whose metric is infinite diverged after all, and one without the metric (or
    with NaN) has no known result: ``failed``, never a calm seed."""
    ending = outcome(runs).copy()
    values = (
        pd.to_numeric(runs[metric], errors="coerce")
        if metric in runs
        else pd.Series(np.nan, index=runs.index)
    )
    finished = ending == "finished"
    ending[finished & np.isinf(values)] = "diverged"
    ending[finished & values.isna()] = "failed"
    return ending


def usable(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Trials whose final ``metric`` can be averaged: finished their budget, did not diverge,
    were not stopped early, and have a finite value of the metric."""
    return metric_outcome(runs, metric) == "finished"


def knee_trials(runs: pd.DataFrame) -> pd.DataFrame:
    """The Knee trials (baselines have no explore phase), by the ``schedule`` column."""
    return runs[runs["schedule"] == "knee"] if "schedule" in runs else runs


def conditions(runs: pd.DataFrame) -> list[str]:
    """The columns that split trials into separate experiments: peak LR first, then every other
    param that varies (epochs, decay, ...), never seed, explore fraction or schedule."""
    params = runs.attrs.get("params", KNOWN_CONDITIONS)  # a frame read back from runs.csv
    varying = [
        p
        for p in params
        if p not in _NOT_CONDITIONS and p != "peak_lr" and p in runs and runs[p].nunique() > 1
    ]
    return ["peak_lr", *varying]


def swept_budget(runs: pd.DataFrame) -> str | None:
    """The budget the trials differ in, ``epochs`` (an image classifier's) or ``steps`` (optimizer
    steps, a language model's); None when every trial had the same budget."""
    return next((unit for unit in BUDGETS if unit in runs and runs[unit].nunique() > 1), None)


def refuse_repeated_seeds(good: pd.DataFrame, keys: list[str]) -> None:
    """Two usable runs of one seed at one point (two studies in one experiment, most likely)
    would be counted as two seeds: refuse them rather than report a false precision."""
    repeated = good[good.duplicated([*keys, "seed"], keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        at = ", ".join(f"{k}={first[k]}" for k in [*keys, "seed"])
        raise AnalysisError(
            f"{len(repeated)} runs repeat a seed (e.g. {at}): the experiment holds more than one "
            "study; analyse one (parent_run_id, or knee-study report STUDY_DIR)"
        )


def counts(runs: pd.DataFrame) -> dict[str, int]:
    """How many trials ended each way: ``{"finished": 90, "diverged": 4, ...}``."""
    found = outcome(runs).value_counts()
    return {name: int(found.get(name, 0)) for name in OUTCOMES}
