"""The training loop: digits accuracy, exact resume, determinism, divergence, the LR reported;
``fit``, the same loop reporting through the Trial handle, killed and resumed from an envelope."""

import io
import math
import time

import pytest
import torch

from trainables.config import TrainConfig
from trainables.handle import ENVELOPE_KEYS, TRAINABLES, Trial
from trainables.plugins import resolve
from trainables.results import EPOCH_METRICS, FINAL_METRICS, IMAGES_PER_SECOND
from trainables.state import STATE_KEYS, TrainState
from trainables.train import fit, train

QUICK = dict(dataset="digits", model="mlp", epochs=4, batch_size=64, peak_lr=0.05, seed=0)


def _without_time(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("trial_seconds", IMAGES_PER_SECOND)}


def test_digits_mlp_reaches_90_percent():
    started = time.perf_counter()
    result = train(QUICK | dict(epochs=10))
    assert result["test_acc"] >= 0.90
    assert not result["diverged"]
    assert result["sharpness"] >= 0.0
    assert 0 < result["trial_seconds"] <= time.perf_counter() - started


def test_every_epoch_reports_the_named_metrics_and_the_knee_lr():
    seen = []
    train(QUICK | dict(explore_fraction=0.5), on_epoch=lambda metrics, state: seen.append(metrics))
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4]
    for metrics in seen:
        assert set(metrics) == {"epoch", *EPOCH_METRICS}
        assert {"val_loss", "val_acc"} <= set(metrics)
        for accuracy in ("train_acc", "val_acc", "test_acc"):
            assert 0.0 <= metrics[accuracy] <= 1.0
        # Accuracies are fractions of the split's examples: 1131 train, 126 val, 540 test.
        assert metrics["val_acc"] * 126 == pytest.approx(round(metrics["val_acc"] * 126))
        assert metrics["test_acc"] * 540 == pytest.approx(round(metrics["test_acc"] * 540))
        assert metrics["train_acc"] * 1131 == pytest.approx(round(metrics["train_acc"] * 1131))
    # 4 epochs, half explore: the last steps of epochs 1 and 2 are at the peak, epoch 3 ends
    # halfway down the exploit phase, and step T, the last of epoch 4, runs at LR 0.
    assert [m["lr"] for m in seen] == pytest.approx([0.05, 0.05, 0.025, 0.0])


def test_same_seed_is_bit_identical_and_another_seed_is_not():
    first, second = train(QUICK), train(QUICK)
    assert _without_time(first) == _without_time(second)
    assert train(QUICK | dict(seed=1))["test_loss"] != first["test_loss"]


@pytest.mark.parametrize("stop_after", [1, 3])
def test_resuming_from_a_saved_state_gives_the_uninterrupted_result(stop_after):
    uninterrupted = train(QUICK)

    saved = {}

    def checkpoint(metrics, state):
        if metrics["epoch"] == stop_after:  # what a checkpoint file would hold
            buffer = io.BytesIO()
            torch.save(state, buffer)
            saved["state"] = buffer.getvalue()

    train(QUICK, on_epoch=checkpoint)
    state = torch.load(io.BytesIO(saved["state"]), weights_only=False)
    epochs_after_resume = []
    resumed = train(
        QUICK, on_epoch=lambda m, s: epochs_after_resume.append(m["epoch"]), state=state
    )

    assert epochs_after_resume == list(range(stop_after + 1, QUICK["epochs"] + 1))
    assert _without_time(resumed) == _without_time(uninterrupted)


def test_a_diverging_run_stops_early_and_says_so():
    seen = []
    result = train(QUICK | dict(peak_lr=1e6, epochs=6), on_epoch=lambda m, s: seen.append(m))
    assert result["diverged"] is True
    assert "sharpness" not in result
    assert result["epoch"] < 6
    assert all(math.isfinite(m["train_loss"]) for m in seen)  # only finite epochs reported


def test_trial_seconds_counts_compute_not_the_callers_time():
    started = time.perf_counter()
    result = train(QUICK, on_epoch=lambda m, s: time.sleep(0.5))
    wall = time.perf_counter() - started
    assert result["trial_seconds"] < wall - 4 * 0.5 + 0.1


