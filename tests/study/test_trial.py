"""The trial side, with Tune's calls stood in for: what a trial reports and checkpoints, how a
restored trial picks up, and that a trial worker imports no MLflow (a worker imports this
module alone)."""

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
import torch
from ray import tune

from study import trial
from study.config import load_config
from trainables.results import FinalReport, read_report

EPOCHS = 3


@pytest.fixture
def fake_tune(monkeypatch, tmp_path):
    """Tune as a trial sees it: reports (and copies of their checkpoints) are recorded;
    ``restore`` names a checkpoint folder to start from."""
    reports, saved = [], iter(range(1000))
    fake = SimpleNamespace(reports=reports, restore=None)

    def report(result, checkpoint=None):
        kept = None
        if checkpoint is not None:
            kept = tmp_path / f"kept-{next(saved)}"
            shutil.copytree(checkpoint.path, kept)
        reports.append((read_report(result), kept))

    def get_checkpoint():
        return None if fake.restore is None else tune.Checkpoint.from_directory(fake.restore)

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_checkpoint", get_checkpoint)
    monkeypatch.setattr(tune, "get_context", lambda: SimpleNamespace(get_trial_id=lambda: "t_1"))
    resources = SimpleNamespace(get_assigned_resources=lambda: {"CPU": 1.0})
    monkeypatch.setattr(ray, "get_runtime_context", lambda: resources)
    return fake


def _config() -> dict:
    cfg = load_config(
        None,
        [f"train.epochs={EPOCHS}", "sharpness.steps=2", "sharpness.batches=1", "sweep.seed=[0]"],
    )
    return {**cfg.trial_base(), **cfg.grid()[0]}


def _epochs(report) -> list[int]:
    return [int(e["epoch"]) for e in report.epochs]


def test_a_trial_reports_every_epoch_once_with_its_checkpoints_then_its_end(fake_tune):
    torch.manual_seed(0)
    trial.run_trial(_config(), checkpoint_every=2)

    (first, at_2), (second, at_3), (last, none) = fake_tune.reports
    assert (_epochs(first), _epochs(second), _epochs(last)) == ([1, 2], [3], [])
    assert isinstance(last, FinalReport)
    assert none is None
    for kept, epoch in ((at_2, 2), (at_3, 3)):
        assert sorted(p.name for p in kept.iterdir()) == [trial.STATE_FILE]
        assert torch.load(kept / trial.STATE_FILE, weights_only=False)["state"]["epoch"] == epoch


def test_a_restored_trial_continues_after_its_checkpoint_and_resends_its_history(fake_tune, capsys):
    trial.run_trial(_config(), checkpoint_every=2)
    fake_tune.restore = fake_tune.reports[0][1]  # the checkpoint after epoch 2
    fake_tune.reports.clear()

    trial.run_trial(_config(), checkpoint_every=2)

    assert "knee-study: trial t_1 continues after epoch 2\n" in capsys.readouterr().out
    (first, _), (last, _) = fake_tune.reports
    assert _epochs(first) == [1, 2, 3]  # the checkpoint's history, then epoch 3
    assert isinstance(last, FinalReport)


def test_a_trial_worker_imports_no_mlflow():
    """~1 s of a worker's start-up (benchmarks/RESULTS.md): a worker imports study.trial."""
    code = "import sys, study.trial; print('mlflow' in sys.modules, 'ray' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout.split() == ["False", "False"]


LOOPS = """
import math


def fine(config, trial):
    for step in range(3):
        trial.report({"val_loss": 1.0 / (step + 1)}, state={"step": step})
    return {"test_loss": 0.25}


def blows_up(config, trial):
    trial.report({"val_loss": 0.5})
    trial.report({"val_loss": math.inf})
    trial.report({"val_loss": 0.1})  # never reached


def no_objective(config, trial):
    trial.report({"train_loss": 0.5})


def returns_a_list(config, trial):
    trial.report({"val_loss": 0.5})
    return [1]


def takes_nothing():
    pass


def stops_early(config, trial):  # its own early stopping, at 2 of 3 epochs
    for _ in range(2):
        trial.report({"val_loss": 0.5})
"""


@pytest.fixture
def loops(tmp_path, monkeypatch):
    (tmp_path / "loops.py").write_text(LOOPS)
    monkeypatch.syspath_prepend(str(tmp_path))


def _loop_config(fit: str) -> dict:
    return {"epochs": 3, "batch_size": 8, "trainable": fit}


def test_a_loops_reports_and_returned_metrics_make_its_final_report(loops):
    sent = []
    final = trial.run_loop(
        _loop_config("loops:fine"), lambda m, wrap: sent.append((m, wrap)), objective="test_loss"
    )

    assert [m for m, _ in sent] == [
        {"epoch": 1, "val_loss": 1.0},
        {"epoch": 2, "val_loss": 0.5},
        {"epoch": 3, "val_loss": 1 / 3},
    ]
    assert sent[1][1]()["state"] == {"step": 1}  # each report's checkpoint, made on demand
    assert final.error is None
    assert not final.diverged
    assert final.metrics["test_loss"] == 0.25
    assert final.metrics["val_loss"] == 1 / 3
    assert set(final.final_metrics()) == {"test_loss", "trial_seconds", "system/peak_memory_mb"}


def test_a_loop_that_blows_up_ends_diverged_with_its_last_finite_report(loops):
    final = trial.run_loop(_loop_config("loops:blows_up"), lambda m, w: None, objective="val_loss")

    assert final.diverged
    assert final.error is None
    assert (final.epoch, final.metrics["val_loss"]) == (1, 0.5)


@pytest.mark.parametrize(
    ("fit", "required", "error"),
    [
        (
            "loops:no_objective",
            (),
            "objective.metric: loops:no_objective never reported val_loss (found train_loss, "
            "system/peak_memory_mb, trial_seconds)",
        ),
        (
            "loops:no_objective",
            ("val_loss",),  # ASHA or Optuna select by it: the first report must have it
            "objective.metric: val_loss not among the metrics loops:no_objective reports "
            "(train_loss)",
        ),
        ("loops:returns_a_list", (), "trainable: loops:returns_a_list returned a list; return a"),
        ("loops:takes_nothing", (), "trainable: loops:takes_nothing() cannot be called with"),
        ("loops:missing", (), "trainable: loops has no 'missing'"),
        (
            "loops:stops_early",
            (),
            "trainable: loops:stops_early returned after 2 of its 3 epochs; a trial trains its "
            "whole budget (its last report at 3) or raises",
        ),
    ],
)
def test_a_loop_that_cannot_work_fails_at_once_saying_why(loops, fit, required, error):
    final = trial.run_loop(_loop_config(fit), lambda m, w: None, None, "val_loss", required)

    assert final.error.startswith(error), final.error
    assert "\n" not in final.error
    assert read_report(final.to_result()).error == final.error  # it reaches the driver
