"""The study's parent run in MLflow: opened when a study starts, marked as it ends, closed with
its children when it stops, and the report's files on it.

One experiment per study name; a parent run per study; one child run per trial, written by
:class:`study.tracker.TrialTracker`. Everything here runs on the driver.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from trainables.results import PARENT_RUN_TAG


def start_study_run(
    tracking_uri: str,
    experiment_name: str,
    params: Mapping[str, Any],
    artifact_root: Path | None = None,
) -> tuple[str, str]:
    """Create (or find) the study's experiment and open its parent run; returns both ids.

    ``artifact_root`` is where a new experiment keeps its artifacts; None leaves it to MLflow (for
    a server or a shared database: a driver's local path would be useless to its other clients).
    Run on the driver before any trial starts: the first use of a sqlite store creates its
    tables, which concurrent first users would race on.
    """
    client = MlflowClient(tracking_uri)
    experiment_id = _experiment_id(client, experiment_name, artifact_root)
    tags = {"study": experiment_name, **_provenance(), **source_tags()}
    run = client.create_run(experiment_id, run_name=experiment_name, tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return experiment_id, run.info.run_id


def _experiment_id(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """The id of experiment ``name``, created if there is none yet.

    Two studies of one name starting together against one server may both find none: the
    second one's create fails, and the first one's experiment is the study's.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_root.resolve().as_uri() if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def source_tags() -> dict[str, str]:
    """MLflow's own source tags for the study's runs (the Runs page's Source column): the entry
    point and this checkout's git commit."""
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "knee-study"}
    commit = _provenance().get("mlflow.source.git.commit")
    return tags | ({"mlflow.source.git.commit": commit} if commit else {})


def _provenance() -> dict[str, str]:
    """Tags that say which code ran: the git commit of this checkout and library versions."""
    import ray
    import torch

    tags = {"torch_version": torch.__version__, "ray_version": ray.__version__}
    tags["mlflow_version"] = mlflow.__version__
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        tags["mlflow.source.git.commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (a wheel install): nothing to record
    return tags


def study_status(tracking_uri: str, run_id: str) -> str:
    """The parent run's MLflow status: RUNNING, FINISHED, FAILED or KILLED."""
    return MlflowClient(tracking_uri).get_run(run_id).info.status


def set_study_status(tracking_uri: str, run_id: str, status: str) -> None:
    """Mark the parent run RUNNING (resume), FINISHED, FAILED or KILLED."""
    client = MlflowClient(tracking_uri)
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status=status)


@contextlib.contextmanager
def failed_on_error(tracking_uri: str, parent_run_id: str) -> Iterator[None]:
    """Around setting up a study whose parent run is open: should it fail, the run is FAILED,
    not left RUNNING (as far as MLflow still answers)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(MlflowException):
            set_study_status(tracking_uri, parent_run_id, "FAILED")
        raise


def close_open_runs(tracking_uri: str, experiment_id: str, parent_run_id: str, status: str) -> int:
    """Terminate every child run of the study still RUNNING; returns how many were closed."""
    client = MlflowClient(tracking_uri)
    running = f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    open_runs, token = [], None
    while True:  # every page first: closing runs while paging would shift the pages
        page = client.search_runs(
            [experiment_id], filter_string=running, max_results=1000, page_token=token
        )
        open_runs += page
        token = page.token
        if not token:
            break
    for run in open_runs:
        client.set_terminated(run.info.run_id, status=status)
    return len(open_runs)


def attach_report(tracking_uri: str, run_id: str, report_dir: Path) -> None:
    """Put the report's files on the study's parent run, under ``report/`` in its artifacts, so
    whoever browses the experiment finds the verdict there; a second call overwrites files of
    the same name (MLflow deletes no artifact)."""
    MlflowClient(tracking_uri).log_artifacts(run_id, str(report_dir), artifact_path="report")


VERDICT_TAG = (
    "verdict"  # the parent run's: robust | not robust | inconclusive (or the kind's words)
)
NOTE_TAG = "mlflow.note.content"  # MLflow's run description, shown on the run's page


def record_verdict(tracking_uri: str, run_id: str, verdict: Any, attached: bool = True) -> None:
    """Make the study's parent run answer its question where runs are compared: the verdict
    as tags (``verdict``, ``verdict_kind``, ``objective``), the verdict sentence and its rules as
    the run's description, and per condition the numbers behind it as metrics
    (``verdict/<condition>/gap_high``: the largest rival advantage's upper bound,
    ``best_fraction``, ``seeds``), so several studies sit side by side in the runs table.
    ``attached``: whether the report's files are on the run (the description says where)."""
    policy = verdict.policy
    tags = {
        VERDICT_TAG: verdict.status,
        "verdict_kind": verdict.kind,
        "objective": f"{policy.metric} ({policy.mode}), margin {policy.margin:g}",
        NOTE_TAG: (
            f"**Verdict: {verdict.status}.** {verdict.explanation}\n\n"
            f"Objective: {policy.metric}, {'higher' if policy.mode == 'max' else 'lower'} is "
            f"better; margin {policy.margin:g}; explore fraction judged {policy.fraction:g}. "
            + (
                "The whole report is in this run's artifacts, under report/."
                if attached
                else "The whole report is in the study folder, under report/."
            )
        ),
    }
    metrics = []
    table = verdict.table
    keys = [c for c in table.columns if c in ("peak_lr", "decay", "epochs", "steps")]
    now = int(time.time() * 1000)
    for _, row in table.iterrows():
        where = (
            "/".join(
                f"{k}_{row[k]:g}" if isinstance(row[k], float) else f"{k}_{row[k]}" for k in keys
            )
            or "all"
        )
        for name, column in (
            ("gap_high", "gap_high"),
            ("best_fraction", "best_fraction"),
            ("seeds", "n_fraction"),
        ):
            value = row.get(column)
            # NaN or inf (a condition with no comparison, an interval of one seed): not a
            # number MLflow's REST API can carry, and nothing to compare studies by.
            if value is not None and math.isfinite(value):
                metrics.append(Metric(f"verdict/{where}/{name}", float(value), now, 0))
    client = MlflowClient(tracking_uri)
    client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])


