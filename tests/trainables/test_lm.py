"""The built-in language model, run through the same handle a user's loop gets: it learns
(below the corpus's unigram entropy), a seed reproduces it bit for bit on a CPU, a run resumed
mid-way ends with an uninterrupted run's numbers, and the LR its optimizer uses at every step is
the Knee/WSD formula with its floor, in every parameter group."""

import math

import pytest
import torch

from trainables import lm
from trainables.config import Baseline, Data, Knee, Optimizer, Trainable, TrainConfig
from trainables.corpus import load_corpus, unigram_entropy
from trainables.handle import Trial

OPTIONS = {"layers": 1, "heads": 2, "width": 32, "context": 32, "eval_windows": 8}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a trial runs; bit-identical results need a fixed thread count
    yield
    torch.set_num_threads(threads)


def config(steps: int = 120, **changes) -> TrainConfig:
    base = dict(
        batch_size=16,
        steps=steps,
        eval_every=40,
        peak_lr=3e-3,
        seed=0,
        schedule=Knee(0.5, "1-sqrt"),
        warmup_steps=10,
        min_lr_ratio=0.1,
        data=Data("pydoc"),
        model=None,
        trainable=Trainable("lm", OPTIONS),
        optimizer=Optimizer("adamw", momentum=0.9, weight_decay=0.1, beta2=0.95, grad_clip=1.0),
        device="cpu",
    )
    return TrainConfig(**{**base, **changes})


def run(cfg: TrainConfig, envelope=None, stop_after: int | None = None):
    """Run the LM loop; ``stop_after``: kill it (an exception) after that many reports."""
    sent = []

    def sink(metrics, wrap):
        sent.append((metrics, wrap()))
        if stop_after is not None and len(sent) == stop_after:
            raise KeyboardInterrupt  # the worker dies here; the envelope was just saved

    trial = Trial(cfg, sink, envelope)
    try:
        returned = lm.fit(cfg.to_flat(), trial)
    except KeyboardInterrupt:
        return sent, None, trial
    return sent, returned, trial


def test_it_learns_well_below_the_unigram_entropy_of_its_corpus():
    sent, returned, trial = run(config(steps=200))

    baseline = unigram_entropy(load_corpus().train)  # 3.26 nats: knowing only byte frequencies
    losses = [metrics["val_loss"] for metrics, _ in sent]
    assert [metrics["epoch"] for metrics, _ in sent] == [40, 80, 120, 160, 200]  # its steps
    assert losses[-1] < baseline - 0.5, losses
    assert losses[-1] < losses[0]
    assert sent[-1][0]["val_perplexity"] == pytest.approx(math.exp(losses[-1]))
    assert returned["test_perplexity"] == pytest.approx(math.exp(returned["test_loss"]))
    assert trial.final["sharpness"] > 0
    assert trial.tags == {lm.CORPUS_TAG: load_corpus().digest}
    assert returned["system/tokens_per_second"] > 1000


def test_a_seed_reproduces_a_run_bit_for_bit_and_another_seed_does_not():
    first, again, other = run(config()), run(config()), run(config(seed=1))

    assert [m for m, _ in first[0]] == [m for m, _ in again[0]]
    assert science(first[1]) == science(again[1])
    assert [m for m, _ in other[0]] != [m for m, _ in first[0]]


def test_a_run_resumed_mid_way_ends_with_the_uninterrupted_runs_numbers():
    whole, whole_end, _ = run(config())
    stopped, _, _ = run(config(), stop_after=1)  # killed after its report at step 40
    resumed, resumed_end, _ = run(config(), envelope=stopped[-1][1])

    assert [m["epoch"] for m, _ in resumed] == [80, 120]
    assert [m for m, _ in resumed] == [m for m, _ in whole[1:]]
    assert science(resumed_end) == science(whole_end)


def science(returned: dict) -> dict:
    """What a run found, without how fast it ran (``system/``: a measurement of the machine)."""
    return {k: v for k, v in returned.items() if not k.startswith("system/")}


def floored_knee(k: int, peak: float, warmup: int, explore: int, total: int, floor: float) -> float:
    """The Knee / WSD learning rate of step k (1, 2, ...), written out independently: linear
    warmup to the peak, the stable phase, then a 1-sqrt cooldown from the peak down to
    ``floor * peak``, and the floor after the budget."""
    if k <= warmup:
        return peak * k / warmup
    if k <= warmup + explore:
        return peak
    if k > total:
        return floor * peak
    progress = (k - warmup - explore) / (total - warmup - explore)
    return peak * (floor + (1 - floor) * (1 - math.sqrt(progress)))


@pytest.mark.parametrize(("explore", "floor"), [(0.5, 0.1), (0.0, 0.0), (0.9, 0.2)])
def test_the_optimizer_uses_the_floored_knee_at_every_step_in_every_group(
    monkeypatch, explore, floor
):
    steps, warmup = 60, 6
    used: list[list[float]] = []
    original = Trial.schedule

    def recording(self, optimizer, total_steps):
        optimizer.register_step_pre_hook(
            lambda opt, *_: used.append([group["lr"] for group in opt.param_groups])
        )
        return original(self, optimizer, total_steps)

    monkeypatch.setattr(Trial, "schedule", recording)
    cfg = config(steps=steps, eval_every=30, schedule=Knee(explore, "1-sqrt"), min_lr_ratio=floor)
    cfg = TrainConfig(**{**cfg.__dict__, "warmup_steps": warmup})
    run(cfg)

    explore_steps = math.floor(explore * steps + 0.5)
    expected = [floored_knee(k, 3e-3, warmup, explore_steps, steps, floor) for k in range(1, 61)]
    assert len(used) == steps
    for group in range(2):  # weight matrices (decayed) and the rest: the same schedule
        assert [lrs[group] for lrs in used] == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_a_baseline_schedule_is_floored_too():
    used = []
    original = Trial.schedule

    def recording(self, optimizer, total_steps):
        optimizer.register_step_pre_hook(lambda opt, *_: used.append(opt.param_groups[0]["lr"]))
        return original(self, optimizer, total_steps)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trial, "schedule", recording)
        run(config(steps=40, eval_every=40, schedule=Baseline("cosine"), warmup_steps=0))

    # Cosine from the peak to the floor: step k uses 0.1 + 0.9 (1 + cos(pi k / 40)) / 2.
    expected = [3e-3 * (0.1 + 0.9 * (1 + math.cos(math.pi * k / 40)) / 2) for k in range(1, 41)]
    assert used == pytest.approx(expected, rel=1e-9)


def test_an_unknown_option_is_one_line_naming_the_key():
    from trainables.plugins import WorkloadError

    with pytest.raises(WorkloadError, match=r"^trainable\.options: .*layer"):
        lm.LMOptions.of({"layer": 2})
