"""A study from start to end: its folder, its MLflow runs and the Ray it runs on.

:meth:`Study.create` checks everything a new study needs and makes nothing; :meth:`Study.fit`
makes the folder and the parent run, runs every trial and ends with the study's report.
:meth:`Study.open` reads a study folder wherever it is now; :meth:`Study.resume` continues it,
:meth:`Study.report` writes its report again. Each run ends in an
:class:`study.outcome.Outcome`, which the CLI turns into an exit status. Input a person can fix
raises :class:`study.errors.BadInput` before anything is started or written.

Ray is imported only once :func:`study.cluster.connect` has set its environment: the modules
that import it (:mod:`study.driver`, :mod:`study.tracker`) are imported after that.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from study import cluster, folder, reporting
from study.checkpoints import check_resumable
from study.config import StudyConfig
from study.errors import one_line
from study.outcome import Ending, Outcome, outcome_of
from study.storage import DEFAULT_NAME, experiment_path, resolve_storage
from study.stores import (
    absolute_uri,
    browse_hint,
    check_tracking_uri,
    default_tracking_uri,
    is_local_store,
    store_in,
)

ARTIFACTS_DIR = "mlartifacts"  # the embedded store's artifacts, in the study folder
_MOVED = " (a store that moved: `knee-study resume DIR --tracking-uri URI` names where it is)"


class Study:
    """One study folder and the runs of its MLflow store. ``meta`` of a study :meth:`create`
    returned has no MLflow ids yet: :meth:`fit` makes them."""

    def __init__(
        self, cfg: StudyConfig, path: Path, meta: folder.StudyMeta, address: str | None = None
    ) -> None:
        self.cfg, self.path, self.meta = cfg, Path(path).resolve(), meta
        self.address = address if address is not None else meta.address
        self.trained_on = None  # what create() found the trials train on: each run's input

    @classmethod
    def create(
        cls,
        cfg: StudyConfig,
        output: str | Path | None = None,
        *,
        tracking_uri: str | None = None,
        address: str | None = None,
        storage: str | None = None,
    ) -> Study:
        """A new study in ``output`` (default ``knee-runs/NAME-TIMESTAMP``), every input checked
        as :meth:`fit` will use it: ``storage``, ``address`` (something must answer there),
        ``tracking_uri`` (a server must answer), the folder (it must hold no study), and the
        workload (its modules import, its data loads, its model runs a batch: see
        :mod:`study.preflight`)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(output or f"knee-runs/{cfg.folder_name}-{stamp}").resolve()
        storage_path = resolve_storage(storage) if storage else None
        address = cluster.address_of(address)
        cluster.check_address(address)
        cluster.check_autoscaling(cfg.resources.autoscaling, address)
        # Tune's folder is named after the study's alone wherever it may be shared: in shared
        # storage, and on a cluster other drivers join (Tune stages each driver's state under
        # the Ray session's artifacts/<second>/<name>: two studies started in one second there
        # would overwrite each other's). A local study's Ray is its own: there it is tune/.
        shared = storage_path is not None or not cluster.own_ray(address)
        tune_name = f"{cfg.folder_name}-{stamp}-{uuid.uuid4().hex[:6]}" if shared else DEFAULT_NAME
        uri = absolute_uri(tracking_uri or default_tracking_uri(path))
        check_tracking_uri(uri)
        folder.check_new(path)
        from study.preflight import check_workload  # torch: once the cheap checks passed

        trained_on = check_workload(cfg)
        meta = folder.StudyMeta(uri, "", "", address, storage_path, tune_name)
        study = cls(cfg, path, meta)
        study.trained_on = trained_on
        return study

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        tracking_uri: str | None = None,
        address: str | None = None,
        check_files: bool = True,
    ) -> Study:
        """The study in folder ``path``, wherever it was moved or copied to: its own store is the
        one inside it. ``tracking_uri``: where its store is now, when that moved elsewhere
        (recorded once the study resumes); ``address``: the cluster to join instead of the
        recorded one. ``check_files``: as in :func:`study.folder.open_study`."""
        cfg, meta = folder.open_study(Path(path), check_files=check_files)
        if tracking_uri:
            meta = replace(meta, tracking_uri=absolute_uri(tracking_uri))
        return cls(cfg, Path(path), meta, cluster.address_of(address, meta.address))

    def fit(self) -> Outcome:
        """Run the new study: Ray, then the folder and its parent run, then every trial."""
        connected = cluster.connect(self.address)
        plan = self._plan(connected)
        try:
            tuner = self._set_up(plan)
        except BaseException:
            connected.shutdown()
            raise
        at_once = f"{plan.concurrent_trials} at a time"
        if self.cfg.resources.autoscaling:
            at_once = f"up to {at_once} as the cluster grows"
        trials = f"{self.cfg.num_trials} trial{'s' * (self.cfg.num_trials != 1)}"
        print(f"knee-study: {trials}, {at_once} -> {self.path}")
        return self.run(tuner, connected)

    def _set_up(self, plan: Any) -> Any:
        """The folder, the parent run, study.json and the Tuner. Should any of it fail, nothing
        has run: no half-made study is left that `run` would refuse and `resume` could not
        continue, and no parent run is left RUNNING."""
        from study import driver, study_run

        cfg, uri = self.cfg, self.meta.tracking_uri
        folder.create(self.path, cfg)
        with folder.undone_on_error(self.path):
            params = {**cfg.trial_base(), **{f"sweep.{k}": v for k, v in cfg.swept().items()}}
            artifact_root = self.path / ARTIFACTS_DIR if is_local_store(uri) else None
            experiment_id, parent = study_run.start_study_run(uri, cfg.name, params, artifact_root)
            with study_run.failed_on_error(uri, parent):
                self.meta = replace(self.meta, experiment_id=experiment_id, parent_run_id=parent)
                folder.write_meta(self.path, self.meta)
                storage, name = self.meta.storage, self.meta.tune_name
                return driver.build_tuner(cfg, plan, self.path, self._tracker(), storage, name)

    def _tracker(self) -> Any:
        """The Tune callback that logs this study's trials to its parent run (Ray imported)."""
        from study import study_run
        from study.tracker import TrialTracker

        meta, cfg = self.meta, self.cfg
        tags = {"search": cfg.tune.search, **study_run.source_tags()}
        return TrialTracker(
            meta.tracking_uri,
            meta.experiment_id,
            meta.parent_run_id,
            run_tags=tags,
            trained_on=self.trained_on,
        )

    def resume(self) -> Outcome:
        """Continue a study whose driver stopped; a finished study is left as it is."""
        from study import study_run

        check_tracking_uri(self.meta.tracking_uri, must_exist=True, missing=_MOVED)
        if study_run.study_status(self.meta.tracking_uri, self.meta.parent_run_id) == "FINISHED":
            print(
                f"knee-study: study already finished, nothing to resume: results in {self.path} "
                f"(its report again: knee-study report {self.path})"
            )
            return Outcome(Ending.ALREADY_FINISHED)
        tune_path = experiment_path(self.path, self.meta.storage, self.meta.tune_name)
        check_resumable(tune_path)
        cluster.check_address(self.address)
        cluster.check_autoscaling(self.cfg.resources.autoscaling, self.address)
        self._settle()
        connected = cluster.connect(self.address)
        plan = self._plan(connected, resumed=True)
        from study import driver

        try:
            study_run.set_study_status(self.meta.tracking_uri, self.meta.parent_run_id, "RUNNING")
            print(f"knee-study: resuming {self.path}")
            tuner = driver.restore_tuner(self.cfg, plan, tune_path, self.meta.tracking_uri)
        except BaseException:
            connected.shutdown()
            raise
        return self.run(tuner, connected)

    def extend(self, overrides: list[str]) -> Outcome:
        """Grow a finished grid study by the sweep values ``overrides`` add, running only the
        new points, under the same parent run and into the same experiment, then rewrite its
        report over all of them (:mod:`study.extension`). A change that is not an extension, or
        a study that has not finished (resume it first), is :class:`BadInput`."""
        from study import extension, study_run
        from study.preflight import check_workload

        meta = self.meta
        grown = extension.extended(self.cfg, overrides, str(self.path / folder.CONFIG_FILE))
        points = extension.new_points(self.cfg, grown)
        check_tracking_uri(meta.tracking_uri, must_exist=True, missing=_MOVED)
        status = study_run.study_status(meta.tracking_uri, meta.parent_run_id)
        if status != "FINISHED":
            raise extension.ExtensionError(
                f"extend: the study has not finished ({status}): knee-study resume {self.path} "
                "first"
            )
        if not points:
            print("knee-study: every point of that grid has run already: nothing to add")
            return Outcome(Ending.ALREADY_FINISHED)
        trained_on = check_workload(grown)
        cluster.check_address(self.address)
        self._settle()
        connected = cluster.connect(self.address)
        from study import driver  # Ray: imported once connect() has set its environment

        self.cfg, old_cfg = grown, self.cfg
        self.trained_on = trained_on
        try:
            plan = self._plan(connected)
            tune_name = _next_tune_name(meta.tune_name)
            tuner = driver.build_tuner(
                grown, plan, self.path, self._tracker(), meta.storage, tune_name, points
            )
            # The study changes only once its extension can run: a tuner that cannot be built
            # leaves it finished, its config and study.json as they were (extend again works).
            study_run.set_study_status(meta.tracking_uri, meta.parent_run_id, "RUNNING")
            folder.write_config(self.path, grown)
            self.meta = replace(meta, tune_name=tune_name, tune_trials=len(points))
            folder.write_meta(self.path, self.meta)
        except BaseException:
            self.cfg, self.meta = old_cfg, meta
            connected.shutdown()
            raise
        grew = f"{len(points)} new trial{'s' * (len(points) != 1)}"
        print(f"knee-study: extending {self.path}: {grew} ({grown.num_trials} in all)")
        return self.run(tuner, connected)

    def report(
        self,
        out: str | Path | None = None,
        experiment: str | None = None,
        tracking_uri: str | None = None,
        parent_run: str | None = None,
        fraction: float = 0.5,
        margin: float | None = None,
        metric: str | None = None,
        mode: str | None = None,
    ) -> Path:
        """Write a report of this study's runs (or, named otherwise, of other runs in its store
        or another); returns its folder. The study's own report (into ``STUDY/report``) also
        goes onto its parent run; a report of other runs never lands over it, nor on its run.
        ``margin``, ``metric`` and ``mode`` replace the study's objective's."""
        experiment = experiment or self.cfg.name
        uri = absolute_uri(tracking_uri) if tracking_uri else self.meta.tracking_uri
        own_dir = None  # the study's own report folder, when these are the study's runs
        if experiment == self.cfg.name and uri == self.meta.tracking_uri:
            parent_run = parent_run or self.meta.parent_run_id  # this study's runs only
            if parent_run == self.meta.parent_run_id:
                own_dir = self.path / folder.REPORT_DIR
        out = Path(out or own_dir or f"report-{experiment}")
        attached = own_dir is not None and out.resolve() == own_dir.resolve()
        if attached:  # its report's copy goes into this folder's store, never an original's
            check_tracking_uri(uri, must_exist=True)
            self._settle()
        swept = reporting.study_grid(self.cfg) if own_dir is not None else None
        rules = reporting.policy(self.cfg.objective, fraction, margin, metric, mode)
        hint = reporting.extend_hint(self.cfg, self.path) if own_dir is not None else None
        verdict = reporting.write(experiment, uri, parent_run, out, rules, swept, hint)
        if attached:  # the study's own report, rewritten: its MLflow copy follows
            reporting.attach(uri, parent_run, out, verdict)
        return out

    def run(self, tuner: Any, connected: cluster.Cluster) -> Outcome:
        """Run a built or restored Tuner to its end on ``connected``, then close what it left
        open in MLflow, say how it ended and write the study's report (unless it stopped).

        :meth:`fit` and :meth:`resume` call it; anything with Tuner's ``fit()`` will do.
        """
        from mlflow.exceptions import MlflowException

        from study.study_run import RUNS_VIEW, close_open_runs, save_runs_view, set_study_status

        outcome, tracking_lost = None, None
        trials = self.meta.tune_trials or self.cfg.num_trials  # an extension's: its new points
        try:
            outcome = outcome_of(tuner.fit(), trials)
        except KeyboardInterrupt:
            outcome = Outcome(Ending.STOPPED)
        except Exception as error:
            # The tracker could not log (after MLflow's own retries): Tune stops with its state
            # saved, and resume logs every epoch the runs lack from the trials' checkpoints.
            tracking_lost = _cause(error, MlflowException)
            if tracking_lost is None:
                raise
            outcome = Outcome(Ending.STOPPED)
        finally:
            status = "FAILED" if outcome is None else outcome.mlflow_status
            # Whatever happened, nothing is left RUNNING in MLflow, if MLflow still answers; if
            # not, runs stay RUNNING until resume, as after a driver crash.
            meta, view = self.meta, None
            with contextlib.suppress(MlflowException):
                close_open_runs(meta.tracking_uri, meta.experiment_id, meta.parent_run_id, "KILLED")
                set_study_status(meta.tracking_uri, meta.parent_run_id, status)
                save_runs_view(meta.tracking_uri, meta.experiment_id, self.cfg.objective.metric)
                view = RUNS_VIEW  # the link may open it: the store has it
            connected.shutdown()
        if tracking_lost is not None:
            lost = one_line(tracking_lost, expected=True)
            print(f"knee-study: MLflow failed: {lost}", file=sys.stderr)
        self._say(outcome, view)
        if outcome.ending is not Ending.STOPPED:
            reporting.after_study(self.cfg, self.meta, self.path)
        return outcome

    def _say(self, outcome: Outcome, view: str | None = None) -> None:
        meta = self.meta
        print(f"knee-study: study {outcome.ending.value}: results in {self.path}")
        print(f"  MLflow store: {meta.tracking_uri}")
        print(f"  browse it:    {browse_hint(meta.tracking_uri, meta.experiment_id, view)}")
        if outcome.ending is Ending.TRIALS_FAILED:
            tune_path = experiment_path(self.path, meta.storage, meta.tune_name)
            print(f"  {outcome.failed} trial(s) failed; their errors are under {tune_path}")
        if outcome.ending is Ending.STOPPED:
            print(f"  continue it:  knee-study resume {self.path}")

    def _plan(self, connected: cluster.Cluster, resumed: bool = False) -> Any:
        """The resource plan; PlanError (Ray shut down) when the cluster cannot run the study."""
        from study import driver

        try:
            return driver.plan_resources(self.cfg, connected.resources())
        except driver.PlanError as error:
            connected.shutdown()
            if not resumed:
                raise
            # resume takes no --set: its settings are the study's own file
            where = self.path / folder.CONFIG_FILE
            raise driver.PlanError(f"{error}; a resumed study's settings are in {where}") from None

    def _settle(self) -> None:
        """Make the folder's records name where the study is now, before its store is written:
        its own store's artifact paths (a copy must not write into the original's files), and
        study.json (a store named with ``resume --tracking-uri``)."""
        from study import study_run

        meta = self.meta
        if store_in(self.path, meta.tracking_uri) is not None:
            study_run.rehome_artifacts(
                meta.tracking_uri, meta.experiment_id, self.path / ARTIFACTS_DIR
            )
        folder.write_meta(self.path, meta)


def _next_tune_name(name: str) -> str:
    """The Tune experiment of a study's next extension: ``tune`` -> ``tune-extend-1`` -> ..."""
    base, _, number = name.partition("-extend-")
    return f"{base}-extend-{int(number or 0) + 1}"


def _cause(error: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The ``kind`` error in ``error``'s chain: Tune re-raises a callback's error as a TuneError
    raised while handling it."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    return error
