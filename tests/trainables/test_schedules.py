"""Schedules, timm-style: closed-form values at every phase boundary, groups, state round trips."""

import io
import math

import numpy as np
import pytest
import torch
from factories import lrs_used
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim.lr_scheduler import ExponentialLR, OneCycleLR

from trainables.schedules import (
    DECAY_SHAPES,
    SCHEDULE_NAMES,
    FlooredLR,
    KneeLRScheduler,
    knee_lr,
    make_schedule,
    phase_steps,
)

PEAK = 0.1


def _optimizer(lrs=(1.0,)) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=1.0, momentum=0.9)


def _single_group_lrs(build, steps: int) -> list[float]:
    """The LRs of steps 1..steps of the schedule ``build(optimizer)`` on a one-group optimizer."""
    opt = _optimizer()
    return [lr for (lr,) in lrs_used(opt, build(opt), steps)]


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
    used = lrs_used(opt, KneeLRScheduler(opt, [0.2, 0.02], 0, 2, 4), 4)
    expected = [[0.2, 0.02], [0.2, 0.02], [0.1, 0.01], [0.0, 0.0]]
    np.testing.assert_allclose(used, expected, atol=1e-12)

    opt = _optimizer(lrs=(0.5, 0.05))  # peak None: each group's own lr is its peak
    used = lrs_used(opt, KneeLRScheduler(opt, None, 0, 2, 4), 3)
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
    uninterrupted = lrs_used(opt, KneeLRScheduler(opt, **args), 14)

    opt = _optimizer(lrs=(1.0, 1.0))
    sched = KneeLRScheduler(opt, **args)
    first = lrs_used(opt, sched, split_at)
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)

    opt = _optimizer(lrs=(1.0, 1.0))
    resumed = KneeLRScheduler(opt, **{**args, "decay": "linear"})  # overwritten by the state
    opt.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert first + lrs_used(opt, resumed, 14 - split_at) == uninterrupted


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
    uninterrupted = lrs_used(opt, sched, steps)
    opt, sched = fresh()
    first = lrs_used(opt, sched, split_at)
    state = (opt.state_dict(), sched.state_dict())
    opt, sched = fresh()
    opt.load_state_dict(state[0])
    sched.load_state_dict(state[1])
    np.testing.assert_allclose(first + lrs_used(opt, sched, steps - split_at), uninterrupted)


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
    return lrs_used(opt, sched, steps)


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
    reference = lrs_used(ref_opt, OneCycleLR(ref_opt, max_lr=PEAK, total_steps=T), T)
    assert used == pytest.approx([lr for (lr,) in reference], rel=1e-12)
    assert max(used) == pytest.approx(PEAK)


# --- min_lr_ratio: a floor at r * peak under every schedule's decay, never under a warmup ---------

PCT_START = 0.3  # make_schedule's onecycle_pct_start default


def _onecycle_lr(k, peak, t):
    """Step k of torch's OneCycleLR (defaults, cycle_momentum off), written out from its docs:
    epoch e = k - 1 anneals by cosine from peak/25 up to the peak over epochs 0 .. pct*T - 1,
    then from the peak down to peak/25/1e4 at epoch T - 1."""
    e, top, low = k - 1, PCT_START * t - 1, peak / 25
    if e <= top:
        start, end, pct = low, peak, e / top
    else:
        start, end, pct = peak, low / 1e4, (e - top) / (t - 1 - top)
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def _floored(name, k, peak, t, w, e, r, decay="linear"):
    """The k-th step's LR of schedule ``name`` with the floor r, written out from the spec."""
    if name == "onecycle":  # its warmup is its own first phase: the steps k <= pct * T
        lr = _onecycle_lr(k, peak, t)
        return lr if k <= PCT_START * t else r * peak + (1 - r) * lr
    if k <= w:
        return peak * k / w  # never floored
    if name == "constant":
        return peak
    if name == "step":
        return peak * (r + (1 - r) * 0.1 ** sum(k > round(m * t) for m in (0.5, 0.75)))
    explore, shape_name = (e, decay) if name == "knee" else (0, name)
    if k <= w + explore:
        return peak
    if k > t:
        return r * peak
    p = (k - w - explore) / (t - w - explore)
    shape = {"linear": 1 - p, "cosine": (1 + math.cos(math.pi * p)) / 2, "1-sqrt": 1 - math.sqrt(p)}
    return peak * (r + (1 - r) * shape[shape_name])


