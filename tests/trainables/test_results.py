"""trainables/results.py: a trial's two reports survive the trip through a Tune result, and the
MLflow tags the tracker writes read back as the ending they record.

The tag names and values are spelled out here as literals: they are what a user filters runs
by in MLflow (``tags.diverged = 'true'``), a format, not an implementation detail."""

import math

import pytest

from trainables.results import (
    EPOCH_METRICS,
    EpochsReport,
    FinalReport,
    RunOutcome,
    epoch_rows,
    final_tags,
    has_final,
    is_final,
    read_report,
    stopped_tags,
)

EPOCH_6 = {"epoch": 6, "train_loss": 0.30, "train_acc": 0.91, "test_loss": 0.35, "test_acc": 0.90}
EPOCH_7 = {"epoch": 7, "train_loss": 0.25, "train_acc": 0.93, "test_loss": 0.33, "test_acc": 0.92}
# What Tune adds to every result a trial reports.
TUNE_KEYS = {"done": False, "training_iteration": 2, "timestamp": 1.7e9, "config": {"seed": 0}}


def test_an_epochs_report_puts_its_last_epoch_at_the_top_and_reads_back_whole():
    report = EpochsReport((EPOCH_6, EPOCH_7))

    result = report.to_result()

    # ASHA and Tune's table read the top level: there, the newest epoch's metrics.
    assert {k: result[k] for k in EPOCH_7} == EPOCH_7
    assert read_report(result) == report
    assert read_report(result | TUNE_KEYS) == report  # Tune's own keys are no part of it
    assert not is_final(result)


def test_a_final_report_reads_back_with_its_metrics_ending_and_unreported_epochs():
    metrics = {**EPOCH_7, "sharpness": 3.2, "trial_seconds": 41.5, "hessian_trace": math.nan}
    report = FinalReport(metrics, diverged=False, epochs=(EPOCH_6, EPOCH_7))

    result = report.to_result()
    back = read_report(result | TUNE_KEYS)

    assert result["diverged"] is False  # at the top level, where the tracker reads it
    assert read_report(result) == report
    assert is_final(result)
    assert is_final(result | TUNE_KEYS)
    assert isinstance(back, FinalReport)
    assert (back.diverged, back.epochs, back.epoch) == (False, (EPOCH_6, EPOCH_7), 7)
    # The final metrics a run gets: sharpness and compute time; NaN curvature is left out, and
    # neither the epoch's metrics nor Tune's keys are final metrics.
    assert back.final_metrics() == {"sharpness": 3.2, "trial_seconds": 41.5}


def test_a_run_that_diverged_in_its_first_epoch_ended_at_epoch_0():
    report = FinalReport({"trial_seconds": 0.4}, diverged=True)

    back = read_report(report.to_result())

    assert (back.diverged, back.epoch, back.epochs) == (True, 0, ())
    assert back.final_metrics() == {"trial_seconds": 0.4}


@pytest.mark.parametrize("result", [None, {}, TUNE_KEYS, {"test_acc": 0.9}])
def test_a_result_without_a_report_is_none_and_not_final(result):
    assert not is_final(result)
    if result is not None:
        assert read_report(result) is None


def test_epoch_rows_are_oldest_first_with_the_epoch_metrics_only():
    epochs = [
        {"epoch": 2.0, "test_acc": 0.5, "pid": 1234},  # Tune bookkeeping that slipped in
        {"epoch": 1, "lr": 0.1, "train_loss": 2},
    ]

    rows = epoch_rows(epochs)

    assert rows == [{"epoch": 1, "lr": 0.1, "train_loss": 2.0}, {"epoch": 2, "test_acc": 0.5}]
    assert [type(r["epoch"]) for r in rows] == [int, int]
    assert set(rows[0]) - {"epoch"} <= set(EPOCH_METRICS)


def test_the_tags_the_tracker_writes():
    assert final_tags(True) == {"diverged": "true"}
    assert final_tags(False) == {"diverged": "false"}
    assert stopped_tags(24) == {"stopped_early": "true", "stopped_at_epoch": "24"}
    assert has_final(final_tags(False))
    assert not has_final(stopped_tags(24))
    assert not has_final({})


@pytest.mark.parametrize(
    ("tags", "metrics", "diverged", "stopped", "epoch"),
    [
        (final_tags(False), {}, False, False, math.nan),  # finished
        (final_tags(True), {}, True, False, math.nan),
        ({**final_tags(False), **stopped_tags(24)}, {}, False, True, 24.0),  # ASHA stopped it
        (stopped_tags(4), {}, False, True, 4.0),  # stopped before any final metrics
        ({"stopped_early": "true"}, {}, False, True, math.nan),  # its epoch unknown
        ({"stopped_early": "TRUE", "stopped_at_epoch": "n/a"}, {}, False, True, math.nan),
        ({"stopped_at_epoch": "24"}, {}, False, False, math.nan),  # no stopped tag: not stopped
        ({"diverged": "True"}, {}, True, False, math.nan),  # str(True), as older runs have it
        ({}, {}, False, False, math.nan),  # no tags at all: a run logged by hand
        ({}, {"diverged": 1.0}, True, False, math.nan),  # Ray's MLflowLoggerCallback: a metric
        ({}, {"diverged": 0.0}, False, False, math.nan),
        (final_tags(False), {"diverged": 1.0}, False, False, math.nan),  # the tag wins
    ],
)
def test_run_outcome_reads_the_ending_from_tags_as_the_tracker_writes_them(
    tags, metrics, diverged, stopped, epoch
):
    found = RunOutcome.of(tags, metrics)

    assert (found.diverged, found.stopped) == (diverged, stopped)
    assert found.stopped_at_epoch == pytest.approx(epoch, nan_ok=True)
