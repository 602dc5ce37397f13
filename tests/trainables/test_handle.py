"""trainables/handle.py, the Trial a training loop reports through: reports numbered from 1 with
the schedule's LR, divergence and bad metrics refused, an envelope a retried trial continues
from (its state, torch's RNG and the numbering), compute time without the reports' time, and
sharpness logged once."""

import io
import math
import time

import numpy as np
import pytest
import torch
from factories import lrs_used
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trainables.config import Baseline, Knee, Sharpness, Trainable, TrainConfig
from trainables.handle import ENVELOPE_KEYS, Diverged, Trial
from trainables.plugins import WorkloadError
from trainables.schedules import DECAY_SHAPES, SCHEDULE_NAMES, make_schedule
from trainables.sharpness import keskar_sharpness

CONFIG = TrainConfig(epochs=4, batch_size=8, peak_lr=0.2, device="cpu")


class Sink:
    """What the study's trial does with reports: keeps each row and, when asked, the envelope."""

    def __init__(self, save_at=(), sleep: float = 0.0):
        self.rows, self.checkpoints, self.envelopes = [], [], {}
        self.save_at, self.sleep = set(save_at), sleep

    def __call__(self, row, checkpoint):
        self.rows.append(row)
        self.checkpoints.append(checkpoint)
        if checkpoint is not None and row["epoch"] in self.save_at:
            buffer = io.BytesIO()  # as the study does: torch.save'd at once, read back later
            torch.save(checkpoint(), buffer)
            self.envelopes[row["epoch"]] = buffer.getvalue()
        time.sleep(self.sleep)

    def envelope(self, epoch):
        return torch.load(io.BytesIO(self.envelopes[epoch]), weights_only=True)


