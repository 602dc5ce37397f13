"""The rules a verdict is decided by, in one frozen object passed everywhere.

Every number a verdict depends on lives here once: the explore fraction under test, the margin
and its metric (with the metric's direction), the test level, the fewest seeds a comparison may
rest on, and the divergence margin. The report's method paragraph is rendered from it, so the
prose can never disagree with the test that ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.intervals import rate_difference
from analysis.wording import Unit, lower_is_better
from trainables.results import selection_metric

__all__ = ["Policy", "lower_is_better"]


@dataclass(frozen=True)
class Policy:
    """How "is ``fraction`` explore robust?" is decided.

    ``margin`` is in ``metric`` units (0.002 = 0.2 accuracy points): a rival fraction that is
    better by no more than that is as good. ``alpha`` is the one-sided level of every test (so
    intervals are ``1 - 2 alpha`` two-sided: 90%). ``min_seeds`` is the fewest usable seeds a
    fraction needs to be compared at all. ``divergence_margin`` is the excess share of diverged
    seeds that robust must rule out (0.3: 50% may not diverge on 30% more of its seeds than a
    rival). ``window`` is the search verdict's neighbourhood of ``fraction`` (0.1: within 10
    points of explore). ``mode`` is "max" or "min"; by default it follows the metric's name.
    """

    fraction: float = 0.5
    margin: float = 0.002
    metric: str = "test_acc"
    mode: str = ""
    alpha: float = 0.05
    min_seeds: int = 3
    divergence_margin: float = 0.3
    window: float = 0.1

    def __post_init__(self) -> None:
        if not self.mode:
            object.__setattr__(self, "mode", "min" if lower_is_better(self.metric) else "max")
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if not self.margin >= 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {self.alpha}")
        if self.min_seeds < 2:
            raise ValueError(f"min_seeds must be >= 2, got {self.min_seeds}")

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is: ``sign * (a - b)`` is how much better
        ``a`` is than ``b``."""
        return 1 if self.mode == "max" else -1

    @property
    def unit(self) -> Unit:
        """How the report shows the metric's values (percent for an accuracy)."""
        return Unit(self.metric, self.mode)

    @property
    def selection_metric(self) -> str:
        """The metric a search chooses its best points by, so that choosing never sees the
        test split: a test metric's validation counterpart (``test_acc`` -> ``val_acc``,
        ``test_loss`` -> ``val_loss``), any other metric itself. Used only where the runs have
        it (:func:`analysis.comparisons.selection_metric`)."""
        return selection_metric(self.metric)  # the rule ASHA and Optuna choose trials by

    @property
    def confidence(self) -> float:
        """The two-sided level of the intervals behind "robust": 90% at alpha 5%."""
        return 1 - 2 * self.alpha

    def strict_confidence(self, comparisons: int) -> float:
        """The two-sided level behind "not robust": Bonferroni over every comparison the
        study made, so the study-wide chance of a false "not robust" stays at ``alpha``."""
        return 1 - 2 * self.alpha / max(comparisons, 1)

    def seeds_for_divergence(self) -> int:
        """The fewest finished seeds at which no divergence at all rules out the divergence
        margin (a one-sided Wilson bound on 0 of n below it): fewer can never be robust."""
        n = self.min_seeds
        while (
            n < 10_000
            and rate_difference(0, n, 0, n, self.confidence).high >= self.divergence_margin
        ):
            n += 1
        return n
