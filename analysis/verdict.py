"""A verdict: the object a study's question is answered with, and how a study's decided
comparisons (:mod:`analysis.decide`) become its table, one row per condition, and its words."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.decide import Comparison
from analysis.policy import Policy
from analysis.wording import amount, describe, percent

STATUS_WORDS = {  # what each kind of study calls robust / not robust / inconclusive
    "explore": {"robust": "robust", "not robust": "not robust", "inconclusive": "inconclusive"},
    "schedule": {"robust": "matches", "not robust": "falls short", "inconclusive": "inconclusive"},
    "budget": {"robust": "matches", "not robust": "falls short", "inconclusive": "inconclusive"},
    "search": {
        "robust": "near the best",
        "not robust": "short of the best",
        "inconclusive": "unclear",
    },
}


@dataclass(frozen=True)
class Verdict:
    """The answer to a study's question and the numbers behind it.

    ``decision`` is "robust", "not robust" or "inconclusive"; ``status`` the same in the words
    of the study's kind (``explore``: the same; ``schedule`` and ``budget``: matches / falls
    short / inconclusive; ``search``: near the best / short of the best / unclear). ``table``
    has one row per condition, ``comparisons`` one row per comparison behind them."""

    decision: str
    table: pd.DataFrame
    explanation: str
    policy: Policy
    kind: str = "explore"
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def status(self) -> str:
        return STATUS_WORDS[self.kind][self.decision]

    @property
    def fraction(self) -> float:
        return self.policy.fraction

    @property
    def margin(self) -> float:
        return self.policy.margin

    @property
    def metric(self) -> str:
        return self.policy.metric


def decisions(
    keys: list[str], found: list[Comparison], problems: dict[tuple, list[str]], policy: Policy
) -> pd.DataFrame:
    """One row per condition (the keys of ``problems``, in order): its decision, and the
    comparison behind it (the clearest loss when not robust, else the closest call)."""
    rows = []
    for key, trouble in problems.items():
        condition = dict(zip(keys, key, strict=True))
        mine = [c for c in found if c.condition == condition]
        row = {
            **condition,
            "comparisons": len(mine),
            **_comparison_columns(_deciding(mine), policy.confidence),
        }
        failing = [c for c in mine if c.decision == "not robust"]
        open_ = [c for c in mine if c.decision == "inconclusive"]
        if failing:
            row.update(_comparison_columns(_deciding(failing), policy.confidence))
        elif trouble or open_ or not mine:
            reasons = [*trouble, *(f"against {c.rival_name}: {c.reason}" for c in open_)]
            row.update(decision="inconclusive", reason="; ".join(reasons))
        else:
            row["decision"] = "robust"
        rows.append(row)
    return pd.DataFrame(rows)


def _deciding(found: list[Comparison]) -> Comparison | None:
    """The comparison a condition's row shows: the clearest loss among failing ones, else the
    closest call (the highest upper bound of a rival's advantage)."""
    if not found:
        return None
    if all(c.decision == "not robust" for c in found):
        return max(found, key=lambda c: c.strict.low if c.strict else -np.inf)
    judged = [c for c in found if c.advantage is not None]
    if not judged:
        return found[0]
    return max(judged, key=lambda c: c.advantage.high)


def _comparison_columns(c: Comparison | None, confidence: float) -> dict:
    """A comparison as the columns of a verdict's table (gap: the rival's advantage)."""
    empty = {
        **dict.fromkeys(("versus", "versus_mean", "fraction_mean", "gap", "gap_low"), np.nan),
        **dict.fromkeys(("gap_high", "confidence", "excess_high"), np.nan),
        "test": "",
        "seeds_needed": pd.NA,
        "decision": "inconclusive",
        "reason": "",
    }
    if c is None:
        return empty
    failing = c.decision == "not robust" and c.strict is not None
    gap, level = (c.strict, c.strict_confidence) if failing else (c.advantage, confidence)
    return {
        **empty,
        "versus": c.rival,
        "versus_mean": c.rival_mean,
        "fraction_mean": c.arm_mean,
        "gap": gap.estimate if gap is not None else np.nan,
        "gap_low": gap.low if gap is not None else np.nan,
        "gap_high": gap.high if gap is not None else np.nan,
        "confidence": level,
        "excess_high": c.excess.high if c.excess is not None else np.nan,
        "test": gap.test if gap is not None else "",
        "seeds_needed": c.seeds_needed if c.seeds_needed is not None else pd.NA,
        "decision": c.decision,
        "reason": c.reason,
    }


def comparison_table(found: list[Comparison]) -> pd.DataFrame:
    """Every comparison of the study, one row each, with both levels' bounds."""
    return pd.DataFrame(
        [
            {
                **c.condition,
                "rival": c.rival,
                "n_arm": c.n_arm,
                "n_rival": c.n_rival,
                "arm_mean": c.arm_mean,
                "rival_mean": c.rival_mean,
                "advantage": c.advantage.estimate if c.advantage else np.nan,
                "advantage_high": c.advantage.high if c.advantage else np.nan,
                "strict_low": c.strict.low if c.strict else np.nan,
                "strict_confidence": c.strict_confidence,
                "diverged_arm": c.ended_arm[0],
                "ended_arm": c.ended_arm[1],
                "diverged_rival": c.ended_rival[0],
                "ended_rival": c.ended_rival[1],
                "excess_high": c.excess.high if c.excess else np.nan,
                "strict_excess_low": c.strict_excess.low if c.strict_excess else np.nan,
                "stopped_arm": c.stopped_arm,
                "stopped_rival": c.stopped_rival,
                "decision": c.decision,
                "reason": c.reason,
                "seeds_needed": c.seeds_needed,
            }
            for c in found
        ]
    )


def overall(table: pd.DataFrame) -> str:
    if table.empty:
        return "inconclusive"
    if (table["decision"] == "not robust").any():
        return "not robust"
    return "robust" if (table["decision"] == "robust").all() else "inconclusive"


def inconclusive(explanation: str, policy: Policy, kind: str = "explore") -> Verdict:
    return Verdict("inconclusive", pd.DataFrame(), explanation, policy, kind)


def describe_row(row: pd.Series, keys: list[str], policy: Policy) -> str:
    at = f"at {describe(keys, [row[k] for k in keys])}"
    if np.isnan(row["gap_low"]) or row["reason"] != GAP_REASONS.get(row["decision"]):
        return f"{at} ({row['reason']})"
    return (
        f"{at} ({say(row['versus'])} ahead of it by {policy.unit.said(row['gap'])}, "
        f"{percent(row['confidence'])} interval {amount(row['gap_low'], policy.metric, '')} to "
        f"{amount(row['gap_high'], policy.metric, '')})"
    )


GAP_REASONS = {
    "robust": "interval below the margin",
    "not robust": "interval above the margin",
    "inconclusive": "interval straddles the margin",
}


def say(rival: object) -> str:
    """An explore fraction as a percentage; any other rival (a schedule) by its name."""
    return percent(rival) if isinstance(rival, float) else str(rival)


def span(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return f"{low}" if low == high else f"{low}-{high}"


def plural(keys: list[str], count: int = 2) -> str:
    label = "peak LR" if keys == ["peak_lr"] else "condition"
    return label if count == 1 else f"{label}s"