def _optimizer(*lrs: float) -> torch.optim.Optimizer:
    groups = [{"params": [nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs or (1.0,)]
    return torch.optim.SGD(groups)


# --- reports --------------------------------------------------------------------------------


def test_reports_are_numbered_from_1_whatever_epoch_the_loop_says():
    sink = Sink()
    trial = Trial(CONFIG, sink)
    assert trial.step == 0

    trial.report({"train_loss": 2.0, "acc": 0.25})
    trial.report({"train_loss": 1.5, "acc": 0.5, "epoch": 17})  # the handle numbers steps
    trial.report({"train_loss": torch.tensor(1.25), "acc": 1})  # a 0-d tensor and an int

    expected = [
        {"epoch": 1, "train_loss": 2.0, "acc": 0.25},
        {"epoch": 2, "train_loss": 1.5, "acc": 0.5},
        {"epoch": 3, "train_loss": 1.25, "acc": 1.0},
    ]
    assert sink.rows == trial.history == expected
    assert [type(v) for row in sink.rows for v in row.values()] == [int, float, float] * 3
    assert sink.checkpoints == [None, None, None]  # no state given: nothing to save
    assert trial.step == 3


def test_a_trial_without_a_sink_still_keeps_its_history():
    trial = Trial(CONFIG)
    trial.report({"val_loss": 0.5})
    assert trial.history == [{"epoch": 1, "val_loss": 0.5}]


def test_the_properties_a_loop_reads():
    config = TrainConfig(
        epochs=7,
        batch_size=32,
        peak_lr=0.3,
        seed=11,
        trainable=Trainable("mine:fit", {"context": 128}),
        device="cpu",
    )
    trial = Trial(config)
    assert (trial.epochs, trial.batch_size, trial.peak_lr, trial.seed) == (7, 32, 0.3, 11)
    assert trial.options == {"context": 128}
    assert trial.device == torch.device("cpu")
    auto = Trial(TrainConfig(epochs=1, batch_size=1, device="auto")).device
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_lr_is_the_lr_of_the_last_optimizer_step_of_the_schedule_it_built():
    # Knee, 8 steps, half explore at 0.2, then linear to 0: steps 1-4 at 0.2, step k of 5-8 at
    # 0.2 * (1 - (k - 4) / 4). Two steps between reports: the LRs of steps 2, 4, 6 and 8.
    sink = Sink()
    trial = Trial(TrainConfig(epochs=4, batch_size=8, peak_lr=0.2, schedule=Knee(0.5)), sink)
    optimizer = _optimizer(1.0)
    scheduler = trial.schedule(optimizer, total_steps=8)
    used = []
    for _ in range(4):
        used += lrs_used(optimizer, scheduler, 2)
        trial.report({"loss": 1.0})

    assert [lr for (lr,) in used] == pytest.approx([0.2] * 4 + [0.15, 0.1, 0.05, 0.0])
    assert [row["lr"] for row in sink.rows] == pytest.approx([0.2, 0.2, 0.1, 0.0])


def test_an_lr_the_loop_reports_is_kept_and_none_is_made_up_without_a_schedule():
    trial = Trial(CONFIG)
    trial.report({"loss": 1.0})
    assert "lr" not in trial.history[-1]
    trial.schedule(_optimizer(), total_steps=4)
    trial.report({"loss": 1.0, "lr": 0.125})
    assert trial.history[-1]["lr"] == 0.125


@pytest.mark.parametrize(
    "metrics",
    [
        {"train_loss": math.nan},
        {"val_loss": math.inf, "val_acc": 0.5},
        {"loss": -math.inf},
        {"val_acc": math.nan},  # the objective, required: watched too
    ],
)
def test_a_loss_or_the_objective_that_is_not_finite_diverges(metrics):
    sink = Sink()
    trial = Trial(CONFIG, sink, required=("val_acc",))
    trial.report({"loss": 1.0, "val_acc": 0.4})

    with pytest.raises(Diverged, match="step 2"):
        trial.report({"val_acc": 0.5, **metrics}, state={"w": 1})

    assert trial.diverged
    assert trial.history == sink.rows == [{"epoch": 1, "loss": 1.0, "val_acc": 0.4}]


def test_another_metric_may_be_non_finite():
    trial = Trial(CONFIG)
    trial.report({"loss": 1.0, "grad_norm": math.inf})
    assert not trial.diverged
    assert trial.history[-1]["grad_norm"] == math.inf


def test_a_missing_required_metric_is_a_workload_error():
    trial = Trial(CONFIG, required=("val_acc",))
    with pytest.raises(WorkloadError) as refused:
        trial.report({"val_loss": 0.3, "train_acc": 0.9})
    message = str(refused.value)
    assert message.startswith("objective.metric: val_acc not among the metrics")
    assert "val_loss, train_acc" in message
    assert "\n" not in message
    assert trial.history == []


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("high", "str"),
        (None, "NoneType"),
        (True, "bool"),
        (np.bool_(True), "bool"),
        ([0.1], "list"),
        (torch.ones(2), "Tensor"),
    ],
)
def test_a_metric_that_is_not_a_number_is_a_workload_error(value, kind):
    trial = Trial(CONFIG)
    with pytest.raises(WorkloadError) as refused:
        trial.report({"loss": 1.0, "note": value})
    assert str(refused.value) == f"trainable: metric 'note' is a {kind}; report plain numbers"
    assert trial.history == []


# --- the schedule ---------------------------------------------------------------------------


def test_the_knee_schedule_matches_its_closed_form_in_every_group():
    # 20 steps, warmup 10% (2 steps), explore 40% (8 steps), then 10 steps of linear decay.
    config = TrainConfig(
        epochs=1, batch_size=1, peak_lr=0.4, schedule=Knee(0.4), warmup_fraction=0.1
    )
    optimizer = _optimizer(0.01, 3.0)  # every group peaks at peak_lr, whatever its own lr
    used = lrs_used(optimizer, Trial(config).schedule(optimizer, 20), 20)

    expected = [0.2, 0.4] + [0.4] * 8 + [0.4 * (1 - j / 10) for j in range(1, 11)]
    assert [a for a, _ in used] == pytest.approx(expected)
    assert [b for _, b in used] == pytest.approx(expected)


