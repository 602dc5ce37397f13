"""One arm against one rival, and the decision over all such comparisons of a study.

An *arm* is the trials of one setting at one condition (Knee at 50% explore at peak LR 0.1;
cosine at 40 epochs), one trial per seed. Every verdict (explore fraction, schedule, budget) is
a set of comparisons of one arm against its rivals, decided by the same rules:

* **Accuracy** (or whatever the policy's metric is): the rival's advantage (``sign * (rival -
  arm)``, positive when the rival is better) gets a t interval over the usable seeds, paired by
  seed where the seeds allow (:func:`analysis.intervals.difference_interval`).
* **Divergence**: the arm's excess share of diverged seeds over the rival's, over the seeds
  that reached an outcome (finished or diverged), gets a Newcombe score interval.
* **Holds** (robust) against the rival when the advantage's upper bound is below the margin
  AND the excess divergence's upper bound is below the divergence margin, both one-sided at
  ``alpha``: an intersection-union test, so the claim over every rival and condition is at
  level ``alpha`` without correction. A rival that diverged so much more often than the arm
  (its excess over the arm's above the divergence margin) cannot be the better setting, and
  counts as held against even when too few of its seeds finished to compare accuracies: when
  the arm has enough usable seeds and none stopped early, and with every seed of unknown
  outcome (failed, stopped, still running) counted against the claim, as diverged at the arm
  and as calm at the rival.
* **Fails** (not robust) when the advantage's lower bound is above the margin, or the excess
  divergence's lower bound above the divergence margin, at a level Bonferroni-corrected over
  every test of the study (accuracy and divergence, every rival, every condition), so the
  study-wide chance of a false "not robust" is at most ``alpha`` however many conditions ran.
* Otherwise **open** (inconclusive), with the reason: too few usable seeds on either side (a
  rival that crashed is never dropped), an interval that straddles a margin, or seeds a
  scheduler stopped early. Stopped trials are the ones that looked worst at that moment, so
  the survivors are a flattering sample: stopped seeds in the arm forbid "holds", stopped seeds
  in the rival forbid "fails".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.intervals import Gap, difference_interval, rate_difference, seeds_needed
from analysis.policy import Policy
from analysis.trials import metric_outcome, outcome, usable
from analysis.wording import percent

DECISIONS = ("robust", "not robust", "inconclusive")


@dataclass
class Comparison:
    """An arm against one rival at one condition, and what it decided."""

    condition: dict
    rival: object  # the rival's explore fraction, or its arm label
    arm_name: str
    rival_name: str
    mine: pd.Series  # the arm's usable values by seed, times the policy's sign (higher: better)
    theirs: pd.Series
    ended_arm: tuple[int, int]  # (diverged, diverged + finished) seeds
    ended_rival: tuple[int, int]
    floor: float  # the metric's resolution, the floor under standard deviations
    sign: int  # the policy's: +1 when higher is better
    stopped_arm: int = 0
    stopped_rival: int = 0
    problems: list[str] = field(default_factory=list)  # why accuracies cannot be compared
    advantage: Gap | None = None  # the rival's advantage, at the policy's confidence
    excess: Gap | None = None  # the arm's excess divergence rate over the rival's
    rival_excess: Gap | None = None  # the rival's over the arm's, unknown outcomes against it
    strict_confidence: float = np.nan  # the study-wide Bonferroni level of "not robust"
    strict: Gap | None = None  # the advantage at that level
    strict_excess: Gap | None = None
    decision: str = "inconclusive"
    reason: str = ""
    seeds_needed: int | None = None

    @property
    def tests(self) -> int:
        """How many one-sided "not robust" tests this comparison makes."""
        return (self.advantage is not None) + (self.excess is not None)

    @property
    def n_arm(self) -> int:
        return len(self.mine)

    @property
    def n_rival(self) -> int:
        return len(self.theirs)

    @property
    def arm_mean(self) -> float:
        """The arm's mean metric, in the metric's own direction."""
        return float(self.mine.mean() * self.sign) if len(self.mine) else np.nan

    @property
    def rival_mean(self) -> float:
        return float(self.theirs.mean() * self.sign) if len(self.theirs) else np.nan


def compare(
    arm: pd.DataFrame,
    rival: pd.DataFrame,
    policy: Policy,
    floor: float,
    condition: dict,
    names: tuple[str, str],
    rival_key: object,
) -> Comparison:
    """The comparison of ``arm`` with ``rival`` (trials, one per seed) before the study-wide
    correction: :func:`decide` finishes it. ``names`` say the two arms in words."""
    metric = policy.metric
    found = Comparison(
        condition=condition,
        rival=rival_key,
        arm_name=names[0],
        rival_name=names[1],
        mine=arm[usable(arm, metric)].set_index("seed")[metric] * policy.sign,
        theirs=rival[usable(rival, metric)].set_index("seed")[metric] * policy.sign,
        ended_arm=_ended(arm, metric),
        ended_rival=_ended(rival, metric),
        floor=floor,
        sign=policy.sign,
        stopped_arm=_count(arm, "stopped"),
        stopped_rival=_count(rival, "stopped"),
    )
    for name, seeds, trials in ((names[0], found.mine, arm), (names[1], found.theirs, rival)):
        if len(seeds) < policy.min_seeds:
            found.problems.append(
                f"{len(seeds)} usable seed{'s' * (len(seeds) != 1)} at {name}, need "
                f"{policy.min_seeds}{_losses(trials, metric)}"
            )
    if not found.problems:
        found.advantage = difference_interval(
            found.theirs, found.mine, policy.confidence, floor, policy.min_seeds
        )
    if found.ended_arm[1] and found.ended_rival[1]:
        found.excess = rate_difference(*found.ended_arm, *found.ended_rival, policy.confidence)
        found.rival_excess = _rival_excess(arm, rival, metric, policy.confidence)
    else:
        found.problems.append("no seed reached an outcome on one side")
    return found


def decide(found: list[Comparison], policy: Policy, family: int | None = None) -> int:
    """Decide every comparison of a study in place, "not robust" Bonferroni-corrected over
    all of their tests that could reject; returns the number of tests corrected for.
    ``family``: correct for that many tests instead, when these comparisons are judged together
    with others (several studies at once: the sum of each one's :func:`family_size`)."""
    tests = family_size(found, policy) if family is None else family
    level = policy.strict_confidence(tests)
    for c in found:
        c.strict_confidence = level
        if c.advantage is not None:
            c.strict = difference_interval(c.theirs, c.mine, level, c.floor, policy.min_seeds)
        if c.excess is not None:
            c.strict_excess = rate_difference(*c.ended_arm, *c.ended_rival, level)
        c.decision, c.reason = _decision(c, policy)
        c.seeds_needed = _seeds_needed(c, policy)
    return tests


def family_size(found: list[Comparison], policy: Policy) -> int:
    """How many tests the Bonferroni correction of ``found`` divides by: every accuracy test,
    and the divergence tests that could reject at the corrected level. A divergence test over
    a few seeds cannot (with 3 seeds a side, not even 3 of 3 against 0 of 3 proves a 30%
    excess), and counting it would only cost the others power: Tarone's refinement of
    Bonferroni, which keeps its level because whether a test can reject depends on the seed
    counts alone. The smallest K such that the tests able to reject at level alpha / K number
    at most K."""
    accuracy = sum(c.advantage is not None for c in found)
    divergence = [c for c in found if c.excess is not None]
    for k in range(max(accuracy, 1), accuracy + len(divergence) + 1):
        level = policy.strict_confidence(k)
        if accuracy + sum(_can_reject(c, level, policy) for c in divergence) <= k:
            return k
    return accuracy + len(divergence)


def _can_reject(c: Comparison, level: float, policy: Policy) -> bool:
    """Whether the arm's excess divergence could be shown above the divergence margin at
    ``level`` with these seed counts: even every seed of the arm diverging against none of the
    rival's."""
    arm, rival = c.ended_arm[1], c.ended_rival[1]
    return rate_difference(arm, arm, 0, rival, level).low > policy.divergence_margin


def _decision(c: Comparison, policy: Policy) -> tuple[str, str]:
    margin, limit = policy.margin, policy.divergence_margin
    if c.strict is not None and c.strict.low > margin and not c.stopped_rival:
        return "not robust", "interval above the margin"
    if c.strict_excess is not None and c.strict_excess.low > limit:
        return "not robust", (
            f"{_diverged(c)}: diverges more often by over {percent(limit)} of seeds"
        )
    if (
        c.rival_excess is not None
        and c.rival_excess.low > limit
        and c.n_arm >= policy.min_seeds
        and not c.stopped_arm
    ):
        return "robust", (
            f"{_diverged(c)}: {c.rival_name} diverges more often by over {percent(limit)} of "
            "seeds, so it cannot be the better setting"
        )
    if c.problems:
        return "inconclusive", "; ".join(c.problems)
    reasons = []
    if c.advantage.high >= margin:
        reasons.append("interval straddles the margin")
    if c.excess.high >= limit:
        reasons.append(
            f"{_diverged(c)}: an excess of up to {percent(c.excess.high)} of seeds diverging "
            f"is not ruled out (robust needs it below {percent(limit)})"
        )
    if c.stopped_arm:
        reasons.append(
            f"the scheduler stopped {c.stopped_arm} seed{'s' * (c.stopped_arm != 1)} at "
            f"{c.arm_name} early (the survivors are a flattering sample)"
        )
    if reasons:
        return "inconclusive", "; ".join(reasons)
    return "robust", "interval below the margin"


def _seeds_needed(c: Comparison, policy: Policy) -> int | None:
    """Seeds a side that would decide an open accuracy comparison at the observed spread, if
    the observed advantage stayed as it is."""
    if c.decision != "inconclusive" or c.advantage is None:
        return None
    if c.advantage.estimate < policy.margin:
        return seeds_needed(c.advantage, policy.margin, policy.confidence)
    return seeds_needed(c.strict, policy.margin, c.strict_confidence)


def _diverged(c: Comparison) -> str:
    (k1, n1), (k2, n2) = c.ended_arm, c.ended_rival
    return f"{k1} of {n1} seeds diverged at {c.arm_name}, {k2} of {n2} at {c.rival_name}"


def _count(trials: pd.DataFrame, ending: str) -> int:
    return int((outcome(trials) == ending).sum())


def _ended(trials: pd.DataFrame, metric: str) -> tuple[int, int]:
    """(diverged, diverged + finished): the seeds with a known outcome, and the bad ones."""
    ending = metric_outcome(trials, metric)
    diverged = int((ending == "diverged").sum())
    return diverged, diverged + int((ending == "finished").sum())


def _rival_excess(arm: pd.DataFrame, rival: pd.DataFrame, metric: str, confidence: float) -> Gap:
    """The rival's excess share of diverged seeds over the arm's, over all their trials, each
    seed of unknown outcome (failed, stopped early, running) counted against "the rival
    diverges more": as diverged at the arm, as calm at the rival."""
    (arm_diverged, arm_known), (rival_diverged, _) = _ended(arm, metric), _ended(rival, metric)
    arm_worst = arm_diverged + len(arm) - arm_known
    return rate_difference(rival_diverged, len(rival), arm_worst, len(arm), confidence)


def _losses(trials: pd.DataFrame, metric: str) -> str:
    """What happened to the seeds that are not usable: `` (8 failed, 1 diverged)``."""
    ending = metric_outcome(trials, metric).value_counts()
    lost = [
        f"{ending[name]} {name}" for name in ("failed", "diverged", "stopped") if name in ending
    ]
    return f" ({', '.join(lost)})" if lost else ""
