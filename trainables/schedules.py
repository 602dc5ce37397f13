"""Learning-rate schedules: the Knee (explore-exploit) schedule and torch baselines.

Every schedule here is stepped once per optimizer step, after ``optimizer.step()``, and is a real
``torch.optim.lr_scheduler.LRScheduler`` (state_dict, get_last_lr and checkpoints just work).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
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
) -> float:
    """The learning rate of the k-th optimizer step (k = 1, 2, ...) of the Knee schedule.

    With W warmup, E explore, T total steps and D = T - W - E exploit steps:

        1.  k <= W              peak * k / W                      warmup
        2.  W < k <= W + E      peak                              explore
        3.  W + E < k <= T      peak * shape((k - W - E) / D)     exploit, to 0 at k = T
        4.  k > T               0                                 (D = 0: peak until T)

    ``shape(p)`` is ``1 - p`` for "linear" (the paper), ``(1 + cos(pi p)) / 2`` for "cosine" and
    ``1 - sqrt(p)`` for "1-sqrt". Arguments are assumed valid; the scheduler checks them.
    """
    if k > total_steps:
        return 0.0
    if k <= warmup_steps:
        return peak_lr * k / warmup_steps
    if k <= warmup_steps + explore_steps:
        return peak_lr
    progress = (k - warmup_steps - explore_steps) / (total_steps - warmup_steps - explore_steps)
    if decay == "linear":
        return peak_lr * (1.0 - progress)
    if decay == "cosine":
        return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak_lr * (1.0 - math.sqrt(progress))


class KneeLRScheduler(LRScheduler):
    """The Knee schedule: warm up, explore at the peak LR, then decay to zero.

    ``peak_lr`` is one float for every parameter group, a sequence with one peak per group, or
    None to use each group's own ``lr`` as its peak. Counts are optimizer steps. Stepping past
    ``total_steps`` keeps the LR at 0. See :func:`knee_lr` for the exact sequence.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        peak_lr: float | Sequence[float] | None,
        warmup_steps: int,
        explore_steps: int,
        total_steps: int,
        decay: str = "linear",
        last_epoch: int = -1,
    ) -> None:
        self.peak_lrs = _group_peaks(optimizer, peak_lr)
        _check_counts(warmup_steps, explore_steps, total_steps)
        if decay not in DECAY_SHAPES:
            raise ValueError(f"decay must be one of {DECAY_SHAPES}, got {decay!r}")
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
    ) -> KneeLRScheduler:
        """A Knee schedule whose warmup and explore phases are fractions of ``total_steps``."""
        warmup_steps, explore_steps = phase_steps(total_steps, explore_fraction, warmup_fraction)
        return cls(optimizer, peak_lr, warmup_steps, explore_steps, total_steps, decay)

    def get_lr(self) -> list[float]:
        # torch counts scheduler steps from 0 at construction; the LR set now is the one the next
        # optimizer step, step number last_epoch + 1, will use.
        k = self.last_epoch + 1
        return [
            knee_lr(k, peak, self.warmup_steps, self.explore_steps, self.total_steps, self.decay)
            for peak in self.peak_lrs
        ]


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
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"schedule must be one of {SCHEDULE_NAMES}, got {name!r}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if name == "knee":
        return KneeLRScheduler.from_fractions(
            optimizer, peak_lr, total_steps, explore_fraction, warmup_fraction, decay
        )
    peaks = _group_peaks(optimizer, peak_lr)
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["lr"] = peak
        group["initial_lr"] = peak  # the base LR of every torch scheduler below
    if name == "onecycle":
        return OneCycleLR(
            optimizer,
            max_lr=peaks,
            total_steps=total_steps,
            pct_start=onecycle_pct_start,
            cycle_momentum=False,
        )

    warmup_steps, _ = phase_steps(total_steps, 0.0, warmup_fraction)
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
