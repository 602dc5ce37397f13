"""`knee-study extend`: a finished 3-seed study grown to 6 seeds runs only the 3 new seeds, under
the same parent run; the first runs are untouched and the report counts every trial. A change
that is not an extension is one line, exit 2, and nothing runs."""

import pytest
from mlflow import MlflowClient

from study.cli import EXIT_BAD_INPUT, EXIT_OK, main
from study.stores import default_tracking_uri
from trainables.results import PARENT_RUN_TAG

pytestmark = pytest.mark.slow

SETS = {
    "name": "grows",
    "train.epochs": 3,
    "sweep.explore_fraction": "[0.0, 0.5]",
    "sweep.peak_lr": "[0.05]",
    "sweep.seed": "[0, 1, 2]",
    "sharpness.steps": 2,
}


def trial_runs(output):
    client = MlflowClient(default_tracking_uri(output))
    experiment = client.get_experiment_by_name("grows")
    found = client.search_runs([experiment.experiment_id], f"tags.`{PARENT_RUN_TAG}` != ''")
    return {run.info.run_id: run for run in found}


@pytest.fixture(scope="module")
def grown(tmp_path_factory, knee_study):
    output = tmp_path_factory.mktemp("extend") / "study"
    first = knee_study("run", "--output", str(output), sets=SETS)
    before = trial_runs(output)
    more = knee_study("extend", str(output), sets={"sweep.seed": "[0, 1, 2, 3, 4, 5]"})
    return output, first, before, more, trial_runs(output)


def test_extend_runs_only_the_new_seeds_under_the_same_parent(grown):
    _output, first, before, more, after = grown
    assert first.returncode == 0, first.stderr[-3000:]
    assert more.returncode == 0, more.stderr[-3000:]
    assert "extending" in more.stdout
    assert "6 new trials (12 in all)" in more.stdout
    assert len(before) == 6
    assert len(after) == 12
    assert len({run.data.tags[PARENT_RUN_TAG] for run in after.values()}) == 1
    for run_id, run in before.items():  # the first trials' runs, untouched
        assert after[run_id].info.end_time == run.info.end_time
        assert after[run_id].data.metrics == run.data.metrics
    seeds = sorted(int(run.data.params["seed"]) for run in after.values())
    assert seeds == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert all(run.info.status == "FINISHED" for run in after.values())


def test_the_report_is_rewritten_over_every_trial(grown):
    output, _, _, more, _ = grown
    assert "report of 12 trials" in more.stdout
    report = (output / "report" / "report.md").read_text()
    assert "12 trials: 12 finished" in report
    assert "(n=6)" in report  # each fraction's mean over its six seeds
    assert "(n=3)" not in report
    # Six seeds cannot rule out a 30% divergence excess: inconclusive, and it says how to grow.
    assert f"`knee-study extend {output} --set 'sweep.seed=[0, 1, 2, 3, 4, 5, 6]'`" in report


def test_what_is_not_an_extension_is_one_line_and_runs_nothing(grown, capsys):
    output, _, _, _, after = grown
    for sets, error in [
        (["model.name=cnn"], "model.name: an extension only adds sweep values"),
        (["sweep.seed=[0, 1]"], "sweep.seed: an extension keeps every value the study ran"),
        (["train.epochs=5"], "train.epochs: an extension only adds sweep values"),
    ]:
        assert main(["extend", str(output), *(a for s in sets for a in ("--set", s))]) == (
            EXIT_BAD_INPUT
        )
        err = capsys.readouterr().err
        assert err.startswith(f"knee-study: error: {error}"), err
        assert err.count("\n") == 1
    assert main(["extend", str(output), "--set", "sweep.seed=[0, 1, 2, 3, 4, 5]"]) == EXIT_OK
    assert "nothing to add" in capsys.readouterr().out
    assert main(["resume", str(output)]) == EXIT_OK  # resume works after extend: finished
    assert trial_runs(output).keys() == after.keys()
