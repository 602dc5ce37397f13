"""Schedules, timm-style: closed-form values at every phase boundary, groups, state round trips."""

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim.lr_scheduler import OneCycleLR

from trainables.schedules import (
    DECAY_SHAPES,
    SCHEDULE_NAMES,
    KneeLRScheduler,
    knee_lr,
    make_schedule,
    phase_steps,
)

PEAK = 0.1


def _optimizer(lrs=(1.0,)) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=1.0, momentum=0.9)


def _used_lrs(optimizer, scheduler, steps: int) -> list[list[float]]:
    """The LR of every group that optimizer steps 1..steps actually ran with."""
    used = []
    for _ in range(steps):
        used.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return used


def _single_group_lrs(build, steps: int) -> list[float]:
    """The LRs of steps 1..steps of the schedule ``build(optimizer)`` on a one-group optimizer."""
    opt = _optimizer()
    return [lr for (lr,) in _used_lrs(opt, build(opt), steps)]


# (W, E, T): with warmup, W = 0, D = 0 (100% explore), no explore, one-step phases.
PHASES = [(2, 3, 10), (0, 5, 10), (3, 7, 10), (0, 10, 10), (4, 0, 10), (0, 0, 7), (1, 1, 3)]


@pytest.mark.parametrize(("w", "e", "t"), PHASES)
def test_knee_phase_boundaries_match_closed_form(w, e, t):
    d = t - w - e
    lrs = _single_group_lrs(lambda opt: KneeLRScheduler(opt, PEAK, w, e, t), t + 3)
    lr = dict(enumerate(lrs, start=1))  # lr[k]: the k-th optimizer step

    if w > 0:
        assert lr[1] == pytest.approx(PEAK / w)
        assert lr[w] == pytest.approx(PEAK)
    if e > 0:
        assert lr[w + 1] == pytest.approx(PEAK)
        assert lr[w + e] == pytest.approx(PEAK)
    if d > 0:
        assert lr[w + e + 1] == pytest.approx(PEAK * (1 - 1 / d))
        assert lr[t] == pytest.approx(0.0, abs=1e-12)
    else:
        assert lr[t] == pytest.approx(PEAK)
    assert lr[t + 1] == 0.0
    assert lr[t + 3] == 0.0


def test_knee_matches_the_seed_sequence_step_by_step():
    # Hand-computed from the paper's KneeLRScheduler: W=2, E=3, T=8, D=3.
    expected = [0.05, 0.1, 0.1, 0.1, 0.1, 0.1 * 2 / 3, 0.1 / 3, 0.0, 0.0, 0.0]
    used = _single_group_lrs(lambda opt: KneeLRScheduler(opt, PEAK, 2, 3, 8), 10)
    assert used == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("decay", "quarter", "half"),
    [
        ("linear", 0.75, 0.5),
        ("cosine", (1 + math.cos(math.pi / 4)) / 2, 0.5),
        ("1-sqrt", 0.5, 1 - math.sqrt(0.5)),
    ],
)
def test_decay_shapes_at_known_points(decay, quarter, half):
    # W=0, E=4, T=8: exploit steps 5..8 are progress 1/4, 2/4, 3/4, 1.
    assert knee_lr(5, PEAK, 0, 4, 8, decay) == pytest.approx(PEAK * quarter)
    assert knee_lr(6, PEAK, 0, 4, 8, decay) == pytest.approx(PEAK * half)
    assert knee_lr(8, PEAK, 0, 4, 8, decay) == pytest.approx(0.0, abs=1e-12)


@given(
    w=st.integers(0, 20),
    e=st.integers(0, 20),
    d=st.integers(0, 20),
    decay=st.sampled_from(DECAY_SHAPES),
)
def test_knee_rises_holds_then_falls_to_zero(w, e, d, decay):
    t = w + e + d
    if t == 0:
        return
    lrs = [knee_lr(k, PEAK, w, e, t, decay) for k in range(1, t + 3)]
    assert all(0.0 <= lr <= PEAK + 1e-15 for lr in lrs)
    rising, after = lrs[:w], lrs[w:]
    assert rising == sorted(rising)
    assert after == sorted(after, reverse=True)
    assert lrs[t + 1 - 1] == 0.0  # step T + 1


