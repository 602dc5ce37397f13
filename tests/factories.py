"""Test data, built once for every test: study frames shaped exactly as
:func:`analysis.runs.load_runs` returns them, the trials of a few studies with known answers,
and real MLflow stores holding such studies (the one writer of MLflow runs in the tests).

Imported as ``factories``: pytest puts ``tests/`` on ``sys.path`` (``tests/conftest.py`` lives
there and the folder is no package). Nothing here asserts anything; test modules import from
here and never from one another.

* :func:`runs_frame`: rows (one dict per trial) -> a ``load_runs`` frame: its bookkeeping
  columns filled as a trial that finished would have them, its dtypes, its ``attrs["params"]``
  and its row order.
* :func:`grid`, :func:`sweep`, :func:`diverging`, :func:`arm`, :func:`explore_grid`,
  :func:`curve_runs` and :func:`history_of`: the trials of the studies the tests reason about.
* :func:`log_study` and the ``log_*`` studies: the same trials written into an MLflow store as
  ``knee-study run`` lays them out (a parent run, a child run per trial, the tags of
  :mod:`trainables.results`), for the tests of ``load_runs`` and of ``knee-study report``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.runs import REQUIRED_PARAMS
from trainables.results import (
    EPOCH_METRICS,
    FINAL_METRICS,
    PARENT_RUN_TAG,
    SEARCH_TAG,
    final_tags,
)

Trial = dict  # one trial: its params (explore_fraction, peak_lr, seed, ...) and final metrics

# What load_runs adds to a run's params and metrics (see its docstring), with the values a trial
# that trained its whole budget has; a row may give its own.
BOOKKEEPING = {
    "status": "FINISHED",
    "diverged": False,
    "stopped": False,
    "stopped_at_epoch": np.nan,
    "search": "grid",
}
METRICS = {*EPOCH_METRICS, *FINAL_METRICS}


def runs_frame(rows: Iterable[Mapping] | pd.DataFrame, params: Sequence[str] | None = None):
    """A frame as ``load_runs`` returns it, one row per trial of ``rows``.

    Filled where a row lacks them: ``run_id`` (``run-0``, ``run-1``, ... in the order given),
    the :data:`BOOKKEEPING` columns, and ``schedule`` ``knee`` (as ``load_runs`` fills it for a
    plain Knee sweep). Typed as ``load_runs`` types them: ``explore_fraction`` and ``peak_lr``
    float (a baseline's explore fraction NaN), ``seed`` int, ``schedule`` str, ``diverged`` and
    ``stopped`` bool, ``stopped_at_epoch`` float. ``attrs["params"]`` is ``params`` (default:
    every column that is neither bookkeeping nor a metric of :mod:`trainables.results`) with
    the sweep's params and ``schedule``, sorted; rows come sorted by schedule, peak LR, explore
    fraction and seed, each keeping its label (its place in ``rows``), as ``load_runs`` sorts.
    """
    runs = rows.reset_index(drop=True) if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    runs = runs.copy()
    runs.attrs = {}
    if "run_id" not in runs:
        runs.insert(0, "run_id", [f"run-{i}" for i in range(len(runs))])
    for column, value in BOOKKEEPING.items():  # a row that leaves one out has the default
        runs[column] = runs[column].where(runs[column].notna(), value) if column in runs else value
    if "explore_fraction" not in runs:  # a study of baselines alone
        runs["explore_fraction"] = np.nan
    runs["schedule"] = runs["schedule"].fillna("knee") if "schedule" in runs else "knee"
    runs = runs.astype(
        {
            "explore_fraction": float,
            "peak_lr": float,
            "seed": int,
            "schedule": str,
            "diverged": bool,
            "stopped": bool,
            "stopped_at_epoch": float,
        }
    )
    if params is None:
        params = [c for c in runs if c != "run_id" and c not in BOOKKEEPING and c not in METRICS]
    runs.attrs["params"] = sorted({*REQUIRED_PARAMS, "schedule", *params})
    return runs.sort_values(["schedule", "peak_lr", "explore_fraction", "seed"], kind="stable")


def combined(*frames: pd.DataFrame) -> pd.DataFrame:
    """Several frames as one ``load_runs`` frame of them all (pandas keeps no ``attrs`` that
    differ when it concatenates): the params are every frame's, and every column added since
    that is neither bookkeeping nor a metric (``.assign(epochs=20)``). Run ids stay as they are
    when no two trials share one, else every trial is numbered afresh (``run-0``, ...)."""
    runs = pd.concat(frames, ignore_index=True)
    if runs["run_id"].duplicated().any():
        runs = runs.drop(columns="run_id")
    inferred = {c for c in runs if c != "run_id" and c not in BOOKKEEPING and c not in METRICS}
    params = {p for frame in frames for p in frame.attrs.get("params", [])}
    return runs_frame(runs, sorted(params | inferred))


def grid(**axes) -> list[Trial]:
    """Every combination of the axes, as trials: ``grid(peak_lr=[0.1], seed=[0, 1])``."""
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


# --- An explore sweep whose summaries and verdict are worked out by hand ----------------------

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
# A seed shifts every fraction by the same amount (pairing by seed removes it).
SEED_SHIFT = (0.000, 0.004, -0.002, 0.002, -0.004, 0.001, -0.001, 0.003, -0.003, 0.0005)


def plateau(fraction: float, seed: int) -> float:
    """0.95 without an explore phase, a 0.98 plateau from 25% on, the seed's shift, and a jitter
    of -0.0002, 0 or +0.0002 that differs between fractions."""
    jitter = 0.0002 * ((seed + 2 * FRACTIONS.index(fraction)) % 3 - 1)
    return (0.95 if fraction == 0 else 0.98) + SEED_SHIFT[seed] + jitter


def sweep(
    accuracy: Callable[[float, float, int], float],
    peak_lrs: Sequence[float] = (0.05, 0.1),
    seeds: Iterable[int] = range(10),
    fractions: Sequence[float] = FRACTIONS,
    metric: str = "test_acc",
    **params,
) -> pd.DataFrame:
    """A finished Knee grid: ``metric`` (``test_acc`` unless told) =
    ``accuracy(fraction, peak_lr, seed)`` and sharpness ``10 (1 - value)`` (so the two are
    perfectly opposed); ``params`` (``epochs=20``) the same for every trial."""
    seeds = list(seeds)
    rows = [
        {"explore_fraction": f, "peak_lr": lr, "seed": s, **params, metric: accuracy(f, lr, s)}
        for lr in peak_lrs
        for f in fractions
        for s in seeds
    ]
    for row in rows:
        row["sharpness"] = 10 * (1 - row[metric])
    return runs_frame(rows)


def diverging(count: int, fractions: Sequence[float] = FRACTIONS) -> pd.DataFrame:
    """Ten seeds at peak LR 0.1, every fraction the same accuracy per seed (0.98 + 0.001 (seed
    mod 5): paired gaps of zero), and the first ``count`` seeds at 50% diverged."""
    rows = [
        {
            "explore_fraction": f,
            "peak_lr": 0.1,
            "seed": s,
            "test_acc": 0.98 + 0.001 * (s % 5),
            "diverged": f == 0.5 and s < count,
        }
        for f in fractions
        for s in range(10)
    ]
    return runs_frame(rows)


# --- Schedule, budget and decay arms ---------------------------------------------------------

# A seed's effect, shared by every arm (pairing removes it); the first four sum to 0.002.
SEED_EFFECTS = (0.000, 0.003, -0.002, 0.001, 0.002, -0.001, 0.0005, -0.0005, 0.0015, -0.0015)


def arm(
    schedule: str, accuracy: float, seeds: int = 4, metric: str = "test_acc", **params
) -> list[Trial]:
    """One arm's trials, seeds ``0 .. seeds - 1``: ``schedule`` at peak LR 0.1 (a Knee arm at 50%
    explore unless ``params`` say otherwise, a baseline with no explore fraction), ``metric``
    (test accuracy unless told) ``accuracy + SEED_EFFECTS[seed]``."""
    trials = []
    for seed in range(seeds):
        row = {"schedule": schedule, "peak_lr": 0.1, "seed": seed, **params}
        row.setdefault("explore_fraction", 0.5 if schedule == "knee" else np.nan)
        trials.append({**row, metric: accuracy + SEED_EFFECTS[seed]})
    return trials


# A search whose validation and test accuracies disagree on the best point.
SPLIT_SEARCH_POINTS = (
    *((0.05, 0.1), (0.2, 0.05), (0.45, 0.08)),
    *((0.57, 0.12), (0.62, 0.2), (0.9, 0.03)),
)


def split_search(val_acc: bool = True) -> pd.DataFrame:
    """A search (tagged ``optuna``) over :data:`SPLIT_SEARCH_POINTS`, four seeds each
    (:func:`arm`): test accuracy peaks at explore 0.6 (0.98 - 0.05 (f - 0.6)^2), validation
    accuracy (left out unless ``val_acc``) at 0.3 (0.97 - 0.05 (f - 0.3)^2), both plus the
    seed's effect.

    By test accuracy the best point is 62%, the best within 10 points of 50% is 57% and the
    best beyond is 62%; by validation accuracy (distances to 0.3: 20% 0.1, 45% 0.15, 5% 0.25,
    57% 0.27, 62% 0.32, 90% 0.6) the best is 20%, the best within 45%, the best beyond 20%."""
    rows = []
    for f, lr in SPLIT_SEARCH_POINTS:
        for t in arm("knee", 0.98 - 0.05 * (f - 0.6) ** 2, explore_fraction=f, peak_lr=lr):
            if val_acc:
                t["val_acc"] = 0.97 - 0.05 * (f - 0.3) ** 2 + SEED_EFFECTS[t["seed"]]
            rows.append(t)
    return runs_frame(rows).assign(search="optuna")


# --- Studies for the figures ----------------------------------------------------------------


def explore_grid(
    fractions: Sequence[float],
    peak_lrs: Sequence[float],
    epochs: Sequence[int] = (20,),
    seeds: Iterable[int] = (0, 1, 2),
) -> pd.DataFrame:
    """One finished Knee trial per combination (epochs a param), in that order: test accuracy
    ``0.9 + 0.01 f + 0.001 seed + 0.0001 i`` (i: the trial's place in the order) and sharpness
    ``1 + f + 0.1 seed``, so both vary along every axis."""
    rows = [
        {
            "explore_fraction": f,
            "peak_lr": lr,
            "epochs": e,
            "seed": s,
            "test_acc": 0.9 + 0.01 * f + 0.001 * s + 0.0001 * i,
            "sharpness": 1.0 + f + 0.1 * s,
        }
        for i, (f, lr, e, s) in enumerate(itertools.product(fractions, peak_lrs, epochs, seeds))
    ]
    return runs_frame(rows)


CURVE_EPOCHS = (1, 2, 3, 4)
CURVE_SEED_OFFSETS = (0.0, 0.01, 0.02, 0.03)  # seeds 0-3: median 0.015, quartiles 0.0075, 0.0225


def curve_accuracy(fraction: float, epoch: int, seed: int) -> float:
    """A test accuracy rising 0.1 an epoch from 0.5, 0.05 higher per unit of explore fraction,
    plus the seed's offset (:data:`CURVE_SEED_OFFSETS`, repeating every four seeds)."""
    return 0.5 + 0.1 * epoch + 0.05 * fraction + CURVE_SEED_OFFSETS[seed % 4]


def knee_lr(fraction: float, peak_lr: float, epoch: int) -> float:
    """A Knee schedule over the four :data:`CURVE_EPOCHS`: the peak for the first fraction x 4
    epochs, then linear to 0 at epoch 4."""
    explore = fraction * len(CURVE_EPOCHS)
    return peak_lr if epoch <= explore else peak_lr * (4 - epoch) / (4 - explore)


def history_of(runs: pd.DataFrame, bad: set = frozenset()) -> pd.DataFrame:
    """``load_history``'s frame for ``runs``' trials over :data:`CURVE_EPOCHS`:
    :func:`curve_accuracy`, training loss ``(1 + seed) / epoch`` and :func:`knee_lr`; the
    trials in ``bad`` (run ids) get wild values (accuracy 0, loss 100, LR 9) that would move
    every median and quartile if they were counted."""
    rows = [
        {
            "run_id": t.run_id,
            "explore_fraction": t.explore_fraction,
            "peak_lr": t.peak_lr,
            "seed": t.seed,
            "schedule": t.schedule,
            "epoch": e,
            "test_acc": 0.0 if t.run_id in bad else curve_accuracy(t.explore_fraction, e, t.seed),
            "train_loss": 100.0 if t.run_id in bad else (1 + t.seed) / e,
            "lr": 9.0 if t.run_id in bad else knee_lr(t.explore_fraction, t.peak_lr, e),
        }
        for t in runs.itertuples()
        for e in CURVE_EPOCHS
    ]
    return pd.DataFrame(rows)


def curve_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fractions 25% and 50% at peak LRs 0.05 and 0.1 (:func:`explore_grid`), seeds 0-3
    finished; at each fraction and peak LR a fifth seed (4) that diverged and a sixth (5) that
    failed. Returns the runs and their :func:`history_of`, the seeds 4 and 5 wild."""
    runs = explore_grid([0.25, 0.5], [0.05, 0.1], seeds=(0, 1, 2, 3, 4, 5))
    runs.loc[runs["seed"] == 4, "diverged"] = True
    runs.loc[runs["seed"] == 5, "status"] = "FAILED"
    bad = set(runs.loc[runs["seed"] >= 4, "run_id"])
    return runs, history_of(runs, bad)


# --- MLflow stores --------------------------------------------------------------------------

LOGGED_METRICS = ("test_acc", "sharpness", "trial_seconds")  # a trial's keys logged as metrics
FINAL_STEP = 3  # the step the final metrics are logged at: the last epoch of a 3-epoch history


def log_study(
    tracking_uri: str,
    name: str,
    trials: Iterable[Trial],
    history: Callable[[Trial], dict[str, list[float]]] | None = None,
) -> str:
    """Log ``trials`` into a new experiment ``name`` as child runs of one parent run, as
    ``knee-study run`` lays them out; returns the parent run id.

    A trial's keys in :data:`LOGGED_METRICS` become final metrics (at step :data:`FINAL_STEP`),
    ``status`` (default FINISHED) and ``diverged`` (default False, written as the tracker's
    tags) set how the run ended, everything else is a param (as its ``str``). ``history(trial)``
    (the trial's params) gives per-epoch values, epoch 1 first.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(name)
    parent = client.create_run(experiment_id, run_name=name)
    client.log_batch(parent.info.run_id, params=[Param("sweep.peak_lr", "[0.05, 0.1]")])
    now = int(time.time() * 1000)
    for trial in trials:
        trial = dict(trial)
        status = trial.pop("status", "FINISHED")
        diverged = trial.pop("diverged", False)
        metrics = {k: trial.pop(k) for k in LOGGED_METRICS if k in trial}
        run = client.create_run(experiment_id, tags={PARENT_RUN_TAG: parent.info.run_id})
        epochs = history(trial) if history else {}
        client.log_batch(
            run.info.run_id,
            params=[Param(k, str(v)) for k, v in trial.items()],
            metrics=[Metric(k, v, now, FINAL_STEP) for k, v in metrics.items()]
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


def tag_search(tracking_uri: str, name: str) -> None:
    """Tag every trial of experiment ``name`` as an Optuna study's, as ``knee-study run`` does."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name).experiment_id
    for run in client.search_runs([experiment], f"tags.`{PARENT_RUN_TAG}` != ''"):
        client.set_tag(run.info.run_id, SEARCH_TAG, "optuna")


def experiment_id(tracking_uri: str, name: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).get_experiment_by_name(name).experiment_id


TEST_IMAGES = 540  # accuracies are k / 540, as on the digits test split
PLATEAU_SEEDS = range(8)  # robust needs 7 or more: fewer cannot rule out a 30% divergence excess


def image_accuracy(fraction: float, peak_lr: float, seed: int) -> float:
    """A plateau from 50% explore on, one image per seed of spread, 0% two images worse, peak LR
    0.1 one image worse, and 50% one image short of 100% at seed 1: per seed, 100% minus 50% is
    0, 1, 0, 0, ... images."""
    correct = 530 + seed - (2 if fraction == 0 else 0) - (peak_lr == 0.1)
    correct -= fraction == 0.5 and seed == 1
    return correct / TEST_IMAGES


def plateau_sharpness(fraction: float, seed: int) -> float:
    return 1.0 + 2.0 * fraction + 0.1 * seed


def log_plateau_study(tracking_uri: str, name: str = "plateau") -> str:
    """Explore 0%, 50% and 100% x peak LRs 0.05 and 0.1 x :data:`PLATEAU_SEEDS`, 20 epochs
    each (no history), :func:`image_accuracy` and :func:`plateau_sharpness`."""
    trials = grid(explore_fraction=[0.0, 0.5, 1.0], peak_lr=[0.05, 0.1], seed=list(PLATEAU_SEEDS))
    for t in trials:
        t.update(schedule="knee", epochs=20)
        t["test_acc"] = image_accuracy(t["explore_fraction"], t["peak_lr"], t["seed"])
        t["sharpness"] = plateau_sharpness(t["explore_fraction"], t["seed"])
    return log_study(tracking_uri, name, trials)


def log_hopeless_study(tracking_uri: str, name: str = "hopeless") -> str:
    """Eight trials, none usable: five diverged, three failed."""
    trials = grid(explore_fraction=[0.0, 0.5], peak_lr=[0.05, 0.1], seed=[0, 1])
    for i, t in enumerate(trials):
        t.update(schedule="knee", test_acc=0.1)
        if i < 5:
            t["diverged"] = True  # a diverged trial still reports its last finite epoch
        else:
            t["status"] = "FAILED"
    return log_study(tracking_uri, name, trials)


def search_trials(seeds_at_last: int) -> list[Trial]:
    """Eight search points, each its own explore fraction (0.05, 0.15, ..., 0.75) and peak LR
    (0.01, ..., 0.08), three seeds each but the last point; accuracy 0.95 - 0.1 |f - 0.55| +
    0.001 seed, so the best point is the one nearest 55% explore."""
    points = [(0.05 + 0.1 * i, 0.01 * (i + 1)) for i in range(8)]
    trials = []
    for i, (fraction, peak_lr) in enumerate(points):
        for seed in range(3 if i < 7 else seeds_at_last):
            accuracy = 0.95 - abs(fraction - 0.55) * 0.1 + 0.001 * seed
            trials.append(
                dict(
                    explore_fraction=fraction,
                    peak_lr=peak_lr,
                    seed=seed,
                    schedule="knee",
                    test_acc=accuracy,
                )
            )
    return trials


CURVE_STUDY_EPOCHS = FINAL_STEP  # the final metrics are the last epoch's


def plateau_epochs(trial: Trial) -> dict[str, list[float]]:
    """Three epochs of history for a trial of :func:`log_curve_study` (``trial``: its params, as
    :func:`log_study` passes them): test accuracy rising 0.1 an epoch to the final one, loss
    1 / epoch, a Knee LR, and a train accuracy the report must not fetch."""
    final = image_accuracy(trial["explore_fraction"], trial["peak_lr"], min(trial["seed"], 3))
    epochs = range(1, CURVE_STUDY_EPOCHS + 1)
    explore = trial["explore_fraction"] * CURVE_STUDY_EPOCHS
    return {
        "test_acc": [final - 0.1 * (CURVE_STUDY_EPOCHS - e) for e in epochs],
        "train_loss": [1.0 / e for e in epochs],
        "train_acc": [0.5] * CURVE_STUDY_EPOCHS,  # logged, not drawn
        "lr": [
            trial["peak_lr"]
            * (1 if e <= explore else (CURVE_STUDY_EPOCHS - e) / (CURVE_STUDY_EPOCHS - explore))
            for e in epochs
        ],
    }


def log_curve_study(tracking_uri: str, name: str = "curves") -> str:
    """The plateau study's fractions and peak LRs, seeds 0-3 finished with three epochs of
    history each (:func:`plateau_epochs`), and one more seed (4) that diverged at every
    fraction and peak LR: 24 finished trials, 6 diverged."""
    trials = grid(explore_fraction=[0.0, 0.5, 1.0], peak_lr=[0.05, 0.1], seed=[0, 1, 2, 3, 4])
    for t in trials:
        t.update(schedule="knee", epochs=CURVE_STUDY_EPOCHS, diverged=t["seed"] == 4)
        t["test_acc"] = image_accuracy(t["explore_fraction"], t["peak_lr"], min(t["seed"], 3))
        t["sharpness"] = plateau_sharpness(t["explore_fraction"], t["seed"])
    return log_study(tracking_uri, name, trials, history=plateau_epochs)


# The figures a report of the plateau study writes.
PLATEAU_FIGURES = (
    "accuracy_vs_explore.png",
    "sharpness_vs_explore.png",
    "sharpness_vs_accuracy.png",
    "accuracy_heatmap.png",
    "distributions.png",  # the plateau study has no per-epoch history: no learning curves
)


# --- schedules ------------------------------------------------------------------------------


def lrs_used(optimizer, scheduler, steps: int) -> list[list[float]]:
    """Every group's LR at each of optimizer steps 1..``steps``, stepping as a loop must: the LR
    a step runs with is the one set before it, the scheduler stepped after it."""
    used = []
    for _ in range(steps):
        used.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return used
