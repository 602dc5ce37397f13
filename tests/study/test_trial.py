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
