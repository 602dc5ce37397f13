"""Stand-ins for what a study drives, so its lifecycle is tested without Ray: a connected
cluster, a Tuner and the results Tune hands back."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient

from study import folder
from study.config import StudyConfig, load_config
from study.study_run import set_study_status, start_study_run
from trainables.results import PARENT_RUN_TAG, EpochsReport, FinalReport


class FakeCluster:
    """What :func:`study.cluster.connect` returns, holding ``resources``."""

    def __init__(self, resources: Mapping[str, float] | None = None) -> None:
        self._resources = dict(resources or {"CPU": 2.0})
        self.connected = True

    def resources(self) -> Mapping[str, float]:
        return self._resources

    def shutdown(self) -> None:
        self.connected = False


class Result:
    def __init__(self, metrics: dict, error: Exception | None = None) -> None:
        self.metrics, self.error = metrics, error


class Results(list):
    """A ResultGrid: the results, and how many trials errored."""

    def __init__(self, results: list[Result]) -> None:
        super().__init__(results)
        self.num_errors = sum(r.error is not None for r in results)


_EPOCH = {"epoch": 2, "test_acc": 0.9}
# A trial's last result as Tune hands it back: its final report; or, for a trial the scheduler
# stopped, its last epochs' report marked done; or, for one interrupted, not done.
FINAL = {**FinalReport(_EPOCH, False, ()).to_result(), "done": True}
# A trial that failed at once (a bad plug-in): it returned normally, its final report says why.
FAILED_AT_ONCE = {
    **FinalReport(_EPOCH, False, (), (), "data.dataset: bad").to_result(),
    "done": True,
}
STOPPED = {**EpochsReport((_EPOCH,)).to_result(), "done": True}
INTERRUPTED = EpochsReport((_EPOCH,)).to_result()


class FakeTuner:
    """``fit()`` returns ``results`` or raises ``error``."""

    def __init__(self, results: Results | None = None, error: BaseException | None = None):
        self.results, self.error = results, error

    def fit(self) -> Results:
        if self.error is not None:
            raise self.error
        return self.results


def study_with_store(
    path: Path, overrides: tuple[str, ...] = (), status: str = "KILLED", children: int = 0
) -> tuple[StudyConfig, folder.StudyMeta]:
    """A study folder with its own sqlite store holding its parent run (``status``) and
    ``children`` child runs left RUNNING."""
    cfg = load_config(None, ["sweep.seed=[0]", "sweep.peak_lr=[0.1]", *overrides])
    folder.create(path, cfg)
    uri = f"sqlite:///{path / 'mlflow.db'}"
    experiment_id, parent = start_study_run(uri, cfg.name, {}, path / "mlartifacts")
    client = MlflowClient(uri)
    for _ in range(children):
        client.create_run(experiment_id, tags={PARENT_RUN_TAG: parent})
    if status != "RUNNING":
        set_study_status(uri, parent, status)
    meta = folder.StudyMeta(uri, experiment_id, parent)
    folder.write_meta(path, meta)
    return cfg, meta