# (T, W, E, r): E is the Knee's only. W = 0 and W = 1, explore 1.0 (no exploit: the peak until
# T, then the floor), no explore, all warmup, a floor near the peak; for onecycle pct * T is
# 3, 3.6, 2.4, 2.1, 6, 1.5, 7.5 and 11.1 (whole, rounding down and rounding up).
FLOOR_CASES = [
    (10, 0, 5, 0.1),
    (10, 1, 3, 0.25),
    (12, 3, 4, 0.5),
    (8, 0, 8, 0.2),
    (7, 2, 0, 0.3),
    (20, 5, 5, 0.01),
    (5, 5, 0, 0.2),
    (25, 0, 0, 0.9),
    (37, 1, 12, 0.05),
]
SCHEDULES = [("knee", decay) for decay in DECAY_SHAPES] + [
    (name, "linear") for name in SCHEDULE_NAMES if name != "knee"
]


def _floor_lrs(name, t, w, e, r, steps, decay="linear", **kwargs):
    """Per-group LRs of steps 1..steps of ``make_schedule(name)`` with min_lr_ratio r."""
    assert phase_steps(t, e / t, w / t) == (w, e)
    opt = _optimizer(lrs=(1.0, 1.0))
    sched = make_schedule(
        name,
        opt,
        t,
        peak_lr=GROUP_PEAKS,
        explore_fraction=e / t,
        warmup_fraction=w / t,
        decay=decay,
        min_lr_ratio=r,
        **kwargs,
    )
    return lrs_used(opt, sched, steps)