RUNS_VIEW = "knee-study"  # the saved view of the Runs page a study's "browse it" link opens
VIEW_TAG = "mlflow.sharedViewState."  # MLflow's UI keeps its saved views as experiment tags


def save_runs_view(tracking_uri: str, experiment_id: str, metric: str) -> None:
    """Save a view of the experiment's Runs page (*Views* -> ``knee-study`` in MLflow's UI) whose
    columns are what studies are compared by: the objective's ``metric``, explore fraction and
    peak LR, and the verdict and objective tags. The Runs page's default columns show no
    tag, so without it a study's row says nothing of its verdict. MLflow keeps a view as the
    experiment tag the UI itself writes on *Save as new view*; a UI that no longer reads it
    shows its default columns."""
    # Few and narrow, so that the verdict (the table puts tags last) is on screen: a grid
    # draws only the columns in view.
    columns = [
        f"metrics.`{metric}`",
        *(f"params.`{key}`" for key in ("explore_fraction", "peak_lr")),
        "tags.`verdict`",
        "tags.`objective`",
    ]
    now = int(time.time() * 1000)
    view = {
        "name": RUNS_VIEW,
        "createdAt": now,
        "updatedAt": now,
        "state": json.dumps({"selectedColumns": columns}),
    }
    MlflowClient(tracking_uri).set_experiment_tag(
        experiment_id, VIEW_TAG + RUNS_VIEW, json.dumps(view)
    )


def rehome_artifacts(tracking_uri: str, experiment_id: str, artifact_root: Path) -> bool:
    """Point the experiment of a study's own sqlite store, and its runs, at ``artifact_root``
    (``<study>/mlartifacts``) when they name an artifact folder of that name elsewhere: the
    folder it was copied or moved from. Returns whether anything changed.

    MLflow records absolute artifact locations and has no call that changes them: a copy of a
    study would otherwise attach its report to the original's files. Only the two columns MLflow
    keeps them in are rewritten, for this experiment alone.
    """
    new = artifact_root.resolve().as_uri()
    old = MlflowClient(tracking_uri).get_experiment(experiment_id).artifact_location
    if old == new or not old.startswith("file://") or not old.endswith(f"/{artifact_root.name}"):
        return False
    from sqlalchemy import create_engine, text

    engine = create_engine(tracking_uri)
    try:
        with engine.begin() as db:
            db.execute(
                text("UPDATE experiments SET artifact_location = :new WHERE experiment_id = :id"),
                {"new": new, "id": int(experiment_id)},
            )
            db.execute(
                text(
                    "UPDATE runs SET artifact_uri = :new || substr(artifact_uri, :cut) "
                    "WHERE experiment_id = :id AND substr(artifact_uri, 1, :cut - 1) = :old"
                ),
                {"new": new, "old": old, "cut": len(old) + 1, "id": int(experiment_id)},
            )
    finally:
        engine.dispose()
    return True
