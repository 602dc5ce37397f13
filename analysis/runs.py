"""An MLflow experiment as pandas: one row per trial run, or one row per trial and epoch.

Works on any experiment whose runs carry the sweep's params (``explore_fraction``, ``peak_lr``,
``seed``) and final metrics, however they were logged: by ``knee-study``, by Ray's
``MLflowLoggerCallback`` or by hand. Runs that are parents of other runs (a study's own run) and
runs without the sweep's params are left out.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from trainables.results import EPOCH_METRICS, PARENT_RUN_TAG, SEARCH_TAG, RunOutcome

REQUIRED_PARAMS = ("explore_fraction", "peak_lr", "seed")
# A baseline's run has no Knee params (knee-study logs none): a trial is a run with these and
# either an explore fraction or a schedule.
_TRIAL_PARAMS = {"peak_lr", "seed"}
_PAGE = 1000  # runs per search request: thousands of runs cost a few round trips, not one each
# History requests to a server at once: 7.5x one at a time (benchmarks/history_load.py); MLflow's
# HTTP session pools 10 connections.
SERVER_REQUESTS_IN_FLIGHT = 8


class AnalysisError(ValueError):
    """The experiment cannot be analysed: it is missing, or its runs lack the sweep's params."""


def load_runs(
    experiment: str,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
) -> pd.DataFrame:
    """One row per trial run of ``experiment`` (a name or an id).

    Columns: ``run_id``; ``status`` (FINISHED, FAILED, KILLED, RUNNING); ``diverged`` (bool);
    ``stopped`` (bool: the scheduler, ASHA, stopped the trial before the end of its budget, its
    run tagged ``stopped_early``; such a run is KILLED, its final metrics are those of its last
    epoch and it has no sharpness) and ``stopped_at_epoch`` (float: that last epoch, NaN for a
    trial not stopped); ``search`` (``grid``, or ``optuna`` from the trial's tag); every param
    under its own name with a proper dtype (``explore_fraction`` and ``peak_lr`` float, ``seed``
    int, ``schedule`` str, numbers as numbers, ``True``/``False`` as bool); every final metric
    value under its own name (``test_acc``, ``sharpness``, ...; one that shares the name of a
    param or of a column above gets a ``metric.`` prefix). ``df.attrs["params"]`` lists the param
    columns.

    ``parent_run_id`` picks one study when several share the experiment; without it such an
    experiment is refused (each seed would count twice). Raises :class:`AnalysisError` naming
    what was found when nothing can be used.
    """
    client = MlflowClient(tracking_uri)
    experiment_id = _experiment_id(client, experiment)
    runs = list(_search(client, experiment_id, parent_run_id))
    parents = {run.data.tags.get(PARENT_RUN_TAG) for run in runs}
    trials = [run for run in runs if run.info.run_id not in parents and _is_trial(run.data.params)]
    if not trials:
        raise AnalysisError(_nothing_usable(experiment, runs))
    studies = {run.data.tags.get(PARENT_RUN_TAG) for run in trials} - {None}
    if parent_run_id is None and len(studies) > 1:
        raise AnalysisError(
            f"experiment {experiment!r} holds {len(studies)} studies (parent runs "
            f"{', '.join(sorted(studies))}): analyse one, with its study folder or its parent "
            "run id (report --parent-run)"
        )

    params = sorted({key for run in trials for key in run.data.params} | set(REQUIRED_PARAMS))
    rows = [_row(run, params) for run in trials]
    frame = pd.DataFrame(rows)
    for column in params:
        frame[column] = _typed(frame[column])
    frame["seed"] = frame["seed"].astype(int)
    frame["explore_fraction"] = frame["explore_fraction"].astype(float)
    frame["peak_lr"] = frame["peak_lr"].astype(float)
    if "schedule" not in frame:
        frame["schedule"] = "knee"  # a plain Knee sweep need not log it
        params.append("schedule")
    frame["schedule"] = frame["schedule"].fillna("knee").astype(str)
    frame.attrs["params"] = params
    return frame.sort_values(["schedule", "peak_lr", "explore_fraction", "seed"], kind="stable")


