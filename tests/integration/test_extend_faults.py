"""`extend` after `resume`, and `resume` after an interrupted `extend`: a study stopped by
Ctrl-C mid-run is resumed, then extended by two seeds, the extension stopped by Ctrl-C while
its trials train, then resumed. In the end every trial has one FINISHED run with each epoch
once, the runs the first study finished are untouched, and the report counts every seed."""

import signal

import pytest
from harness import Study, assert_complete_picture, mlflow_picture, steps, study_args

pytestmark = pytest.mark.slow

EPOCHS = 12
SWEEP = {"explore_fraction": [0.5], "peak_lr": [0.05], "seed": [0, 1]}  # 2 trials, both at once


def _training(output, seeds: set[int]):
    """True once a run of one of ``seeds`` is RUNNING with two epochs logged (so its trial has
    a checkpoint to continue from)."""
    try:
        client, _, children = mlflow_picture(output)
    except Exception:  # the store or study.json not written yet
        return False
    return any(
        run.info.status == "RUNNING"
        and int(run.data.params["seed"]) in seeds
        and len(steps(client, run.info.run_id, "test_acc")) >= 2
        for run in children
    )


def _interrupt(args, output, seeds, log):
    study = Study(args, log)
    try:
        study.wait_for(lambda: _training(output, seeds), 180, f"seeds {seeds} training")
        study.signal_group(signal.SIGINT)
        code = study.wait(120)
    finally:
        study.stop()
    return code, study.output()


def _resume(output, log):
    resumed = Study(["resume", str(output)], log)
    try:
        return resumed.wait(300), resumed.output()
    finally:
        resumed.stop()


def _runs(output):
    _, _, children = mlflow_picture(output)
    return {int(r.data.params["seed"]): (r.info.run_id, r.info.end_time) for r in children}


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extend-faults")
    output = tmp / "study"
    found = {
        "run": _interrupt(study_args(output, "grow", EPOCHS, SWEEP), output, {0, 1}, tmp / "a")
    }
    found["resume"] = _resume(output, tmp / "b")
    found["first runs"] = _runs(output)
    extend = ["extend", str(output), "--set", "sweep.seed=[0, 1, 2, 3]"]
    found["extend"] = _interrupt(extend, output, {2, 3}, tmp / "c")
    found["resume extension"] = _resume(output, tmp / "d")
    return output, found


def test_an_interrupted_study_resumed_then_extended_then_interrupted_resumes_whole(grown):
    output, found = grown
    assert found["run"][0] == 130, found["run"][1][-3000:]
    assert found["resume"][0] == 0, found["resume"][1][-3000:]
    assert found["extend"][0] == 130, found["extend"][1][-3000:]
    assert "continue it:  knee-study resume" in found["extend"][1]
    assert found["resume extension"][0] == 0, found["resume extension"][1][-3000:]
    assert_complete_picture(output, trials=4, epochs=EPOCHS)
    assert "continues after epoch" in found["resume extension"][1]  # from its checkpoint


def test_the_first_runs_are_untouched_and_the_report_counts_every_seed(grown):
    output, found = grown
    after = _runs(output)
    assert sorted(after) == [0, 1, 2, 3]
    for seed, run in found["first runs"].items():
        assert after[seed] == run  # same run, same end time: never run again
    assert "4 trials: 4 finished" in (output / "report" / "report.md").read_text()