def test_a_cosine_baseline_matches_its_closed_form():
    config = TrainConfig(epochs=1, batch_size=1, peak_lr=1.0, schedule=Baseline("cosine"))
    optimizer = _optimizer()
    used = lrs_used(optimizer, Trial(config).schedule(optimizer, 10), 10)
    expected = [0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(1, 11)]
    assert [lr for (lr,) in used] == pytest.approx(expected, abs=1e-12)


schedules = st.one_of(
    st.builds(Knee, st.floats(0, 0.6), st.sampled_from(DECAY_SHAPES)),
    st.builds(Baseline, st.sampled_from([n for n in SCHEDULE_NAMES if n != "knee"])),
)


@settings(max_examples=60, deadline=None)
@given(
    schedule=schedules,
    warmup=st.floats(0, 0.4),
    peak=st.floats(1e-4, 10),
    total=st.integers(2, 40),
)
def test_the_schedule_is_make_schedule_step_for_step(schedule, warmup, peak, total):
    config = TrainConfig(
        epochs=1, batch_size=1, peak_lr=peak, schedule=schedule, warmup_fraction=warmup
    )
    knee = schedule if isinstance(schedule, Knee) else Knee()
    ours, theirs = _optimizer(0.5), _optimizer(0.5)
    scheduler = make_schedule(
        schedule.name,
        theirs,
        total,
        peak_lr=peak,
        explore_fraction=knee.explore_fraction,
        warmup_fraction=warmup,
        decay=knee.decay,
    )

    handed = Trial(config).schedule(ours, total)

    assert type(handed) is type(scheduler)
    assert lrs_used(ours, handed, total) == lrs_used(theirs, scheduler, total)


# --- the envelope: what a retried trial continues from --------------------------------------


def test_a_report_with_state_hands_the_sink_a_maker_of_the_envelope():
    sink = Sink()
    trial = Trial(CONFIG, sink)
    trial.report({"loss": 1.0})
    trial.report({"loss": 0.5}, state={"weights": torch.arange(3.0), "step": 2})

    first, second = sink.checkpoints
    assert first is None
    envelope = second()
    assert set(envelope) == ENVELOPE_KEYS == {"state", "torch_rng", "history", "trial_seconds"}
    assert envelope["history"] == [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]
    assert torch.equal(envelope["state"]["weights"], torch.arange(3.0))
    assert envelope["state"]["step"] == 2
    assert 0 <= envelope["trial_seconds"] <= trial.trial_seconds


def _a_loop(trial: Trial, epochs: int, stop_after: int | None = None) -> list[torch.Tensor]:
    """A loop that draws from torch's global RNG, resumable from the state it reports."""
    state = trial.restore()
    if state is None:
        torch.manual_seed(trial.seed)
        weights, start = torch.zeros(3), 0
    else:
        weights, start = state["weights"].clone(), state["epoch"]
    drawn = []
    for epoch in range(start + 1, epochs + 1):
        noise = torch.rand(3)
        drawn.append(noise)
        weights += noise
        trial.report({"loss": float(weights.sum())}, state={"weights": weights, "epoch": epoch})
        if epoch == stop_after:
            break
    return drawn


@pytest.mark.parametrize("stop_after", [1, 3])
def test_a_trial_built_from_an_envelope_continues_where_it_was(stop_after):
    uninterrupted = Trial(CONFIG, Sink())
    drawn = _a_loop(uninterrupted, epochs=5)

    sink = Sink(save_at={stop_after})
    first_try = Trial(CONFIG, sink)
    _a_loop(first_try, epochs=5, stop_after=stop_after)
    torch.manual_seed(999)  # a new process: its RNG somewhere else

    retried_sink = Sink()
    retried = Trial(CONFIG, retried_sink, envelope=sink.envelope(stop_after))
    assert retried.step == stop_after
    assert retried.history == uninterrupted.history[:stop_after]
    drawn_after = _a_loop(retried, epochs=5)

    # torch.rand after the restore is what it would have been without the interruption.
    assert all(torch.equal(a, b) for a, b in zip(drawn_after, drawn[stop_after:], strict=True))
    assert [row["epoch"] for row in retried_sink.rows] == list(range(stop_after + 1, 6))
    assert retried.history == uninterrupted.history