@pytest.mark.parametrize("schedule", ["cosine", "linear", "step", "onecycle", "constant"])
def test_baseline_schedules_train(schedule):
    result = train(QUICK | dict(schedule=schedule, epochs=2))
    assert result["test_acc"] > 0.5


def test_hessian_metrics_when_asked():
    result = train(QUICK | dict(epochs=1, hessian=True))
    assert result["hessian_trace"] > 0
    assert abs(result["hessian_top_eigenvalue"]) > 0


def test_unknown_config_key_is_refused():
    with pytest.raises(ValueError, match="unknown train config keys: epoch"):
        train({"epoch": 3})


def test_the_state_handed_out_is_a_training_state_and_a_foreign_one_is_refused():
    """on_epoch's state has exactly the TrainState keys (what a checkpoint is checked for)
    and reads back; a dict missing some is named, not a KeyError deep in train()."""
    states = []
    train(QUICK | dict(epochs=1), on_epoch=lambda metrics, state: states.append(state))

    (state,) = states
    assert set(state) == STATE_KEYS
    assert TrainState.from_dict(state).epoch == 1
    with pytest.raises(ValueError, match="not a training state: no generator, history"):
        train(QUICK, state={k: v for k, v in state.items() if k not in ("generator", "history")})


# --- fit: the built-in loop through the Trial handle ------------------------------------------

CPU = QUICK | dict(device="cpu")


class Killed(Exception):
    """The trial's process dying right after a checkpoint was written."""


def _fit(flat: dict, envelope=None, kill_after: int | None = None):
    """Run ``fit`` as a study's trial does; returns (trial, what fit returned, rows reported,
    the envelope of report ``kill_after`` as read back from its file)."""
    rows, saved = [], {}

    def on_report(row, checkpoint):
        rows.append(row)
        assert checkpoint is not None  # the built-in loop gives a state with every report
        if row["epoch"] == kill_after:
            buffer = io.BytesIO()
            torch.save(checkpoint(), buffer)
            saved["envelope"] = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
            raise Killed

    trial = Trial(TrainConfig.from_flat(flat), on_report, envelope)
    try:
        returned = fit(dict(flat), trial)
    except Killed:
        return trial, None, rows, saved["envelope"]
    return trial, returned, rows, None


def test_the_classifier_is_registered_as_fit():
    assert resolve("classifier", TRAINABLES, "trainable") is fit


def test_fit_reports_every_epoch_through_the_handle():
    trial, returned, rows, _ = _fit(CPU)

    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert rows == trial.history
    for row in rows:
        assert set(row) == {"epoch", *EPOCH_METRICS}
        assert 0.0 <= row["val_acc"] <= 1.0
        assert row["val_loss"] > 0
    assert set(returned) <= {*FINAL_METRICS, IMAGES_PER_SECOND}
    assert {"sharpness", "trial_seconds"} <= set(returned)
    assert not trial.diverged
    # The same numbers train() hands its own callback.
    seen = []
    direct = train(CPU, on_epoch=lambda metrics, state: seen.append(metrics))
    assert rows == seen
    assert returned["sharpness"] == direct["sharpness"]


@pytest.mark.parametrize("kill_after", [1, 3])
def test_killed_after_an_epoch_and_resumed_from_its_envelope_ends_the_same(kill_after):
    uninterrupted, final, rows, _ = _fit(CPU)

    _, _, rows_before, envelope = _fit(CPU, kill_after=kill_after)
    assert set(envelope) == ENVELOPE_KEYS
    assert set(envelope["state"]) == STATE_KEYS
    torch.manual_seed(12345)  # a fresh worker's RNG is anywhere
    resumed, resumed_final, rows_after, _ = _fit(CPU, envelope=envelope)

    assert [row["epoch"] for row in rows_after] == list(range(kill_after + 1, 5))
    assert rows_before + rows_after == rows  # bit-identical on a CPU
    assert resumed.history == uninterrupted.history
    assert _without_time(resumed_final) == _without_time(final)
    assert resumed_final["trial_seconds"] > envelope["trial_seconds"]


def test_fit_marks_a_diverging_run():
    trial, returned, rows, _ = _fit(CPU | dict(peak_lr=1e6, epochs=6))
    assert trial.diverged
    assert "sharpness" not in returned
    assert len(rows) < 6