def test_per_group_peaks_and_group_lrs_as_peaks():
    opt = _optimizer(lrs=(0.5, 0.05))
    used = _used_lrs(opt, KneeLRScheduler(opt, [0.2, 0.02], 0, 2, 4), 4)
    expected = [[0.2, 0.02], [0.2, 0.02], [0.1, 0.01], [0.0, 0.0]]
    np.testing.assert_allclose(used, expected, atol=1e-12)

    opt = _optimizer(lrs=(0.5, 0.05))  # peak None: each group's own lr is its peak
    used = _used_lrs(opt, KneeLRScheduler(opt, None, 0, 2, 4), 3)
    np.testing.assert_allclose(used, [[0.5, 0.05], [0.5, 0.05], [0.25, 0.025]])


def test_get_last_lr_after_construction_is_the_first_steps_lr():
    opt = _optimizer()
    assert KneeLRScheduler(opt, PEAK, 4, 2, 10).get_last_lr() == pytest.approx([PEAK / 4])


@pytest.mark.parametrize("split_at", [1, 3, 5, 8, 12])  # warmup, explore, exploit, T, past T
def test_state_dict_round_trip_resumes_exactly(split_at):
    args = dict(
        peak_lr=[0.2, 0.02], warmup_steps=2, explore_steps=3, total_steps=10, decay="cosine"
    )
    opt = _optimizer(lrs=(1.0, 1.0))
    uninterrupted = _used_lrs(opt, KneeLRScheduler(opt, **args), 14)

    opt = _optimizer(lrs=(1.0, 1.0))
    sched = KneeLRScheduler(opt, **args)
    first = _used_lrs(opt, sched, split_at)
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)

    opt = _optimizer(lrs=(1.0, 1.0))
    resumed = KneeLRScheduler(opt, **{**args, "decay": "linear"})  # overwritten by the state
    opt.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert first + _used_lrs(opt, resumed, 14 - split_at) == uninterrupted


def test_from_fractions_rounds_to_steps():
    sched = KneeLRScheduler.from_fractions(_optimizer(), PEAK, 100, 0.5, warmup_fraction=0.1)
    assert (sched.warmup_steps, sched.explore_steps, sched.total_steps) == (10, 50, 100)
    sched = KneeLRScheduler.from_fractions(_optimizer(), PEAK, 7, 0.5, warmup_fraction=0.5)
    assert sched.warmup_steps + sched.explore_steps <= 7


def test_full_explore_runs_past_the_end_without_error():
    used = _single_group_lrs(lambda opt: KneeLRScheduler.from_fractions(opt, PEAK, 5, 1.0), 8)
    assert used == [PEAK] * 5 + [0.0] * 3


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(explore_steps=-2), "explore_steps"),
        (dict(total_steps=0), "total_steps"),
        (dict(warmup_steps=6, explore_steps=5), "warmup_steps \\+ explore_steps"),
        (dict(peak_lr=0.0), "peak_lr"),
        (dict(peak_lr=-0.1), "peak_lr"),
        (dict(peak_lr=[0.1, 0.2]), "peak_lr has 2 values"),
        (dict(decay="exp"), "decay"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, names):
    args = dict(peak_lr=PEAK, warmup_steps=1, explore_steps=2, total_steps=10) | kwargs
    with pytest.raises(ValueError, match=names):
        KneeLRScheduler(_optimizer(), **args)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(explore_fraction=1.5), "explore_fraction"),
        (dict(explore_fraction=-0.1), "explore_fraction"),
        (dict(warmup_fraction=0.6, explore_fraction=0.5), "warmup_fraction \\+ explore_fraction"),
    ],
)
def test_invalid_fractions_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        KneeLRScheduler.from_fractions(
            _optimizer(), PEAK, 10, **({"explore_fraction": 0.5} | kwargs)
        )


