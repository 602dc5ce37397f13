"""trainables/results.py: a trial's two reports survive the trip through a Tune result, and the
MLflow tags the tracker writes read back as the ending they record.

The tag names and values are spelled out here as literals: they are what a user filters runs
by in MLflow (``tags.diverged = 'true'``), a format, not an implementation detail."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainables.results import (
    FINAL_METRICS,
    EpochsReport,
    FinalReport,
    RunOutcome,
    epoch_rows,
    final_tags,
    has_final,
    is_failed,
    is_final,
    lower_is_better,
    read_report,
    selection_metric,
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


def test_epoch_rows_are_oldest_first_with_every_number_a_loop_reports():
    epochs = [
        {"epoch": 2.0, "test_acc": 0.5, "perplexity": 31, "tokens_per_s": 1.5e4},
        {"epoch": 1, "lr": 0.1, "train_loss": 2, "bleu": math.inf},
    ]

    rows = epoch_rows(epochs)

    assert rows == [
        {"epoch": 1, "lr": 0.1, "train_loss": 2.0, "bleu": math.inf},
        {"epoch": 2, "test_acc": 0.5, "perplexity": 31.0, "tokens_per_s": 15000.0},
    ]
    assert [type(r["epoch"]) for r in rows] == [int, int]
    assert all(type(v) is float for r in rows for k, v in r.items() if k != "epoch")


def test_epoch_rows_drop_what_is_not_a_number():
    epochs = [
        {
            "epoch": 1,
            "val_loss": 0.25,
            "note": "warm",
            "flag": True,
            "missing": None,
            "curve": [0.1, 0.2],
            "nested": {"a": 1},
        }
    ]
    assert epoch_rows(epochs) == [{"epoch": 1, "val_loss": 0.25}]


@given(
    st.lists(
        st.dictionaries(
            st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True).filter(lambda k: k != "epoch"),
            st.floats(allow_nan=False) | st.integers(-(2**40), 2**40) | st.text() | st.booleans(),
            max_size=5,
        ),
        max_size=6,
    )
)
def test_epoch_rows_keep_exactly_the_numbers(metrics):
    epochs = [{"epoch": len(metrics) - i, **m} for i, m in enumerate(metrics)]
    rows = epoch_rows(epochs)
    assert [r["epoch"] for r in rows] == list(range(1, len(metrics) + 1))
    for row, given_metrics in zip(rows, reversed(metrics), strict=True):
        numbers = {
            k: float(v)
            for k, v in given_metrics.items()
            if type(v) in (int, float)  # bool is an int to Python, not a metric
        }
        assert row == {"epoch": row["epoch"], **numbers}


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


def test_a_final_report_round_trips_its_final_names_and_its_error():
    metrics = {**EPOCH_7, "perplexity_final": 12.5, "trial_seconds": 3.0, "sharpness": 1.0}
    report = FinalReport(metrics, False, (EPOCH_7,), final=("perplexity_final", "trial_seconds"))

    assert read_report(report.to_result()) == report
    back = read_report(report.to_result() | TUNE_KEYS)

    assert back.final == ("perplexity_final", "trial_seconds")
    assert back.error is None
    # Only the names it says were measured at the end: sharpness here is just another metric.
    assert back.final_metrics() == {"perplexity_final": 12.5, "trial_seconds": 3.0}

    failed = FinalReport({"epoch": 2}, False, (), (), "data.dataset: mine:load returned a list")
    assert read_report(failed.to_result()) == failed
    back = read_report(failed.to_result() | TUNE_KEYS)
    assert back.diverged is False
    assert back.error == "data.dataset: mine:load returned a list"
    assert back.final == ()
    assert back.final_metrics() == {}


def test_a_final_report_from_before_final_names_reads_as_the_builtin_ones():
    result = FinalReport({**EPOCH_7, "sharpness": 2.0}, False).to_result()
    del result["final_metrics"]  # what a result written before the field existed lacks
    back = read_report(result)
    assert back.final == FINAL_METRICS
    assert back.final_metrics() == {"sharpness": 2.0}


def test_is_failed_is_a_final_report_with_an_error():
    assert is_failed(FinalReport({}, False, (), (), "model.name: boom").to_result())
    assert is_failed(FinalReport({}, False, (), (), "model.name: boom").to_result() | TUNE_KEYS)
    assert not is_failed(FinalReport({"epoch": 3}, False).to_result())
    assert not is_failed(FinalReport({"epoch": 3}, True).to_result())  # diverged is no failure
    assert not is_failed(EpochsReport((EPOCH_6,)).to_result())
    assert not is_failed({"trial_error": "x"})  # not a final report
    assert not is_failed(None)
    assert not is_failed({})


@pytest.mark.parametrize(
    ("metric", "selected_by"),
    [
        ("test_acc", "val_acc"),
        ("test_loss", "val_loss"),
        ("test_perplexity", "val_perplexity"),
        ("val_acc", "val_acc"),
        ("train_loss", "train_loss"),
        ("sharpness", "sharpness"),
        ("latest_acc", "latest_acc"),
        ("my_test_acc", "my_test_acc"),
    ],
)
def test_selection_reads_the_validation_counterpart_of_a_test_metric(metric, selected_by):
    assert selection_metric(metric) == selected_by


@given(st.text(max_size=20))
def test_selection_metric_rewrites_only_the_test_prefix(suffix):
    assert selection_metric("test_" + suffix) == "val_" + suffix
    if not suffix.startswith("test_"):
        assert selection_metric(suffix) == suffix


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("sharpness", True),
        ("train_loss", True),
        ("val_loss", True),
        ("test_loss", True),
        ("loss", True),
        ("val_perplexity", True),
        ("test_acc", False),
        ("val_acc", False),
        ("bleu", False),
        ("hessian_trace", False),
        ("loss_scale_acc", False),
        ("sharpness_ratio", False),
    ],
)
def test_lower_is_better_for_sharpness_losses_and_perplexity(metric, lower):
    assert lower_is_better(metric) is lower
