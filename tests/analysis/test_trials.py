"""analysis/trials.py: how each trial ended, read from the status and flags load_runs gives
it; which trials a mean may use; which columns split trials into separate experiments."""

import numpy as np
import pandas as pd
import pytest
from factories import combined, runs_frame, sweep

from analysis.trials import (
    KNOWN_CONDITIONS,
    OUTCOMES,
    conditions,
    counts,
    knee_trials,
    metric_outcome,
    outcome,
    usable,
    with_outcome,
)

# (MLflow status, diverged, stopped) -> the ending: the diverged flag decides first (a diverged
# trial's run ends FINISHED), then the scheduler's stop, then whether it finished its budget.
ENDINGS = [
    ("FINISHED", False, False, "finished"),
    ("FINISHED", True, False, "diverged"),
    ("FAILED", True, False, "diverged"),
    ("KILLED", False, True, "stopped"),  # ASHA stopped it: KILLED and tagged stopped_early
    ("KILLED", False, False, "failed"),  # killed some other way: the study was interrupted
    ("FAILED", False, False, "failed"),
    ("RUNNING", False, False, "failed"),
]


def ended(*rows: tuple) -> pd.DataFrame:
    return runs_frame(
        {
            "explore_fraction": 0.5,
            "peak_lr": 0.1,
            "seed": seed,
            "status": status,
            "diverged": diverged,
            "stopped": stopped,
            "test_acc": 0.9,
        }
        for seed, (status, diverged, stopped, *_) in enumerate(rows)
    )


@pytest.mark.parametrize(("status", "diverged", "stopped", "ending"), ENDINGS)
def test_each_ending_from_its_status_and_flags(status, diverged, stopped, ending):
    runs = ended((status, diverged, stopped))

    assert outcome(runs).tolist() == [ending]
    assert usable(runs, "test_acc").tolist() == [ending == "finished"]


def test_counts_name_every_ending_and_a_frame_without_the_stopped_column_has_none():
    runs = ended(*ENDINGS)

    assert counts(runs) == {"finished": 1, "diverged": 2, "stopped": 1, "failed": 3}
    assert set(counts(runs)) == set(OUTCOMES)
    assert outcome(runs.drop(columns="stopped")).tolist() == [
        "finished",
        "diverged",
        "diverged",
        "failed",  # KILLED without the stopped column: nothing says the scheduler stopped it
        "failed",
        "failed",
        "failed",
    ]


def test_an_outcome_column_is_read_not_worked_out_again():
    runs = with_outcome(ended(("FINISHED", False, False)))
    runs["status"] = "FAILED"  # changed after: the column stands

    assert outcome(runs).tolist() == ["finished"]


def test_a_finished_trial_without_a_finite_metric_has_no_result():
    """Infinite: it blew up after all (diverged). NaN or no such column: the result is unknown
    (failed). Trials that did not finish keep their own ending."""
    runs = ended(*[("FINISHED", False, False)] * 3, ("FAILED", False, False))
    runs["test_acc"] = [0.9, np.inf, np.nan, np.inf]

    assert metric_outcome(runs, "test_acc").tolist() == [
        "finished",
        "diverged",
        "failed",
        "failed",
    ]
    assert usable(runs, "test_acc").tolist() == [True, False, False, False]
    assert metric_outcome(runs, "sharpness").tolist() == ["failed"] * 4
    assert not usable(runs, "sharpness").any()


def test_knee_trials_leave_the_baselines_out():
    runs = runs_frame(
        [
            {"schedule": "knee", "explore_fraction": 0.5, "peak_lr": 0.1, "seed": 0},
            {"schedule": "cosine", "peak_lr": 0.1, "seed": 0},
        ]
    )

    assert knee_trials(runs)["schedule"].tolist() == ["knee"]
    assert len(knee_trials(runs.drop(columns="schedule"))) == 2  # no column: all of them


def test_conditions_are_peak_lr_then_every_other_param_that_varies():
    runs = sweep(lambda f, lr, s: 0.98, peak_lrs=[0.1]).assign(
        epochs=lambda r: np.where(r["seed"] < 5, 10, 20), decay="linear", model="mlp"
    )
    runs.attrs["params"] = [*runs.attrs["params"], "decay", "epochs", "model"]

    # decay and model never vary here; seed, explore fraction and schedule never split.
    assert conditions(runs) == ["peak_lr", "epochs"]
    assert conditions(runs.assign(schedule="cosine")) == ["peak_lr", "epochs"]


def test_conditions_without_load_runs_param_list():
    """A frame read back from runs.csv has no attrs: budgets are still kept apart."""
    runs = combined(
        sweep(lambda f, lr, s: 0.98, peak_lrs=[0.1], epochs=10),
        sweep(lambda f, lr, s: 0.97, peak_lrs=[0.1], epochs=20),
    )
    runs.attrs = {}

    assert conditions(runs) == ["peak_lr", "epochs"]
    assert "epochs" in KNOWN_CONDITIONS