def load_history(
    experiment: str | None,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    metrics: Sequence[str] = EPOCH_METRICS,
    runs: pd.DataFrame | None = None,
    requests_in_flight: int | None = None,
) -> pd.DataFrame:
    """One row per trial and epoch: ``run_id``, the sweep's params, ``epoch`` and ``metrics``.

    Costs one request per run and metric (MLflow has no bulk history call), made
    ``requests_in_flight`` at a time (default: 8 to a server, 1 to a local store, where threads
    only contend): pass ``runs`` (from :func:`load_runs`, perhaps filtered; ``experiment`` may
    then be None) to fetch the history of just those trials.
    """
    client = MlflowClient(tracking_uri)
    if requests_in_flight is None:
        server = client.tracking_uri.startswith(("http://", "https://"))
        requests_in_flight = SERVER_REQUESTS_IN_FLIGHT if server else 1
    if runs is None:
        if experiment is None:
            raise ValueError("load_history needs an experiment or the runs to fetch")
        runs = load_runs(experiment, tracking_uri, parent_run_id)
    keys = ["run_id", *REQUIRED_PARAMS, "schedule"]

    def epochs_of(trial: tuple) -> pd.DataFrame:
        per_metric = [
            pd.Series(
                {m.step: m.value for m in client.get_metric_history(trial.run_id, name)},
                name=name,
                dtype=float,
            )
            for name in metrics
        ]
        epochs = pd.concat(per_metric, axis=1).rename_axis("epoch").reset_index()
        return epochs.assign(**trial._asdict())

    # The requests wait on the store, not on Python: threads overlap them.
    with ThreadPoolExecutor(requests_in_flight) as pool:
        frames = list(pool.map(epochs_of, runs[keys].itertuples(index=False)))
    if not frames:
        return pd.DataFrame(columns=[*keys, "epoch", *metrics])
    history = pd.concat(frames, ignore_index=True)
    return history[[*keys, "epoch", *metrics]].sort_values(["run_id", "epoch"], kind="stable")


def _experiment_id(client: MlflowClient, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None and experiment.isdigit():
        try:
            found = client.get_experiment(experiment)
        except Exception:  # MLflow raises its own RestException subclasses for a missing id
            found = None
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise AnalysisError(
            f"no MLflow experiment named {experiment!r} at {client.tracking_uri}; "
            f"found: {', '.join(names) or 'none'}"
        )
    return found.experiment_id


def _search(client: MlflowClient, experiment_id: str, parent_run_id: str | None) -> Iterator[Run]:
    query = f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'" if parent_run_id else ""
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=query,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=_PAGE,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def _is_trial(params: dict[str, str]) -> bool:
    return params.keys() >= _TRIAL_PARAMS and bool({"explore_fraction", "schedule"} & params.keys())


def _row(run: Run, params: list[str]) -> dict:
    tags, metrics = run.data.tags, run.data.metrics
    row = {"run_id": run.info.run_id, "status": run.info.status}
    ended = RunOutcome.of(tags, metrics)
    row["diverged"], row["stopped"] = ended.diverged, ended.stopped
    row["stopped_at_epoch"] = ended.stopped_at_epoch
    row["search"] = tags.get(SEARCH_TAG, "grid")  # knee-study tags an Optuna study's trials
    row.update({key: run.data.params.get(key) for key in params})
    for key, value in metrics.items():
        row[f"metric.{key}" if key in row else key] = _unclamped(value)
    return row


def _unclamped(value: float) -> float:
    """An infinite metric as it was logged: MLflow's SQL stores keep +-inf as the largest float,
    which would otherwise read as a finite (usable) value, never as divergence."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def _typed(column: pd.Series) -> pd.Series:
    """A string param column as numbers or bools where every value is one (None stays missing)."""
    values = column.replace({"None": None})
    if values.dropna().isin(["True", "False"]).all() and values.notna().any():
        return values.map({"True": True, "False": False})
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() == values.notna().sum():
        return numbers
    return values


def _nothing_usable(experiment: str, runs: list[Run]) -> str:
    if not runs:
        return f"experiment {experiment!r} has no runs"
    found = sorted({key for run in runs for key in run.data.params})
    return (
        f"experiment {experiment!r} has {len(runs)} run(s) but none with the params "
        f"{', '.join(REQUIRED_PARAMS)}; params found: {', '.join(found) or 'none'}"
    )
