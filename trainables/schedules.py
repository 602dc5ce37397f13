"""Learning-rate schedules: the Knee (explore-exploit) schedule and torch baselines.

Every schedule here is stepped once per optimizer step, after ``optimizer.step()``, and is a real
``torch.optim.lr_scheduler.LRScheduler`` (state_dict, get_last_lr and checkpoints just work).
Each takes ``min_lr_ratio`` r (0 by default): its decay ends at the floor ``r * peak`` instead of 0,
as in Hugging Face's ``get_wsd_schedule(min_lr_ratio=...)``; warmups are never floored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    SequentialLR,
)

SCHEDULE_NAMES = ("knee", "cosine", "linear", "step", "onecycle", "constant")
# "step" divides the LR by 10 at half and at three quarters of the budget.
STEP_MILESTONES = (0.5, 0.75)
DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


def knee_lr(
    k: int,
    peak_lr: float,
    warmup_steps: int,
    explore_steps: int,
    total_steps: int,
    decay: str = "linear",
    min_lr_ratio: float = 0.0,
) -> float:
    """The learning rate of the k-th optimizer step (k = 1, 2, ...) of the Knee schedule.

    With W warmup, E explore, T total steps, D = T - W - E exploit steps and the floor ratio
    r = ``min_lr_ratio`` (0 <= r < 1):

        1.  k <= W              peak * k / W                            warmup (never floored)
        2.  W < k <= W + E      peak                                    explore
        3.  W + E < k <= T      peak * (r + (1 - r) * shape(p))         exploit, to r * peak at T
                                with p = (k - W - E) / D
        4.  k > T               r * peak                                (D = 0: peak until T)

    ``shape(p)`` is ``1 - p`` for "linear" (the paper), ``(1 + cos(pi p)) / 2`` for "cosine" and
    ``1 - sqrt(p)`` for "1-sqrt". With r = 0 (the default) the exploit decays to 0 and every step
    past T is 0. Arguments are assumed valid; the scheduler checks them.
    """
    if k > total_steps:
        return peak_lr * min_lr_ratio
    if k <= warmup_steps:
        return peak_lr * k / warmup_steps
    if k <= warmup_steps + explore_steps:
        return peak_lr
    progress = (k - warmup_steps - explore_steps) / (total_steps - warmup_steps - explore_steps)
    if decay == "linear":
        shape = 1.0 - progress
    elif decay == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - math.sqrt(progress)
    # r = 0 gives peak * shape, the very floats of the unfloored schedule (0.0 + 1.0 * x is x).
    return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * shape)


class KneeLRScheduler(LRScheduler):
    """The Knee schedule: warm up, explore at the peak LR, then decay to the floor.

    ``peak_lr`` is one float for every parameter group, a sequence with one peak per group, or
    None to use each group's own ``lr`` as its peak. Counts are optimizer steps. The exploit
    decays to ``min_lr_ratio * peak`` (each group's own peak; 0 by default) at ``total_steps``,
    and stepping past ``total_steps`` keeps the LR there. ``min_lr_ratio`` must lie in [0, 1).
    See :func:`knee_lr` for the exact sequence.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        peak_lr: float | Sequence[float] | None,
        warmup_steps: int,
        explore_steps: int,
        total_steps: int,
        decay: str = "linear",
        min_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.peak_lrs = _group_peaks(optimizer, peak_lr)
        _check_counts(warmup_steps, explore_steps, total_steps)
        if decay not in DECAY_SHAPES:
            raise ValueError(f"decay must be one of {DECAY_SHAPES}, got {decay!r}")
        self.min_lr_ratio = _check_min_lr_ratio(min_lr_ratio)
        self.warmup_steps = warmup_steps
        self.explore_steps = explore_steps
        self.total_steps = total_steps
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    @classmethod
    def from_fractions(
        cls,
        optimizer: Optimizer,
        peak_lr: float | Sequence[float] | None,
        total_steps: int,
        explore_fraction: float,
        warmup_fraction: float = 0.0,
        decay: str = "linear",
        min_lr_ratio: float = 0.0,
    ) -> KneeLRScheduler:
        """A Knee schedule whose warmup and explore phases are fractions of ``total_steps``."""
        warmup_steps, explore_steps = phase_steps(total_steps, explore_fraction, warmup_fraction)
        return cls(
            optimizer, peak_lr, warmup_steps, explore_steps, total_steps, decay, min_lr_ratio
        )

    def get_lr(self) -> list[float]:
        # torch counts scheduler steps from 0 at construction; the LR set now is the one the next
        # optimizer step, step number last_epoch + 1, will use.
        k = self.last_epoch + 1
        return [
            knee_lr(
                k,
                peak,
                self.warmup_steps,
                self.explore_steps,
                self.total_steps,
                self.decay,
                self.min_lr_ratio,
            )
            for peak in self.peak_lrs
        ]


class FlooredLR(LRScheduler):
    """Another schedule with a floor: ``r * peak + (1 - r) * inner_lr`` after its warmup.

    ``build(shadow)`` makes the unfloored schedule (any torch ``LRScheduler``) on a shadow
    optimizer that has one dummy parameter per group of ``optimizer``, each group starting at
    ``lr = initial_lr = peak`` (``peak_lr`` as for :class:`KneeLRScheduler`; None: each group's
    own ``initial_lr``, else ``lr``). The shadow never moves a parameter; it only carries the
    inner schedule's LRs. Step k of the real optimizer uses the inner schedule's k-th LR during
    the first ``warmup_steps`` steps, and ``r * peak + (1 - r) * inner_lr`` after them (r =
    ``min_lr_ratio``, in [0, 1); each group's own peak): a decay to 0 becomes a decay to
    ``r * peak``, and an LR at the peak stays at the peak. ``state_dict()`` holds the inner
    schedule's state and the shadow's LRs, so ``load_state_dict`` on a scheduler built the same
    way resumes the run exactly. Stepping raises where the inner schedule does (``OneCycleLR``
    past its budget).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        build: Callable[[Optimizer], LRScheduler],
        min_lr_ratio: float,
        warmup_steps: int = 0,
        peak_lr: float | Sequence[float] | None = None,
    ) -> None:
        self.min_lr_ratio = _check_min_lr_ratio(min_lr_ratio)
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.peak_lrs = _group_peaks(optimizer, peak_lr)
        self.warmup_steps = warmup_steps
        self._shadow = SGD(
            [
                {"params": [torch.nn.Parameter(torch.zeros(()))], "lr": peak, "initial_lr": peak}
                for peak in self.peak_lrs
            ]
        )
        self._inner = build(self._shadow)
        # No gradients, so nothing moves; it marks the shadow as stepped, which is what torch's
        # "lr_scheduler.step() before optimizer.step()" check looks for on the inner's first step.
        self._shadow.step()
        super().__init__(optimizer)

    def step(self) -> None:  # type: ignore[override]
        """Step the inner schedule, then set the real groups' LRs from it."""
        if self.last_epoch >= 0:  # not the initial step: that one reads the inner's first LR
            self._inner.step()
        super().step()

    def get_lr(self) -> list[float]:
        k = self.last_epoch + 1  # the optimizer step the LRs set now are for
        inner = [group["lr"] for group in self._shadow.param_groups]
        if k <= self.warmup_steps:
            return inner
        r = self.min_lr_ratio
        return [r * peak + (1.0 - r) * lr for peak, lr in zip(self.peak_lrs, inner, strict=True)]

    def state_dict(self) -> dict[str, Any]:
        state = {
            key: value
            for key, value in self.__dict__.items()
            if key not in ("optimizer", "_shadow", "_inner")
        }
        state["_shadow"] = self._shadow.state_dict()  # the inner's LRs: it steps from them
        state["_inner"] = self._inner.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self._shadow.load_state_dict(state.pop("_shadow"))
        self._inner.load_state_dict(state.pop("_inner"))
        self.__dict__.update(state)


def phase_steps(
    total_steps: int, explore_fraction: float, warmup_fraction: float = 0.0
) -> tuple[int, int]:
    """Warmup and explore step counts for fractions of a budget, rounded to the nearest step."""
    for name, value in (
        ("explore_fraction", explore_fraction),
        ("warmup_fraction", warmup_fraction),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    if warmup_fraction + explore_fraction > 1.0 + 1e-9:
        raise ValueError(
            f"warmup_fraction + explore_fraction must be <= 1, got "
            f"{warmup_fraction} + {explore_fraction}"
        )
    warmup_steps = math.floor(warmup_fraction * total_steps + 0.5)
    explore_steps = min(
        math.floor(explore_fraction * total_steps + 0.5), total_steps - warmup_steps
    )
    return warmup_steps, explore_steps


def make_schedule(
    name: str,
    optimizer: Optimizer,
    total_steps: int,
    peak_lr: float | None = None,
    explore_fraction: float = 0.5,
    warmup_fraction: float = 0.0,
    decay: str = "linear",
    step_milestones: Sequence[float] = STEP_MILESTONES,
    step_gamma: float = 0.1,
    onecycle_pct_start: float = 0.3,
    min_lr_ratio: float = 0.0,
) -> LRScheduler:
    """A per-optimizer-step schedule by name; every baseline is one of torch's own schedulers.

    ``peak_lr`` (default: each group's current ``lr``) is the highest LR of the schedule.
    ``explore_fraction`` and ``decay`` apply to "knee" only; ``step_milestones`` (fractions of the
    budget) and ``step_gamma`` to "step"; ``onecycle_pct_start`` to "onecycle", which has its own
    warmup. Every other schedule warms up over the first W = ``warmup_fraction`` of the T steps
    exactly like the Knee: step k <= W uses ``peak * k / W`` (W = 1 included). After it:

    * "linear" and "cosine" are the Knee with no explore phase: step k uses
      ``peak * shape((k - W) / (T - W))``, 0 at step T and after it.
    * "step" uses ``peak * gamma ** n``, n the number of milestones m with k > round(m * T): the
      LR drops on the first step past each milestone, counted over the whole budget.
    * "constant" uses ``peak``.
    * "onecycle" is torch's ``OneCycleLR`` with ``cycle_momentum=False``: it schedules the LR
      only, and the optimizer's momentum (SGD) or beta1 (AdamW) stays what was configured on
      every step; torch's default would cycle it between 0.85 and 0.95, so the comparison with
      the Knee would mix an LR schedule with a momentum schedule the run never recorded.

    ``min_lr_ratio`` r in [0, 1) (default 0) puts a floor under every schedule's decay, per group
    at ``r * peak``; warmups are never floored. The Knee decays to it (see :func:`knee_lr`). A
    baseline's step k after its warmup uses ``r * peak + (1 - r) * lr(k)``, lr(k) the unfloored
    LR above: "linear" and "cosine" reach ``r * peak`` at step T and stay there, "step" drops to
    ``peak * (r + (1 - r) * gamma ** n)``, and "constant" is unchanged (the very same schedule).
    "onecycle"'s warmup is OneCycleLR's own first phase, the steps k <= ``pct_start * T`` (its
    epochs up to ``pct_start * T - 1``: ``round(pct_start * T)`` steps when that is a whole
    number, one fewer when it rounds up); the floor applies from the step after it, so the
    anneal ends at ``r * peak + (1 - r) * min_lr``, and like OneCycleLR it refuses to step past
    its budget. With r > 0 a baseline other than "constant" is a :class:`FlooredLR` over the
    torch scheduler; with r = 0 it is that torch scheduler itself, exactly as without a floor.
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"schedule must be one of {SCHEDULE_NAMES}, got {name!r}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    min_lr_ratio = _check_min_lr_ratio(min_lr_ratio)
    if name == "knee":
        return KneeLRScheduler.from_fractions(
            optimizer,
            peak_lr,
            total_steps,
            explore_fraction,
            warmup_fraction,
            decay,
            min_lr_ratio,
        )
    peaks = _group_peaks(optimizer, peak_lr)
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["lr"] = peak
        group["initial_lr"] = peak  # the base LR of every torch scheduler below
    warmup_steps, _ = phase_steps(total_steps, 0.0, warmup_fraction)

    def build(target: Optimizer) -> LRScheduler:
        return _baseline(
            name,
            target,
            total_steps,
            peaks,
            warmup_steps,
            warmup_fraction,
            step_milestones,
            step_gamma,
            onecycle_pct_start,
        )

    if min_lr_ratio == 0 or name == "constant":  # a floor under the peak changes nothing
        return build(optimizer)
    if name == "onecycle":
        # OneCycleLR's first phase is its epochs e <= pct_start * T - 1, compared as it does:
        # steps k = e + 1 up to pct_start * T.
        warmup_steps = min(total_steps, max(0, math.floor(onecycle_pct_start * total_steps)))
    return FlooredLR(optimizer, build, min_lr_ratio, warmup_steps, peaks)


def _baseline(
    name: str,
    optimizer: Optimizer,
    total_steps: int,
    peaks: list[float],
    warmup_steps: int,
    warmup_fraction: float,
    step_milestones: Sequence[float],
    step_gamma: float,
    onecycle_pct_start: float,
) -> LRScheduler:
    """The unfloored baseline ``name`` on ``optimizer``, whose groups are at lr = initial_lr =
    their peaks."""
    if name == "onecycle":
        return OneCycleLR(
            optimizer,
            max_lr=peaks,
            total_steps=total_steps,
            pct_start=onecycle_pct_start,
            cycle_momentum=False,
        )
    if name == "cosine":
        # Not torch's CosineAnnealingLR: its epoch 0 is the peak, so it decays one step behind the
        # Knee, and running it one step ahead would need an epoch before step 1 when there is no
        # warmup (torch has no such start); past T_max it also climbs back towards the peak
        # instead of staying at 0. So the schedule is torch's LambdaLR over the project's own
        # Knee formula with no explore phase (warmup included): the Knee's cosine decay exactly.
        def cosine_factor(epoch: int) -> float:
            return knee_lr(epoch + 1, 1.0, warmup_steps, 0, total_steps, "cosine")

        return LambdaLR(optimizer, cosine_factor)

    # The schedule is a sequence of torch schedulers, each from its first optimizer step on (that
    # step is its epoch 0): the warmup from step 1, then the main schedule from step W + 1.
    pieces: list[tuple[int, LRScheduler]] = []
    if warmup_steps > 0:
        # Step k uses factor 1/W + (k-1)(1 - 1/W)/(W-1) = k/W, the Knee warmup; W = 1 included
        # (one step at the peak), so the main schedule always starts at step W + 1.
        warmup = LinearLR(
            optimizer,
            start_factor=1.0 / warmup_steps,
            end_factor=1.0,
            total_iters=warmup_steps - 1,
        )
        pieces.append((1, warmup))
    decay_steps = total_steps - warmup_steps
    if name == "linear":
        if decay_steps >= 2:
            # Step W + j uses 1 - j/D, one step ahead of LinearLR's usual start at 1: factor
            # (D-1)/D at step W + 1, down by 1/D a step, 1/D at step T - 1.
            decay = LinearLR(
                optimizer,
                start_factor=(decay_steps - 1) / decay_steps,
                end_factor=0.0,
                total_iters=decay_steps - 1,
            )
            pieces.append((warmup_steps + 1, decay))
        # From step T on (T + 1 when it is all warmup) the LR is 0. LinearLR's recursive update
        # would land its last step near, not at, 0 (about 1e-17, either sign) and cannot start
        # at 0 when D = 1, so the zero is a piece of its own.
        pieces.append((max(total_steps, warmup_steps + 1), LambdaLR(optimizer, _zero)))
    elif name == "step":
        if warmup_fraction >= min(step_milestones, default=1.0):
            raise ValueError(
                f"step milestones {list(step_milestones)} must come after the warmup "
                f"({warmup_fraction} of the steps)"
            )
        # Epoch round(m*T) - W is step round(m*T) + 1, the first step past the milestone. One just
        # past the warmup may round onto its last step: epoch 0, the step right after the warmup.
        milestones = [max(0, round(m * total_steps) - warmup_steps) for m in step_milestones]
        pieces.append((warmup_steps + 1, MultiStepLR(optimizer, milestones, gamma=step_gamma)))
    else:
        pieces.append((warmup_steps + 1, ConstantLR(optimizer, factor=1.0, total_iters=0)))
    if len(pieces) == 1:
        return pieces[0][1]
    # SequentialLR's milestone m hands over after m steps: the next piece starts at step m + 1.
    return SequentialLR(
        optimizer,
        [scheduler for _, scheduler in pieces],
        milestones=[first_step - 1 for first_step, _ in pieces[1:]],
    )


def _zero(_epoch: int) -> float:
    return 0.0


def _group_peaks(optimizer: Optimizer, peak_lr: float | Sequence[float] | None) -> list[float]:
    groups = optimizer.param_groups
    if peak_lr is None:
        peaks = [group.get("initial_lr", group["lr"]) for group in groups]
    elif isinstance(peak_lr, Sequence):
        peaks = [float(p) for p in peak_lr]
        if len(peaks) != len(groups):
            raise ValueError(
                f"peak_lr has {len(peaks)} values but the optimizer has {len(groups)} "
                "parameter groups"
            )
    else:
        peaks = [float(peak_lr)] * len(groups)
    if any(not peak > 0 for peak in peaks):
        raise ValueError(f"peak_lr must be positive, got {peak_lr}")
    return peaks


def _check_min_lr_ratio(min_lr_ratio: float) -> float:
    """``min_lr_ratio`` as a float in [0, 1) (-0.0 as 0.0, so r = 0 keeps a 0.0 LR past T)."""
    if not 0.0 <= min_lr_ratio < 1.0:  # NaN fails it too
        raise ValueError(f"min_lr_ratio must lie in [0, 1), got {min_lr_ratio}")
    return abs(float(min_lr_ratio))


def _check_counts(warmup_steps: int, explore_steps: int, total_steps: int) -> None:
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if explore_steps < 0:
        raise ValueError(f"explore_steps must be >= 0, got {explore_steps}")
    if warmup_steps + explore_steps > total_steps:
        raise ValueError(
            f"warmup_steps + explore_steps must be <= total_steps, got "
            f"{warmup_steps} + {explore_steps} > {total_steps}"
        )
