"""The Tune callback that writes every trial to MLflow: one child run per trial of the study's
parent run, all written from the driver (one writer, so a sqlite store is safe and trial
workers never need MLflow access). The guarantees:

* params in one canonical form (:func:`param_text`), none for a key the trial does not have
  (a baseline has no explore fraction or decay shape);
* exactly one run per trial, however often the trial was retried or the study resumed (a trial's
  run is found by its ``trial_id`` tag before one is created);
* every epoch logged once: a step the run already has is never logged again, and steps a run
  lacks after a restore are filled in from the history the trial sends with its first result;
* terminal status matches the trial: FINISHED (it sent its final result) or FAILED here, and
  KILLED for a trial the scheduler (ASHA) stopped mid-training, tagged ``stopped_early`` and
  ``stopped_at_epoch``; the study closes whatever a stopped study left open as KILLED
  (:func:`study.study_run.close_open_runs`, untagged), and a resumed trial sets it running again.

The tracker travels pickled inside Tune's experiment state. A study resumed where its store is
now (a moved or copied study folder, ``resume --tracking-uri``) restores Tune's state inside
:func:`logging_to`, so the trackers that come back write to that store, not the one they were
pickled with.

Import this module only after :func:`study.ray_env.prepare_ray_env` ran.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from ray import tune

from study.config import trial_label
from trainables.results import (
    CHECKPOINT_TAG,
    ERROR_TAG,
    FINAL_METRICS,
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

_restored_uri: str | None = None  # set by logging_to while Tune's state is unpickled


@contextlib.contextmanager
def logging_to(tracking_uri: str) -> Iterator[None]:
    """Trackers unpickled inside this block (``Tuner.restore`` reads Tune's state at once, in
    the calling thread) write to ``tracking_uri`` instead of the store they were pickled with."""
    global _restored_uri
    _restored_uri = tracking_uri
    try:
        yield
    finally:
        _restored_uri = None


def param_text(value: Any) -> str:
    """A param as MLflow stores it (a string), in the form run names and filters use: a whole
    number has no decimal point (``explore_fraction = '1'``, ``peak_lr = '50'``), any other
    float its shortest exact form (``'0.05'``, ``'1e-08'``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class TrialTracker(tune.Callback):
    """Logs each trial of a Tune experiment to its own child run of the study's parent run."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        run_tags: Mapping[str, str] | None = None,
        trained_on: Any = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.run_tags = dict(run_tags or {})  # on every trial's run, e.g. {"search": "optuna"}
        # study.preflight.TrainedOn: every trial's run gets it as its MLflow dataset input.
        self.trained_on = trained_on
        self._forget()

    # Tune pickles callbacks with its experiment state; clients and caches are rebuilt after.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if _restored_uri is not None:
            self.tracking_uri = _restored_uri
        self._forget()

    def _forget(self) -> None:
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}  # trial_id -> run_id
        self._last_step: dict[str, int] = {}  # trial_id -> last epoch the run has
        self._final_logged: set[str] = set()  # trial_ids whose run has its final metrics
        self._stopped: set[str] = set()  # trial_ids whose run is tagged stopped_early
        self._failed: dict[str, bool] = {}  # trial_id -> its final report said it failed

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
            self._point_at_checkpoint(trial, run_id)
            # Forgotten only once the run says so: a set_terminated that raises sends the trial
            # back to Tune as failed, and its retry must still end FAILED.
            failed = self._failed.get(trial_id, False)
            self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
            self._failed.pop(trial_id, None)
            return
        # No final result: stopped mid-training (ASHA), its metrics are those of its last epoch.
        tags = stopped_tags(self._last_step[trial_id])
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self._stopped.add(trial_id)
        self.client.set_terminated(run_id, status="KILLED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_terminated(self._run_id(trial), status="FAILED")

    def _point_at_checkpoint(self, trial: Any, run_id: str) -> None:
        """Tag the run with where the trial's last checkpoint is (a path, or a URI in shared
        storage): the final weights, for whoever wants them."""
        checkpoint = getattr(trial, "checkpoint", None)
        path = getattr(checkpoint, "path", None)
        if path:
            self.client.set_tag(run_id, CHECKPOINT_TAG, str(path))

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
            metrics += [Metric(k, v, now, step) for k, v in epoch.items() if k != "epoch"]
            last = step
        self.client.log_batch(run_id, metrics=metrics)  # MLflow splits it into allowed sizes
        self._last_step[trial_id] = last

    def _log_final(self, trial_id: str, run_id: str, report: FinalReport) -> None:
        # A trial whose final result was logged but not yet in Tune's snapshot when the driver
        # died runs its last step again after resume: its run keeps the first final metrics.
        if trial_id in self._final_logged:
            return
        self._final_logged.add(trial_id)
        self._failed[trial_id] = report.error is not None
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, report.epoch) for k, v in report.final_metrics().items()]
        said = {**report.tags, **final_tags(report.diverged, report.error)}
        tags = [RunTag(k, v) for k, v in said.items()]
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
            # The last step any per-epoch metric reached is the last one the run has: a loop of
            # one's own may report some metrics only every few steps (once per trial, on resume).
            per_epoch = [k for k in found[0].data.metrics if k not in FINAL_METRICS]
            steps = [m.step for k in per_epoch for m in self.client.get_metric_history(run_id, k)]
            self._last_step[trial_id] = max(steps, default=0)
            if has_final(found[0].data.tags):
                self._final_logged.add(trial_id)
                self._failed[trial_id] = ERROR_TAG in found[0].data.tags
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
        params = [Param(k, param_text(v)) for k, v in sorted(config.items()) if v is not None]
        self.client.log_batch(run.info.run_id, params=params)
        if self.trained_on is not None:
            self._log_dataset(run.info.run_id)
        return run.info.run_id

    def _log_dataset(self, run_id: str) -> None:
        # MLflow's store looks a dataset up by name and digest, then inserts it: two studies
        # creating their first run in one experiment at once can both miss it, and the second
        # insert breaks the unique constraint. The next try finds the row the first one wrote.
        for attempt in range(3):
            try:
                self.client.log_inputs(run_id, datasets=[self._dataset_input()])
                return
            except MlflowException:
                if attempt == 2:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _dataset_input(self) -> DatasetInput:
        found = self.trained_on
        dataset = Dataset(
            name=found.name,
            digest=found.digest[:16],  # MLflow shows a short digest; the tag has it whole
            source_type="local" if "/" in found.source else "code",
            source=json.dumps({"source": found.source, "sha256": found.digest}),
            profile=json.dumps(found.profile),
        )
        return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])
