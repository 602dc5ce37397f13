"""`knee-study run configs/lm_quick.yaml`, shrunk to seconds, as a user runs it: the language
model's trials report at their optimizer steps, MLflow's step is that step, each run is tagged
with its corpus's digest, and the report speaks in val_loss."""

from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.stores import default_tracking_uri
from trainables.corpus import load_corpus
from trainables.lm import CORPUS_TAG
from trainables.results import PARENT_RUN_TAG

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).parents[2] / "configs" / "lm_quick.yaml"
SMALL = {
    "name": "lm-e2e",
    "train.steps": 40,
    "train.eval_every": 20,
    "train.warmup_steps": 4,
    "trainable.options": "{layers: 1, heads: 2, width: 32, context: 32, eval_windows: 8}",
    "sweep.explore_fraction": "[0.5]",
    "sweep.peak_lr": "[0.003]",
    "sweep.decay": "[1-sqrt]",
    "sweep.seed": "[0, 1]",
    "sharpness.steps": 2,
}


@pytest.fixture(scope="module")
def lm_study(tmp_path_factory, knee_study):
    output = tmp_path_factory.mktemp("lm") / "study"
    proc = knee_study("run", str(CONFIG), "--output", str(output), sets=SMALL)
    return output, proc


def test_the_language_model_study_runs_and_reports_in_its_loss(lm_study):
    output, proc = lm_study
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (output / "report" / "report.md").read_text()
    assert "val_loss" in report
    assert "accuracy points" not in report


def test_each_trial_reports_at_its_optimizer_steps_with_its_corpus_digest(lm_study):
    output, _ = lm_study
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name("lm-e2e")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{PARENT_RUN_TAG}` != ''")
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["steps"] == "40"
        assert "epochs" not in run.data.params
        assert run.data.tags[CORPUS_TAG] == load_corpus().digest
        for key in ("train_loss", "val_loss", "val_perplexity", "val_acc", "lr"):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == [20, 40], key
        for key in ("test_loss", "test_perplexity", "sharpness", "trial_seconds"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
        for key in ("system/tokens_per_second", "system/peak_memory_mb"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
        assert run.data.metrics["val_loss"] < 5.0  # a byte model starts near ln 256 = 5.5