@pytest.mark.filterwarnings("error")  # torch's step-order check included: no warning at all
@pytest.mark.parametrize(
    ("name", "decay", "t", "w", "e", "r"),
    [
        (name, decay, *case)
        for name, decay in SCHEDULES
        for case in FLOOR_CASES
        if not (name == "step" and case[1] / case[0] >= 0.5)  # step refuses a late milestone
    ],
)
def test_every_schedule_with_a_floor_follows_its_closed_form(name, decay, t, w, e, r):
    steps = t if name == "onecycle" else t + 3  # OneCycleLR refuses to step past its budget
    used = _floor_lrs(name, t, w, e, r, steps, decay)
    expected = [
        [_floored(name, k, peak, t, w, e, r, decay) for peak in GROUP_PEAKS]
        for k in range(1, steps + 1)
    ]
    assert _flat(used) == pytest.approx(_flat(expected), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("r", [0.1, 0.5])
@pytest.mark.parametrize(
    ("name", "t", "w"),
    [
        (name, t, w)
        for name in ("knee", "linear", "cosine", "step", "constant")
        for t, w in ((10, 0), (10, 1), (9, 3), (5, 5))
        if not (name == "step" and w == t)  # step refuses a warmup past its first milestone
    ],
)
def test_stepping_past_the_budget_stays_exactly_at_the_floor(name, t, w, r):
    used = _floor_lrs(name, t, w, 0, r, t + 50)
    floor = {"step": r + (1 - r) * 0.01, "constant": 1.0}.get(name, r)
    after = used[t:] if w == t else used[t - 1 :]  # from step T on (T + 1 when all warmup)
    assert after == [[pytest.approx(floor * peak, rel=1e-12) for peak in GROUP_PEAKS]] * len(after)
    if name in ("knee", "linear", "cosine"):  # r * peak itself, not a float near it
        assert after == [[r * peak for peak in GROUP_PEAKS]] * len(after)


@pytest.mark.parametrize("r", [0.0, -0.0])
@pytest.mark.parametrize("w", [0, 1, 2])
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_a_zero_floor_is_todays_schedule_exactly(name, w, r):
    def run(**floor):
        opt = _optimizer(lrs=(1.0, 1.0))
        sched = make_schedule(name, opt, T, peak_lr=GROUP_PEAKS, warmup_fraction=w / T, **floor)
        return type(sched), lrs_used(opt, sched, T if name == "onecycle" else T + 2)

    kind, used = run(min_lr_ratio=r)
    assert (kind, used) == run()  # the same torch scheduler, the same floats
    assert kind.__name__ != "FlooredLR"
    assert all(math.copysign(1.0, lr) == 1.0 for lr in _flat(used))  # no -0.0 past T


def _knee_lr_before_the_floor(k, peak, w, e, t, decay):
    """knee_lr as it was before min_lr_ratio, verbatim, to hold the r = 0 floats to it."""
    if k > t:
        return 0.0
    if k <= w:
        return peak * k / w
    if k <= w + e:
        return peak
    progress = (k - w - e) / (t - w - e)
    if decay == "linear":
        return peak * (1.0 - progress)
    if decay == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak * (1.0 - math.sqrt(progress))


@given(
    w=st.integers(0, 30),
    e=st.integers(0, 30),
    d=st.integers(0, 300),
    peak=st.floats(1e-6, 10.0),
    decay=st.sampled_from(DECAY_SHAPES),
)
def test_knee_lr_at_r_zero_is_bit_for_bit_the_unfloored_formula(w, e, d, peak, decay):
    t = w + e + d
    if t == 0:
        return
    for k in range(1, t + 3):
        assert knee_lr(k, peak, w, e, t, decay, 0.0) == _knee_lr_before_the_floor(
            k, peak, w, e, t, decay
        )


@given(
    w=st.integers(0, 20),
    e=st.integers(0, 20),
    d=st.integers(0, 40),
    r=st.floats(0.0, 0.99),
    decay=st.sampled_from(DECAY_SHAPES),
)
def test_a_floored_knee_rises_holds_then_falls_to_its_floor(w, e, d, r, decay):
    t = w + e + d
    if t == 0:
        return
    lrs = [knee_lr(k, PEAK, w, e, t, decay, r) for k in range(1, t + 3)]
    rising, after = lrs[:w], lrs[w:]
    assert rising == [PEAK * k / w for k in range(1, w + 1)]  # the warmup is not floored
    assert after == sorted(after, reverse=True)
    assert all(r * PEAK <= lr <= PEAK for lr in after)
    assert lrs[t:] == [r * PEAK] * 2  # steps T + 1 and T + 2


@pytest.mark.parametrize("split_at", [1, 2, 4, 11, 12])  # warmup, its last step, decay, T - 1, T
@pytest.mark.parametrize("warmup_fraction", [0.0, 0.1, 0.2])  # W = 0, 1, 2 of 12
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_a_floored_schedule_resumes_exactly_from_its_state_dict(name, warmup_fraction, split_at):
    t = 12

    def fresh():
        opt = _optimizer(lrs=(1.0, 1.0))
        sched = make_schedule(
            name,
            opt,
            t,
            peak_lr=GROUP_PEAKS,
            warmup_fraction=warmup_fraction,
            explore_fraction=0.25,
            decay="cosine",
            min_lr_ratio=0.25,
        )
        return opt, sched

    steps = t if name == "onecycle" else t + 3
    opt, sched = fresh()
    uninterrupted = lrs_used(opt, sched, steps)

    opt, sched = fresh()
    first = lrs_used(opt, sched, split_at)
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # as trainables.state reads a checkpoint back

    opt, sched = fresh()
    lrs_used(opt, sched, 3)  # a fresh run a few steps in: the state replaces all of it
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    assert first + lrs_used(opt, sched, steps - split_at) == uninterrupted


@pytest.mark.parametrize("t", [5, 10, 12, 25, 37])
@pytest.mark.parametrize("r", [0.05, 0.5])
def test_a_floored_onecycle_is_onecycle_annealing_to_the_floor(t, r):
    """With the floor from the step after OneCycleLR's first phase, flooring its anneal is torch's
    own OneCycleLR with a higher min LR: r * peak + (1 - r) * peak / 25 / 1e4 (each group's)."""
    used = _floor_lrs("onecycle", t, 0, 0, r, t)
    opt = _optimizer(lrs=(1.0, 1.0))
    reference = OneCycleLR(
        opt,
        max_lr=GROUP_PEAKS,
        total_steps=t,
        pct_start=PCT_START,
        cycle_momentum=False,
        final_div_factor=(1 / 25) / (r + (1 - r) / 25 / 1e4),
    )
    assert _flat(used) == pytest.approx(_flat(lrs_used(opt, reference, t)), rel=1e-12)


@pytest.mark.parametrize("r", [0.0, 0.3])
def test_a_floored_onecycle_refuses_to_step_past_its_budget_like_torch(r):
    opt = _optimizer()
    sched = make_schedule("onecycle", opt, 6, peak_lr=PEAK, min_lr_ratio=r)
    lrs_used(opt, sched, 6)
    opt.step()
    with pytest.raises(ValueError, match="Tried to step 7 times"):
        sched.step()


def test_a_floor_wraps_any_torch_scheduler_per_group():
    """FlooredLR over ExponentialLR, peaks from the groups' own lr, one step of warmup."""
    opt = _optimizer(lrs=(0.4, 0.04))
    sched = FlooredLR(
        opt, lambda shadow: ExponentialLR(shadow, gamma=0.5), min_lr_ratio=0.2, warmup_steps=1
    )
    used = lrs_used(opt, sched, 6)
    expected = [
        [peak if k == 1 else peak * (0.2 + 0.8 * 0.5 ** (k - 1)) for peak in (0.4, 0.04)]
        for k in range(1, 7)
    ]
    assert _flat(used) == pytest.approx(_flat(expected), rel=1e-12)
    assert sched.get_last_lr() == pytest.approx([0.4 * (0.2 + 0.8 / 64), 0.04 * (0.2 + 0.8 / 64)])


BAD_RATIOS = [-0.1, -1e-12, 1.0, 1.5, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("r", BAD_RATIOS)
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_an_invalid_min_lr_ratio_is_refused_naming_it(name, r):
    opt = _optimizer(lrs=(0.5,))
    with pytest.raises(ValueError, match=r"min_lr_ratio must lie in \[0, 1\)"):
        make_schedule(name, opt, T, peak_lr=PEAK, min_lr_ratio=r)
    assert opt.param_groups[0]["lr"] == 0.5  # refused before touching the optimizer


@pytest.mark.parametrize("r", BAD_RATIOS)
def test_the_knee_and_the_floor_refuse_an_invalid_min_lr_ratio(r):
    with pytest.raises(ValueError, match="min_lr_ratio"):
        KneeLRScheduler(_optimizer(), PEAK, 1, 2, 10, min_lr_ratio=r)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        KneeLRScheduler.from_fractions(_optimizer(), PEAK, 10, 0.5, min_lr_ratio=r)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        FlooredLR(_optimizer(), lambda shadow: ExponentialLR(shadow, 0.5), min_lr_ratio=r)


# Hugging Face's transformers.optimization.get_wsd_schedule, by hand (transformers is not a
# dependency): its LambdaLR factor at current_step c, with warmup W, stable S, decay D,
# warmup_type "linear" and num_cycles 0.5, is
#     c < W:              r + (1 - r) * c / W             (HF floors its warmup too)
#     c < W + S:          1
#     c < W + S + D:      r + (1 - r) * shape((c - W - S) / D),  shape as the Knee's
#     otherwise:          r
# HF's lambda at c = k is the Knee's k-th step (as a LambdaLR HF's k-th optimizer step runs
# c = k - 1, so the Knee is one step ahead: its step 1 is not at 0). They differ in the warmup
# only, when r > 0: the Knee's warmup is never floored.
def _hf_wsd_factor(c, w, s, d, decay, r):
    if c < w:
        progress = c / max(1, w)
        return max(0.0, progress * (1.0 - r) + r)
    if c < w + s:
        return 1.0
    if c < w + s + d:
        progress = (c - w - s) / max(1, d)
        if decay == "linear":
            factor = 1.0 - progress
        elif decay == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))
        else:  # "1-sqrt"
            factor = 1.0 - math.sqrt(progress)
        return max(0.0, factor * (1.0 - r) + r)
    return r


