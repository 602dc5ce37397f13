"""A study's lifecycle without Ray: how a run of its Tuner ends (its Outcome, the parent run's
MLflow status, nothing left open, Ray shut down), and a resume that has nothing to do."""

import json
from dataclasses import replace

import pytest
from fakes import (
    FINAL,
    INTERRUPTED,
    STOPPED,
    FakeCluster,
    FakeTuner,
    Result,
    Results,
    study_with_store,
)
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from study import cluster, folder
from study.cli import main
from study.outcome import Ending, Outcome
from study.study import Study

TRIALS = 4  # 2 explore fractions x 1 peak LR x 2 seeds


def _study(tmp_path, children=0):
    """A study with its parent run RUNNING and ``children`` trial runs RUNNING."""
    overrides = ("sweep.explore_fraction=[0.0, 0.5]", "sweep.seed=[0, 1]")
    cfg, meta = study_with_store(tmp_path / "study", overrides, "RUNNING", children)
    assert cfg.num_trials == TRIALS
    return Study(cfg, tmp_path / "study", meta)


def _statuses(study):
    client = MlflowClient(study.meta.tracking_uri)
    runs = client.search_runs([study.meta.experiment_id])
    parent = client.get_run(study.meta.parent_run_id).info.status
    return parent, sorted(r.info.status for r in runs if r.info.run_id != study.meta.parent_run_id)


@pytest.mark.parametrize(
    ("results", "outcome", "status"),
    [
        ([FINAL] * 2 + [STOPPED] * 2, Outcome(Ending.FINISHED, 4, 2, 2, 0), "FINISHED"),
        ([FINAL] * 3 + [None], Outcome(Ending.TRIALS_FAILED, 4, 3, 0, 1), "FAILED"),
        ([FINAL] * 3 + [INTERRUPTED], Outcome(Ending.STOPPED, 4, 3, 0, 0), "KILLED"),
    ],
)
def test_a_run_ends_in_its_outcome_and_the_parent_runs_status(
    results, outcome, status, tmp_path, capsys
):
    study = _study(tmp_path, children=2)
    grid = Results([Result({}, RuntimeError("x")) if r is None else Result(r) for r in results])
    connected = FakeCluster()

    assert study.run(FakeTuner(grid), connected) == outcome

    assert _statuses(study) == (status, ["KILLED", "KILLED"])  # nothing left RUNNING
    assert not connected.connected
    out = capsys.readouterr().out
    assert f"knee-study: study {outcome.ending.value}: results in {study.path}\n" in out
    assert ("continue it:  knee-study resume" in out) is (outcome.ending is Ending.STOPPED)


def test_ctrl_c_stops_the_study_for_resume(tmp_path, capsys):
    study = _study(tmp_path, children=1)
    connected = FakeCluster()

    outcome = study.run(FakeTuner(error=KeyboardInterrupt()), connected)

    assert outcome == Outcome(Ending.STOPPED)
    assert _statuses(study) == ("KILLED", ["KILLED"])
    assert not connected.connected
    assert f"continue it:  knee-study resume {study.path}" in capsys.readouterr().out


def test_a_tracking_store_lost_mid_study_stops_it_with_one_line(tmp_path, capsys):
    """Tune re-raises the tracker's MLflow error as its own: found in the chain, said once."""
    study = _study(tmp_path)
    try:
        raise MlflowException("the server went away\nand more")
    except MlflowException as error:
        lost = RuntimeError("Tune: a callback failed")
        lost.__context__ = error

    outcome = study.run(FakeTuner(error=lost), FakeCluster())

    assert outcome.ending is Ending.STOPPED
    err = capsys.readouterr().err
    assert "knee-study: MLflow failed: the server went away\n" in err


def test_a_bug_fails_the_parent_run_and_is_raised(tmp_path):
    study = _study(tmp_path)
    connected = FakeCluster()

    with pytest.raises(ZeroDivisionError):
        study.run(FakeTuner(error=ZeroDivisionError()), connected)

    assert _statuses(study)[0] == "FAILED"
    assert not connected.connected


def test_a_failing_report_after_a_study_keeps_its_outcome(tmp_path, capsys, monkeypatch):
    """A bug in the report must not turn a finished study into a traceback: one line, the
    command to retry, and the study's own outcome."""
    import analysis.report

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the report\nand its second line")

    monkeypatch.setattr(analysis.report, "write_report", broken)
    study = _study(tmp_path)
    capsys.readouterr()

    outcome = study.run(FakeTuner(Results([Result(FINAL)] * TRIALS)), FakeCluster())

    assert outcome.ending is Ending.FINISHED
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("knee-study: no report: ")
    assert f"(retry: knee-study report {study.path})" in err


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(address):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(cluster, "connect", refuse)


def test_resume_of_a_finished_study_says_so_and_starts_nothing(tmp_path, capsys, no_ray):
    """Exit status 0: the study is as resume would leave it. Nothing is checked or written
    beyond its store (its Tune state may be gone: a finished study needs none)."""
    path = tmp_path / "study"
    study_with_store(path, status="FINISHED")
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    capsys.readouterr()

    assert main(["resume", str(path)]) == 0

    out = capsys.readouterr().out
    assert out == (
        f"knee-study: study already finished, nothing to resume: results in {path} "
        f"(its report again: knee-study report {path})\n"
    )
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == before


class RayStarted(Exception):
    pass


def test_resume_names_a_store_that_moved_elsewhere_and_records_it(tmp_path, capsys, monkeypatch):
    """The study's own store was moved out of its folder: resume says how to name it, and
    once named with --tracking-uri the study records it and goes on."""
    path = tmp_path / "study"
    _, meta = study_with_store(path)
    (path / "tune").mkdir()  # Tune's state, as far as resume's checks look
    (path / "tune" / "tuner.pkl").write_bytes(b"Tune's pickled Tuner")
    moved = tmp_path / "stores" / "knee.db"
    moved.parent.mkdir()
    (path / "mlflow.db").rename(moved)

    def start_ray(address):
        raise RayStarted

    monkeypatch.setattr(cluster, "connect", start_ray)

    assert main(["resume", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {path / 'mlflow.db'} (a store that moved: " in err
    assert "--tracking-uri URI` names where it is)" in err
    with pytest.raises(RayStarted):
        main(["resume", str(path), "--tracking-uri", f"sqlite:///{moved}"])

    record = json.loads((path / folder.META_FILE).read_text())
    assert (record["tracking_uri"], record["store"]) == (f"sqlite:///{moved}", None)
    assert folder.open_study(path)[1] == replace(meta, tracking_uri=f"sqlite:///{moved}")


def test_an_extension_whose_tuner_cannot_be_built_leaves_the_study_as_it_was(tmp_path, monkeypatch):
    """The study stays finished, its config and study.json unchanged: extend again can work
    (it used to be left RUNNING with a study.json naming a Tune experiment never made)."""
    from study import driver

    path = tmp_path / "study"
    _, meta = study_with_store(path, status="FINISHED")
    files = {name: (path / name).read_bytes() for name in (folder.CONFIG_FILE, folder.META_FILE)}

    def broken(*args, **kwargs):
        raise RuntimeError("no tuner today")

    monkeypatch.setattr(cluster, "connect", lambda address: FakeCluster())
    monkeypatch.setattr(driver, "build_tuner", broken)

    with pytest.raises(RuntimeError, match="no tuner today"):
        main(["extend", str(path), "--set", "sweep.seed=[0, 1]"])

    assert MlflowClient(meta.tracking_uri).get_run(meta.parent_run_id).info.status == "FINISHED"
    assert {name: (path / name).read_bytes() for name in files} == files
