"""How Tune's results end a study: finished (ASHA's stopped trials count as done), some failed,
or stopped short (resume it); and the parent run's MLflow status for each."""

import pytest
from fakes import FAILED_AT_ONCE, FINAL, INTERRUPTED, STOPPED, Result, Results

from study.outcome import Ending, Outcome, outcome_of


def _grid(*results):
    return Results([Result({}, RuntimeError("x")) if r is None else Result(r) for r in results])


@pytest.mark.parametrize(
    ("results", "outcome"),
    [
        ([FINAL] * 4, Outcome(Ending.FINISHED, 4, 4, 0, 0)),
        ([FINAL, FINAL, STOPPED, STOPPED], Outcome(Ending.FINISHED, 4, 2, 2, 0)),
        ([FINAL] * 3 + [None], Outcome(Ending.TRIALS_FAILED, 4, 3, 0, 1)),
        ([FINAL] * 3 + [FAILED_AT_ONCE], Outcome(Ending.TRIALS_FAILED, 4, 3, 0, 1)),
        ([FAILED_AT_ONCE, None, FINAL, FINAL], Outcome(Ending.TRIALS_FAILED, 4, 2, 0, 2)),
        ([STOPPED, None, INTERRUPTED, FINAL], Outcome(Ending.TRIALS_FAILED, 4, 1, 1, 1)),
        ([FINAL] * 3 + [INTERRUPTED], Outcome(Ending.STOPPED, 4, 3, 0, 0)),
        ([FINAL] * 3, Outcome(Ending.STOPPED, 3, 3, 0, 0)),  # one trial never started
        ([], Outcome(Ending.STOPPED)),
    ],
)
def test_tunes_results_end_the_study(results, outcome):
    assert outcome_of(_grid(*results), num_trials=4) == outcome


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        (Ending.FINISHED, "FINISHED"),
        (Ending.ALREADY_FINISHED, "FINISHED"),
        (Ending.TRIALS_FAILED, "FAILED"),
        (Ending.STOPPED, "KILLED"),
    ],
)
def test_each_ending_marks_the_parent_run(ending, status):
    assert Outcome(ending).mlflow_status == status