@pytest.mark.parametrize("decay", DECAY_SHAPES)
@pytest.mark.parametrize("r", [0.0, 0.1, 0.5])
@pytest.mark.parametrize(("w", "e", "d"), [(0, 5, 5), (2, 3, 5), (1, 0, 9), (3, 6, 1), (0, 0, 8)])
def test_the_knee_is_hugging_faces_wsd_with_its_min_lr_ratio(w, e, d, r, decay):
    t = w + e + d  # D >= 1: with D = 0 HF drops to r on step T itself, the Knee on step T + 1
    opt = _optimizer(lrs=(1.0, 1.0))
    used = lrs_used(opt, KneeLRScheduler(opt, GROUP_PEAKS, w, e, t, decay, min_lr_ratio=r), t + 3)
    for k, lrs in enumerate(used, start=1):
        factor = _hf_wsd_factor(k, w, e, d, decay, r) if k > w or r == 0 else k / w
        assert lrs == pytest.approx([peak * factor for peak in GROUP_PEAKS], rel=1e-12, abs=1e-15)
    if r > 0 and w > 1:  # where they part, steps k < W: HF's warmup is floored, the Knee's not
        assert _hf_wsd_factor(1, w, e, d, decay, r) == pytest.approx(r + (1 - r) / w)
        assert used[0] == pytest.approx([peak / w for peak in GROUP_PEAKS])
