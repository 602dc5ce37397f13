"""`knee-study extend` on a study's own sqlite store, the way it can go: a study stopped by
Ctrl-C mid-run is resumed, then extended by two seeds, the extension stopped by Ctrl-C while
its trials train, then resumed. In the end every trial has one FINISHED run with each epoch
once, the runs the first study finished are untouched, and the report counts every seed and
says how to grow the study further. A change that is not an extension is one line, exit 2,
and runs nothing. (tests/integration/test_mlflow_server_study.py extends a study on a server.)"""

import signal

import pytest
from harness import Study, assert_complete_picture, mlflow_picture, steps, study_args

from study.cli import EXIT_BAD_INPUT, EXIT_OK, main

pytestmark = pytest.mark.slow

EPOCHS = 12
SWEEP = {"explore_fraction": [0.5], "peak_lr": [0.05], "seed": [0, 1]}  # 2 trials, both at once


def _training(output, seeds: set[int]):
    """True once a run of one of ``seeds`` is RUNNING with two epochs logged (so its trial has
    a checkpoint to continue from). A run just created has no params yet: MLflow creates a run
    and logs its params in two calls, and this poll can fall between them."""
    try:
        client, _, children = mlflow_picture(output)
    except Exception:  # the store or study.json not written yet
        return False
    return any(
        run.info.status == "RUNNING"
        and int(run.data.params.get("seed", -1)) in seeds
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


def test_the_extension_says_what_it_runs_and_the_report_how_to_grow_further(grown):
    output, found = grown
    assert "extending" in found["extend"][1]
    assert "2 new trials (4 in all)" in found["extend"][1]
    report = (output / "report" / "report.md").read_text()
    assert "(n=4)" in report  # the mean at 50% over its four seeds
    # Four seeds cannot rule out a 30% divergence excess: inconclusive, and it says how to grow.
    assert f"`knee-study extend {output} --set 'sweep.seed=[0, 1, 2, 3, 4, 5, 6]'`" in report


def test_what_is_not_an_extension_is_one_line_and_runs_nothing(grown, capsys):
    output, _ = grown
    before = _runs(output)
    for sets, error in [
        (["model.name=cnn"], "model.name: an extension only adds sweep values"),
        (["sweep.seed=[0, 1]"], "sweep.seed: an extension keeps every value the study ran"),
        (["train.epochs=5"], "train.epochs: an extension only adds sweep values"),
    ]:
        code = main(["extend", str(output), *(a for s in sets for a in ("--set", s))])
        assert code == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith(f"knee-study: error: {error}"), err
        assert err.count("\n") == 1
    assert main(["extend", str(output), "--set", "sweep.seed=[0, 1, 2, 3]"]) == EXIT_OK
    assert "nothing to add" in capsys.readouterr().out
    assert main(["resume", str(output)]) == EXIT_OK  # a finished extension: nothing to do
    assert _runs(output) == before