def test_restore_gives_the_state_and_torchs_rng_back():
    sink = Sink(save_at={1})
    trial = Trial(CONFIG, sink)
    torch.manual_seed(5)
    trial.report({"loss": 1.0}, state={"answer": 42})
    next_draw = torch.rand(4)
    torch.rand(100)  # the RNG moves on

    retried = Trial(CONFIG, envelope=sink.envelope(1))
    assert retried.restore() == {"answer": 42}
    assert torch.equal(torch.rand(4), next_draw)
    assert Trial(CONFIG).restore() is None  # a first try has nothing to restore


def test_trial_seconds_counts_the_loop_not_the_time_reports_take():
    sink = Sink(save_at={1, 2, 3}, sleep=0.3)
    started = time.perf_counter()
    trial = Trial(CONFIG, sink)
    for _ in range(3):
        time.sleep(0.05)  # the loop's own work
        trial.report({"loss": 1.0}, state={"w": 0})
    wall = time.perf_counter() - started

    assert wall >= 3 * 0.35
    assert 0.15 <= trial.trial_seconds < 0.15 + 0.45  # the sink's 0.9 s is not in it
    saved = [sink.envelope(e)["trial_seconds"] for e in (1, 2, 3)]
    assert saved == sorted(saved)
    assert 0.05 <= saved[0] < 0.05 + 0.25
    assert 0.15 <= saved[2] <= trial.trial_seconds

    # A retried trial starts from the seconds its envelope had.
    retried = Trial(CONFIG, envelope=sink.envelope(3))
    assert saved[2] <= retried.trial_seconds < saved[2] + 0.25


# --- sharpness ------------------------------------------------------------------------------


def _a_model_and_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    generator = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(16, 4, generator=generator), torch.randint(0, 3, (16,), generator=generator))
        for _ in range(4)
    ]
    return model, batches


def test_sharpness_is_measured_on_the_first_batches_and_kept_as_a_final_metric():
    model, batches = _a_model_and_batches()
    config = TrainConfig(epochs=1, batch_size=16, sharpness=Sharpness(1e-2, steps=5, batches=2))
    trial = Trial(config)
    consumed = []

    def feed():
        for batch in batches:
            consumed.append(batch)
            yield batch

    measured = trial.sharpness(model, nn.CrossEntropyLoss(), feed())

    assert len(consumed) == 2  # sharpness.batches of them, the rest never drawn
    expected = keskar_sharpness(model, nn.CrossEntropyLoss(), batches[:2], 1e-2, steps=5)
    assert measured == {"sharpness": expected.sharpness}
    assert trial.final == measured
    assert measured["sharpness"] > 0
    assert trial.history == []  # not a report


def test_sharpness_with_the_hessian_when_the_study_asks():
    model, batches = _a_model_and_batches()
    config = TrainConfig(epochs=1, batch_size=16, sharpness=Sharpness(1e-3, 3, 1, hessian=True))
    trial = Trial(config)
    measured = trial.sharpness(model, nn.CrossEntropyLoss(), batches)
    expected = {"sharpness", "hessian_top_eigenvalue", "hessian_trace"}
    assert set(measured) == set(trial.final) == expected
    assert all(math.isfinite(v) for v in measured.values())


@pytest.mark.parametrize(
    "value", [np.float32(0.25), np.float64(0.25), np.int64(2), torch.tensor(0.25), 3]
)
def test_numpy_and_tensor_scalars_are_numbers(value):
    trial = Trial(CONFIG)
    trial.report({"loss": value})
    assert trial.history == [{"epoch": 1, "loss": float(value)}]
