"""MLflow layout of a study: one experiment per study name, a parent run, one child run per trial.

Everything is written from the driver by :class:`TrialTracker`, a Ray Tune callback: one writer,
so a sqlite store is safe and trial workers never need MLflow access. The guarantees:

* exactly one run per trial, however often the trial was retried or the study resumed (a trial's
  run is found by its ``trial_id`` tag before one is created);
* every epoch logged once: a step the run already has is never logged again, and steps a run
  lacks after a restore are filled in from the history the trial sends with its first result;
* terminal status matches the trial: FINISHED (it sent its final result) or FAILED here, and
  KILLED for a trial the scheduler (ASHA) stopped mid-training, tagged ``stopped_early`` and
  ``stopped_at_epoch``; the CLI closes whatever a stopped study left open as KILLED
  (:func:`close_open_runs`, untagged), and a resumed trial sets it running again.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from ray import tune

from study.config import trial_label
from study.reporting import one_line
from trainables.results import (
    EPOCH_METRICS,
    PARENT_RUN_TAG,
    STOPPED_AT_TAG,
    STOPPED_EARLY_TAG,
    TRIAL_ID_TAG,
    FinalReport,
    epoch_rows,
    final_tags,
    has_final,
    read_report,
    stopped_tags,
)

# On the run of a trial the scheduler stopped before its final result: "true", and the last epoch
# it reported (its metrics are mid-training ones, it has no sharpness).


class TrackingError(ValueError):
    """The MLflow tracking URI cannot be used."""


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def is_local_store(uri: str) -> bool:
    """Whether ``uri`` is a store in files on this machine (sqlite, a file store) rather than a
    server or a database other machines read too."""
    if uri == "databricks":  # MLflow's name for a Databricks workspace, not a path
        return False
    return urlsplit(uri).scheme in ("", "file", "sqlite")


def browse_hint(uri: str, experiment_id: str) -> str:
    """How to look at the study's runs: the server's page of the experiment, or the command that
    serves a local store."""
    if _is_server(uri):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}"
    return f"mlflow ui --backend-store-uri {uri}"


def check_tracking_uri(uri: str, must_exist: bool = False, timeout: float = 5.0) -> None:
    """Fail fast, before anything starts, on a tracking URI MLflow cannot use: a server that
    does not answer, a scheme MLflow has no store for, a database without its driver, and with
    ``must_exist`` (commands that read or continue a study) a local store that is not there,
    where MLflow would quietly make an empty one."""
    if _is_server(uri):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
                pass
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingError(
                f"--tracking-uri: no MLflow server answers at {uri} ({reason})"
            ) from None
        return
    scheme = urlsplit(uri).scheme
    if scheme and not _has_store(uri):  # ("databricks" alone has no scheme: MLflow's own)
        raise TrackingError(
            f"--tracking-uri: MLflow has no store for {scheme}: URIs, got {uri} (use "
            "sqlite:///PATH, a folder, http(s)://SERVER or a database URI)"
        )
    if scheme.partition("+")[0] in ("postgresql", "mysql", "mssql"):  # is the driver here?
        from sqlalchemy.engine import make_url  # MLflow's own database layer

        try:
            make_url(uri).get_dialect().import_dbapi()
        except Exception as error:  # no driver installed, a malformed URL
            first = one_line(error, expected=True)
            raise TrackingError(f"--tracking-uri: cannot use {scheme}: {first}") from None
    path = local_path(uri)
    if must_exist and path is not None and not path.exists():
        raise TrackingError(
            f"no MLflow store at {path} (a study folder moved since it ran still names its "
            "old store in study.json)"
        )


def _has_store(uri: str) -> bool:
    """Whether MLflow has a tracking store for ``uri``'s scheme (its own or a plugin's)."""
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    except ImportError:  # moved in some MLflow release: let MLflow judge the URI itself
        return True
    try:
        _tracking_store_registry.get_store_builder(uri)
    except MlflowException:
        return False
    return True


def local_path(uri: str) -> Path | None:
    """The file or folder of a local store (a sqlite file, a file store); None for other URIs
    and for sqlite databases that are no plain file (in memory, SQLite's own file: URIs)."""
    if not is_local_store(uri):
        return None
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        from sqlalchemy.engine import make_url

        database = make_url(uri).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database)
    return Path(url2pathname(parts.path) if parts.scheme == "file" else uri)


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative local path made absolute: a study's URI must mean the same store
    from wherever it is resumed or reported."""
    path = local_path(uri)
    if path is None or path.is_absolute():
        return uri
    if urlsplit(uri).scheme == "sqlite":
        from sqlalchemy.engine import make_url

        url = make_url(uri).set(database=str(path.resolve()))
        return url.render_as_string(hide_password=False)
    return path.resolve().as_uri() if uri.startswith("file:") else str(path.resolve())


def default_tracking_uri(output: Path) -> str:
    """The embedded store: a sqlite file in the output folder (absolute, as MLflow 3 wants)."""
    return f"sqlite:///{(output / 'mlflow.db').resolve()}"


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
    run = client.create_run(
        experiment_id, run_name=experiment_name, tags={"study": experiment_name, **_provenance()}
    )
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


def attach_report(tracking_uri: str, run_id: str, report_dir: Path) -> None:
    """Put the report's files on the study's parent run, under ``report/`` in its artifacts, so
    whoever browses the experiment finds the verdict there; a second call overwrites files of
    the same name (MLflow deletes no artifact)."""
    MlflowClient(tracking_uri).log_artifacts(run_id, str(report_dir), artifact_path="report")


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


class TrialTracker(tune.Callback):
    """Logs each trial of a Tune experiment to its own child run of the study's parent run."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        run_tags: Mapping[str, str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.run_tags = dict(run_tags or {})  # on every trial's run, e.g. {"search": "optuna"}
        self._forget()

    # Tune pickles callbacks with its experiment state; clients and caches are rebuilt after.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._forget()

    def _forget(self) -> None:
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}  # trial_id -> run_id
        self._last_step: dict[str, int] = {}  # trial_id -> last epoch the run has
        self._final_logged: set[str] = set()  # trial_ids whose run has its final metrics
        self._stopped: set[str] = set()  # trial_ids whose run is tagged stopped_early

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._run_id(trial)
        # A stopped trial trains again when the driver died before Tune's snapshot had it
        # stopped: until the scheduler stops it again, it is not a stopped trial.
        self._unmark_stopped(trial.trial_id, run_id)
        self.client.update_run(run_id, status="RUNNING")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        report = read_report(result)
        if report is None:
            return
        run_id = self._run_id(trial)
        # A report carries the epochs since the previous one (and after a restore, the
        # checkpoint's whole history first); the final one, the epochs not yet reported.
        self._log_epochs(trial.trial_id, run_id, report.epochs)
        if isinstance(report, FinalReport):
            self._log_final(trial.trial_id, run_id, report)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune calls this for a trial that returned and for one its scheduler stopped. The run
        # is looked up first: after a restore that is what says whether it has its final result.
        trial_id, run_id = trial.trial_id, self._run_id(trial)
        if trial_id in self._final_logged:
            self._unmark_stopped(trial_id, run_id)
            self.client.set_terminated(run_id, status="FINISHED")
            return
        # No final result: stopped mid-training (ASHA), its metrics are those of its last epoch.
        tags = stopped_tags(self._last_step[trial_id])
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self._stopped.add(trial_id)
        self.client.set_terminated(run_id, status="KILLED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_terminated(self._run_id(trial), status="FAILED")

    def _unmark_stopped(self, trial_id: str, run_id: str) -> None:
        if trial_id not in self._stopped:
            return
        for key in (STOPPED_EARLY_TAG, STOPPED_AT_TAG):
            try:
                self.client.delete_tag(run_id, key)
            except MlflowException as error:  # a tag someone removed by hand already
                if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        self._stopped.discard(trial_id)

    def _log_epochs(self, trial_id: str, run_id: str, epochs: Iterable[Mapping[str, Any]]) -> None:
        """Log the epochs the run lacks yet, in as few ``log_batch`` calls as MLflow allows."""
        now = int(time.time() * 1000)
        last = self._last_step[trial_id]
        metrics = []
        for epoch in epoch_rows(list(epochs)):
            step = epoch["epoch"]
            if step <= last:
                continue
            metrics += [Metric(k, epoch[k], now, step) for k in EPOCH_METRICS if k in epoch]
            last = step
        self.client.log_batch(run_id, metrics=metrics)  # MLflow splits it into allowed sizes
        self._last_step[trial_id] = last

    def _log_final(self, trial_id: str, run_id: str, report: FinalReport) -> None:
        # A trial whose final result was logged but not yet in Tune's snapshot when the driver
        # died runs its last step again after resume: its run keeps the first final metrics.
        if trial_id in self._final_logged:
            return
        self._final_logged.add(trial_id)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, report.epoch) for k, v in report.final_metrics().items()]
        tags = [RunTag(k, v) for k, v in final_tags(report.diverged).items()]
        self.client.log_batch(run_id, metrics=metrics, tags=tags)

    def _run_id(self, trial: Any) -> str:
        """The trial's run: cached, else found by its trial_id tag, else created."""
        trial_id = trial.trial_id
        if trial_id in self._runs:
            return self._runs[trial_id]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.{TRIAL_ID_TAG} = '{trial_id}' and tags.`{PARENT_RUN_TAG}` = "
            f"'{self.parent_run_id}'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            history = self.client.get_metric_history(run_id, "test_acc")
            self._last_step[trial_id] = max((m.step for m in history), default=0)
            if has_final(found[0].data.tags):
                self._final_logged.add(trial_id)
            if found[0].data.tags.get(STOPPED_EARLY_TAG) == "true":
                self._stopped.add(trial_id)
        else:
            run_id = self._create_run(trial)
            self._last_step[trial_id] = 0
        self._runs[trial_id] = run_id
        return run_id

    def _create_run(self, trial: Any) -> str:
        config = trial.config
        run = self.client.create_run(
            self.experiment_id,
            run_name=trial_label(config),
            tags={
                **self.run_tags,
                PARENT_RUN_TAG: self.parent_run_id,
                TRIAL_ID_TAG: trial.trial_id,
            },
        )
        params = [Param(k, str(v)) for k, v in sorted(config.items())]
        self.client.log_batch(run.info.run_id, params=params)
        return run.info.run_id


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
