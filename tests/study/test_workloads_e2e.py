"""The README's "Your own model and data" and "Your own training loop" examples, run as a user
runs them: their files are taken from README.md as they are, written into a folder of their own
and run from there with the installed ``knee-study`` (a local study finds modules in the folder
it starts from). Each study has one trial's worker killed mid-training (a wrapper module the
test adds, named with ``--set``): it is retried from its checkpoint, and MLflow keeps one run
per trial with every epoch once. A loop that never reports the objective fails at once, said in
one line on its run, and is not retried."""

import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from study.stores import default_tracking_uri
from trainables.results import ERROR_TAG, FINAL_METRICS, PARENT_RUN_TAG

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"
EPOCHS = 4
SMALL = {"sweep.explore_fraction": "[0.5]", "sweep.seed": "[0, 1]", "train.epochs": EPOCHS}

# Kills the trial's worker (os._exit: no cleanup, as a lost node or the OOM killer would) the
# first time any trial gets this far; the mark file makes it once per study.
CRASHING = """
import os
from pathlib import Path

import loop
import moons


def _crash_once(mark):
    if not Path(mark).exists():
        Path(mark).touch()
        os._exit(3)


def make_mlp(input_shape, num_classes, mark, after_calls, **options):
    model = moons.make_mlp(input_shape, num_classes, **options)
    calls = [0]

    def count(module, inputs):
        calls[0] += 1
        if calls[0] == after_calls:
            _crash_once(mark)

    model.register_forward_pre_hook(count)
    return model


def fit(config, trial):
    report = trial.report

    def report_then_crash(metrics, state=None):
        report(metrics, state)
        if trial.step == 2:
            _crash_once(trial.options["mark"])

    trial.report = report_then_crash
    return loop.fit(config, trial)
"""


def readme_file(name: str) -> str:
    """The README's code block whose first line is the comment ``# NAME`` (``# NAME: ...``)."""
    blocks = re.findall(
        r"```(?:python|yaml)\n(# (\S+?)(?::[^\n]*)?\n.*?)```", README.read_text(), re.S
    )
    found = [text for text, title in blocks if title == name]
    assert len(found) == 1, f"README.md has {len(found)} blocks titled {name}"
    return found[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A user's folder with the README's four files and the crashing wrappers."""
    here = tmp_path_factory.mktemp("own-workload")
    for name in ("moons.py", "moons.yaml", "loop.py", "loop.yaml"):
        (here / name).write_text(readme_file(name))
    (here / "crashing.py").write_text(CRASHING)
    return here


def run_study(knee_study, folder: Path, config: str, name: str, **sets):
    output = folder / name
    proc = knee_study(
        "run", config, "--output", str(output), sets={**SMALL, "name": name, **sets}, cwd=folder
    )
    return output, proc


@pytest.fixture(scope="module")
def moons_study(knee_study, folder):
    # 2160 training examples (240 held out for validation) in batches of 64: 34 steps, then a
    # validation and a test batch: 36 forward calls an epoch. Call 80 is in epoch 3.
    mark = folder / "moons-crashed"
    sets = {
        "model.name": "crashing:make_mlp",
        "model.options": f"{{width: 32, depth: 2, mark: '{mark}', after_calls: 80}}",
        "tune.max_failures": 2,
    }
    output, proc = run_study(knee_study, folder, "moons.yaml", "moons-e2e", **sets)
    return output, proc, mark


@pytest.fixture(scope="module")
def loop_study(knee_study, folder):
    mark = folder / "loop-crashed"
    sets = {"trainable.fit": "crashing:fit", "trainable.options": f"{{width: 16, mark: '{mark}'}}"}
    output, proc = run_study(knee_study, folder, "loop.yaml", "loop-e2e", **sets)
    return output, proc, mark


def children(output: Path, name: str):
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{PARENT_RUN_TAG}` != ''")
    return client, runs


def assert_every_epoch_once(client, runs, per_epoch: list[str]) -> None:
    assert len(runs) == 2  # one run per trial, however often it was tried
    for run in runs:
        assert run.info.status == "FINISHED", run.data.tags
        for key in per_epoch:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, EPOCHS + 1)), (run.info.run_name, key)
        for key in ("sharpness", "trial_seconds"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, key


def test_own_model_and_data_study_finishes_after_a_killed_trial_is_retried(moons_study):
    _, proc, mark = moons_study
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert mark.exists(), "no trial was killed"
    # Retried from its last checkpoint (after epoch 2), not from scratch.
    assert re.search(r"knee-study: trial \S+ continues after epoch 2", proc.stdout), proc.stdout[
        -3000:
    ]


def test_own_model_and_data_runs_have_every_epoch_once_and_their_options(moons_study):
    output, _, _ = moons_study
    client, runs = children(output, "moons-e2e")
    metrics = ["train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr"]
    assert_every_epoch_once(client, runs, metrics)
    for run in runs:
        params = run.data.params
        assert params["dataset"] == "moons:load_moons"
        assert (params["data.n_samples"], params["data.noise"]) == ("3000", "0.25")
        assert (params["model"], params["model.width"], params["model.depth"]) == (
            "crashing:make_mlp",
            "32",
            "2",
        )
        assert params["val_fraction"] == "0.1"
        # Two moons are easy: a few epochs separate them far better than chance.
        assert run.data.metrics["test_acc"] > 0.75
        assert run.data.metrics["system/images_per_second"] > 1000


def test_own_training_loop_study_finishes_after_a_killed_trial_is_retried(loop_study):
    output, proc, mark = loop_study
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert mark.exists(), "no trial was killed"
    assert re.search(r"knee-study: trial \S+ continues after epoch 2", proc.stdout)
    assert (output / "report" / "report.md").is_file()
    assert "test_loss" in (output / "report" / "report.md").read_text()


def test_own_training_loop_runs_have_every_epoch_once_and_the_loops_final_metrics(loop_study):
    output, _, _ = loop_study
    client, runs = children(output, "loop-e2e")
    assert_every_epoch_once(client, runs, ["train_loss", "val_loss", "val_acc", "lr"])
    for run in runs:
        assert run.data.params["trainable"] == "crashing:fit"
        assert run.data.params["trainable.width"] == "16"
        assert "dataset" not in run.data.params  # the loop owns its data
        # Returned by fit: logged once, at the end.
        for key in ("test_loss", "test_acc"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 1
        assert run.data.metrics["test_acc"] > 0.6
        assert run.data.metrics["system/peak_memory_mb"] > 50  # a Python process with torch
        assert (Path(run.data.tags["checkpoint"]) / "state.pt").is_file()
        assert (
            not set(FINAL_METRICS)
            - {"hessian_top_eigenvalue", "hessian_trace"}
            - set(run.data.metrics)
        )


def test_a_loop_without_the_objective_fails_at_once_in_one_line(knee_study, folder):
    sets = {"sweep.seed": "[0]", "train.epochs": 2, "objective.metric": "val_perplexity"}
    output, proc = run_study(knee_study, folder, "loop.yaml", "loop-no-objective", **sets)

    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 trial(s) failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    (run,) = children(output, "loop-no-objective")[1]
    assert run.info.status == "FAILED"
    assert run.data.tags[ERROR_TAG] == (
        "objective.metric: loop:fit never reported val_perplexity (found train_loss, val_loss, "
        "val_acc, lr, sharpness, test_loss, test_acc, system/peak_memory_mb, trial_seconds)"
    )