# --- baselines: torch's own schedulers behind one name -------------------------------------------

T = 20


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cosine", lambda k: PEAK * (1 + math.cos(math.pi * k / T)) / 2),  # 0 at step T
        ("linear", lambda k: PEAK * (1 - k / T)),
        ("step", lambda k: PEAK * 0.1 ** ((k > T // 2) + (k > 3 * T // 4))),
        ("constant", lambda k: PEAK),
        ("knee", lambda k: PEAK if k <= T // 2 else PEAK * (1 - (k - T // 2) / (T // 2))),
    ],
)
def test_baselines_follow_their_closed_forms(name, expected):
    used = _single_group_lrs(lambda opt: make_schedule(name, opt, T, peak_lr=PEAK), T)
    assert used == pytest.approx([expected(k) for k in range(1, T + 1)], abs=1e-12)


def test_onecycle_peaks_after_its_warmup_and_ends_near_zero():
    used = _single_group_lrs(lambda opt: make_schedule("onecycle", opt, T, peak_lr=PEAK), T)
    assert max(used) == pytest.approx(PEAK)
    assert used.index(max(used)) == round(0.3 * T) - 1
    assert used[-1] < PEAK / 1000


@pytest.mark.parametrize("name", [n for n in SCHEDULE_NAMES if n != "onecycle"])
def test_warmup_is_the_knee_warmup_for_every_schedule(name):
    used = _single_group_lrs(
        lambda opt: make_schedule(name, opt, T, peak_lr=PEAK, warmup_fraction=0.25), 6
    )
    assert used[:5] == pytest.approx([PEAK * k / 5 for k in range(1, 6)])
    assert used[5] <= PEAK + 1e-12


@pytest.mark.parametrize("split_at", [1, 2, 7, T - 1, T])  # in and right after a warmup, at T
@pytest.mark.parametrize("warmup_fraction", [0.0, 0.05, 0.1])  # W = 0, 1, 2
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_every_schedule_is_a_resumable_torch_scheduler(name, warmup_fraction, split_at):
    def fresh():
        opt = _optimizer()
        return opt, make_schedule(name, opt, T, peak_lr=PEAK, warmup_fraction=warmup_fraction)

    steps = T if name == "onecycle" else T + 2  # OneCycleLR refuses to step past its budget
    opt, sched = fresh()
    uninterrupted = _used_lrs(opt, sched, steps)
    opt, sched = fresh()
    first = _used_lrs(opt, sched, split_at)
    state = (opt.state_dict(), sched.state_dict())
    opt, sched = fresh()
    opt.load_state_dict(state[0])
    sched.load_state_dict(state[1])
    np.testing.assert_allclose(first + _used_lrs(opt, sched, steps - split_at), uninterrupted)


def test_unknown_schedule_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_schedule("exponential", _optimizer(), T)


def test_step_with_warmup_decays_at_the_budgets_milestones():
    """Milestones are fractions of the whole budget, warmup included: with 5 warmup steps of 20,
    the LR is divided by 10 after step 10 and again after step 15, as without warmup."""
    used = _single_group_lrs(
        lambda opt: make_schedule("step", opt, T, peak_lr=PEAK, warmup_fraction=0.25), T
    )
    expected = [PEAK * k / 5 for k in range(1, 6)] + [PEAK] * 5 + [PEAK / 10] * 5 + [PEAK / 100] * 5
    assert used == pytest.approx(expected, abs=1e-12)


def test_step_refuses_a_warmup_that_outlasts_its_first_milestone():
    with pytest.raises(ValueError, match=r"milestones \[0.5, 0.75\] must come after the warmup"):
        make_schedule("step", _optimizer(), T, peak_lr=PEAK, warmup_fraction=0.6)


def test_step_decays_right_after_a_warmup_that_ends_at_its_milestone_by_rounding():
    """Warmup 0.499 of 360 steps rounds to 180 steps, as does the 0.5 milestone: the first
    decay comes on the step after the warmup, not never and not before it."""
    used = _single_group_lrs(
        lambda opt: make_schedule("step", opt, 360, peak_lr=PEAK, warmup_fraction=0.499), 182
    )
    assert used[179] == pytest.approx(PEAK)  # the warmup's last step
    assert used[180] == pytest.approx(PEAK / 10)


# --- baselines step for step with the Knee: its warmup, no off-by-one after it, 0 at step T ------

GROUP_PEAKS = [0.2, 0.02]


def _group_lrs(name, total, warmup_fraction, steps, **kwargs):
    """Per-group LRs of steps 1..steps of ``make_schedule(name)`` on a two-group optimizer."""
    opt = _optimizer(lrs=(1.0, 1.0))
    sched = make_schedule(
        name, opt, total, peak_lr=GROUP_PEAKS, warmup_fraction=warmup_fraction, **kwargs
    )
    return _used_lrs(opt, sched, steps)


def _flat(rows):
    return [value for row in rows for value in row]


def _no_explore(k, peak, w, t, decay):
    """The Knee's step k with no explore phase, written out: peak k/W, then shape((k-W)/D)."""
    if k > t:
        return 0.0
    if k <= w:
        return peak * k / w
    progress = (k - w) / (t - w)
    if decay == "linear":
        return peak * (1 - progress)
    return peak * (1 + math.cos(math.pi * progress)) / 2


# (T, W): no warmup, one-step and two-step warmups, a third, one decay step (D = 1), all warmup.
BUDGETS = [(t, w) for t in (5, 8, 37) for w in sorted({0, 1, 2, t // 3, t - 1, t})]


@pytest.mark.parametrize(("t", "w"), BUDGETS)
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_linear_and_cosine_baselines_are_the_knee_with_no_explore_phase(name, t, w):
    used = _group_lrs(name, t, w / t, t + 3)
    knee = _group_lrs("knee", t, w / t, t + 3, explore_fraction=0.0, decay=name)
    expected = [[_no_explore(k, peak, w, t, name) for peak in GROUP_PEAKS] for k in range(1, t + 4)]
    assert _flat(used) == pytest.approx(_flat(expected), rel=1e-12, abs=1e-15)
    assert _flat(used) == pytest.approx(_flat(knee), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("w", [0, 1, 2, 5])
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_decaying_baselines_are_exactly_zero_from_the_last_step_on(name, w):
    used = _group_lrs(name, T, w / T, T + 5)
    assert all(lr > 0 for lr in used[T - 2])  # step T - 1
    assert used[T - 1 :] == [[0.0, 0.0]] * 6  # steps T .. T + 5, not 1e-17 and not climbing back


@settings(deadline=None)
@given(
    total=st.integers(1, 300),
    warmup_fraction=st.floats(0.0, 1.0),
    name=st.sampled_from(["linear", "cosine"]),
)
def test_knee_at_explore_zero_is_the_baseline_of_its_decay_shape(total, warmup_fraction, name):
    used = _group_lrs(name, total, warmup_fraction, total + 2)
    knee = _group_lrs("knee", total, warmup_fraction, total + 2, explore_fraction=0.0, decay=name)
    assert _flat(used) == pytest.approx(_flat(knee), rel=1e-12, abs=1e-15)
    assert used[total:] == knee[total:] == [[0.0, 0.0]] * 2  # steps T + 1, T + 2
    if phase_steps(total, 0.0, warmup_fraction)[0] < total:  # any decay step at all: 0 at step T
        assert used[total - 1] == knee[total - 1] == [0.0, 0.0]


_C = math.cos  # the five-step table below, by hand: T = 5 and W = 0, 1, 2 (peak 0.1)


@pytest.mark.parametrize(
    ("name", "w", "expected"),
    [
        ("linear", 0, [0.08, 0.06, 0.04, 0.02, 0.0]),
        ("linear", 1, [0.1, 0.075, 0.05, 0.025, 0.0]),
        ("linear", 2, [0.05, 0.1, 0.1 * 2 / 3, 0.1 / 3, 0.0]),
        ("cosine", 0, [0.05 * (1 + _C(math.pi * k / 5)) for k in range(1, 6)]),
        ("cosine", 1, [0.1] + [0.05 * (1 + _C(math.pi * j / 4)) for j in range(1, 5)]),
        ("cosine", 2, [0.05, 0.1, 0.075, 0.025, 0.0]),
        # round(0.5 * 5) = 2 and round(0.75 * 5) = 4: drops on steps 3 and 5
        ("step", 0, [0.1, 0.1, 0.01, 0.01, 0.001]),
        ("step", 1, [0.1, 0.1, 0.01, 0.01, 0.001]),
        ("step", 2, [0.05, 0.1, 0.01, 0.01, 0.001]),
        ("constant", 0, [0.1] * 5),
        ("constant", 1, [0.1] * 5),
        ("constant", 2, [0.05, 0.1, 0.1, 0.1, 0.1]),
    ],
)
def test_baselines_on_a_five_step_budget(name, w, expected):
    after = {"linear": 0.0, "cosine": 0.0, "step": 0.001, "constant": 0.1}[name]
    used = _single_group_lrs(
        lambda opt: make_schedule(name, opt, 5, PEAK, warmup_fraction=w / 5), 7
    )
    assert used == pytest.approx([*expected, after, after], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("t", "w"), [(t, w) for t in (8, 20, 37) for w in (0, 1, 2, 3)])
@pytest.mark.parametrize("name", ["step", "constant"])
def test_step_and_constant_baselines_keep_their_meaning_after_the_knee_warmup(name, t, w):
    def expected(k, peak):
        if k <= w:
            return peak * k / w
        if name == "constant":
            return peak
        return peak * 0.1 ** sum(k > round(m * t) for m in (0.5, 0.75))

    used = _group_lrs(name, t, w / t, t + 2)
    want = [[expected(k, peak) for peak in GROUP_PEAKS] for k in range(1, t + 3)]
    assert _flat(used) == pytest.approx(_flat(want), rel=1e-12, abs=1e-15)


# --- onecycle schedules the LR only --------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "key", "configured"),
    [
        (lambda groups: torch.optim.SGD(groups, lr=1.0, momentum=0.9), "momentum", 0.9),
        (lambda groups: torch.optim.AdamW(groups, lr=1.0, betas=(0.9, 0.99)), "betas", (0.9, 0.99)),
    ],
    ids=["sgd", "adamw"],
)
def test_onecycle_leaves_the_configured_momentum_alone_on_every_step(build, key, configured):
    def optimizer():
        return build([torch.nn.Parameter(torch.zeros(2))])

    opt = optimizer()
    sched = make_schedule("onecycle", opt, T, peak_lr=PEAK)
    used, momenta = [], []
    for _ in range(T):  # the whole budget: OneCycleLR refuses to step past it
        used.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0][key])
        opt.step()
        sched.step()
    momenta.append(opt.param_groups[0][key])
    assert momenta == [configured] * (T + 1)

    # The LR is still torch's one-cycle shape (its LR does not depend on momentum cycling).
    ref_opt = optimizer()
    reference = _used_lrs(ref_opt, OneCycleLR(ref_opt, max_lr=PEAK, total_steps=T), T)
    assert used == pytest.approx([lr for (lr,) in reference], rel=1e-12)
    assert max(used) == pytest.approx(PEAK)
