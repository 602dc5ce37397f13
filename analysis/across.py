"""Across studies: is 50% explore robust across models, datasets, budgets and workloads?

Each study keeps its own objective, margin and conditions (a language model's val loss beside
an image model's accuracy); what is combined is the decisions, so the answer holds its level:

* **Robust across them** only when every study is robust on its own. Each study's "robust" is
  already an intersection-union test at level ``alpha`` (every comparison's one-sided bound
  below its margin), and requiring all of them is one more intersection: a false "robust
  across these studies" stays at most ``alpha`` likely, with no correction.
* **Not robust across them** when some study is not robust at a Bonferroni level corrected
  over every test of every study (the sum of each study's family, :func:`decide.family_size`),
  so the chance of a false "not robust" anywhere stays at ``alpha`` however many studies ran.
  A study's own report corrects over its own tests only, so it can say "not robust" where this
  report, holding a wider family to the same level, says "inconclusive".
* **Inconclusive** otherwise. A study that cannot be compared (it did not sweep explore
  fractions, has no usable trial, or lacks its metric) is inconclusive here, never left out:
  leaving it out would let "robust across these studies" claim a study it never judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.decide import decide
from analysis.policy import Policy
from analysis.robustness import ExploreComparisons, Swept, explore_comparisons, study_kind
from analysis.runs import AnalysisError
from analysis.trials import usable
from analysis.verdict import Verdict, describe_row, inconclusive, overall
from analysis.wording import describe, percent

DESCRIBED_BY = ("dataset", "model", "trainable", "epochs", "steps")  # what sets studies apart
_OTHER_KINDS = {  # why a study that asked another question has no explore verdict to combine
    "search": "an Optuna search: its guide to where the best points lie is no test to combine",
    "schedule": "a schedule study: it did not sweep explore fractions",
    "budget": "a budget study: it did not sweep explore fractions",
}


@dataclass(frozen=True)
class StudyRuns:
    """One study to compare: its ``name`` (unique among them), its runs (from
    :func:`analysis.runs.load_runs`), the policy it is judged by (its own objective) and the
    explore fractions it swept or its whole grid (``None``: those its runs have; see
    :func:`analysis.robustness.robustness_verdict`)."""

    name: str
    runs: pd.DataFrame
    policy: Policy
    swept: Swept = None


@dataclass(frozen=True)
class AcrossVerdict:
    """The answer over several studies. ``decision`` is "robust", "not robust" or
    "inconclusive"; ``table`` has one row per study (its decision, the condition that decided
    it, the best fraction there, the largest rival's advantage over the judged fraction with
    its interval, the seeds); ``verdicts`` each study's verdict at this report's levels."""

    decision: str
    table: pd.DataFrame
    explanation: str
    fraction: float
    verdicts: dict[str, Verdict]


def across_verdict(studies: Sequence[StudyRuns]) -> AcrossVerdict:
    """Judge the explore fraction of ``studies`` (all the same fraction) together: see the
    module docstring. Raises :class:`AnalysisError` for fewer than two studies, repeated names
    or different fractions under test."""
    if len(studies) < 2:
        raise AnalysisError(f"a report across studies needs two or more, got {len(studies)}")
    names = [s.name for s in studies]
    if len(set(names)) < len(names):
        raise AnalysisError(f"two studies share a name: {', '.join(names)}")
    fractions = {s.policy.fraction for s in studies}
    if len(fractions) > 1:
        raise AnalysisError(f"the studies judge different explore fractions: {sorted(fractions)}")
    fraction = fractions.pop()
    found = {s.name: _comparisons(s) for s in studies}
    judged = {name: f for name, f in found.items() if isinstance(f, ExploreComparisons)}
    _decide_together(list(judged.values()))
    verdicts = {
        name: f.verdict() if isinstance(f, ExploreComparisons) else f for name, f in found.items()
    }
    table = pd.DataFrame(
        [_row(s, verdicts[s.name], getattr(found[s.name], "keys", [])) for s in studies]
    )
    decision = overall(table)
    return AcrossVerdict(decision, table, _explain(decision, table, fraction), fraction, verdicts)


def _decide_together(studies: list[ExploreComparisons]) -> None:
    """Decide every study's comparisons in one Bonferroni family, the sum of each study's own
    (Tarone's count is valid for the sum: at the wider level no study has more tests able to
    reject than its own count). A comparison not robust at its own study's level but not at
    the wider one is inconclusive here, never robust: the divergence rule ("a rival that
    diverges far more often cannot be the better setting") would otherwise take over once the
    wider interval no longer shows the rival ahead, and call robust what the study's own report
    calls not robust."""
    alone, family = {}, 0
    for study in studies:
        family += decide(study.comparisons, study.policy)  # its own family's size
        alone |= {id(c): c.decision for c in study.comparisons}
    for study in studies:
        decide(study.comparisons, study.policy, family=family)
        for c in study.comparisons:
            if alone[id(c)] == "not robust" and c.decision != "not robust":
                c.decision = "inconclusive"
                c.reason = (
                    "not robust at its own study's level, but not shown at the level corrected "
                    "over every study"
                )


def _comparisons(study: StudyRuns) -> ExploreComparisons | Verdict:
    """The study's undecided explore comparisons, or the inconclusive verdict of a study that
    cannot be compared."""
    runs, policy = study.runs, study.policy
    if policy.metric not in runs:
        return inconclusive(f"its runs have no {policy.metric} metric", policy)
    if not usable(runs, policy.metric).any():
        return inconclusive("no usable trials (all diverged, failed or stopped)", policy)
    kind = study_kind(runs, policy, study.swept)
    if kind != "explore":
        return inconclusive(_OTHER_KINDS[kind], policy)
    return explore_comparisons(runs, policy, study.swept)


def _row(study: StudyRuns, verdict: Verdict, keys: list[str]) -> dict:
    """A study's row: what it trained, its decision and the condition that decided it."""
    row = {
        "study": study.name,
        "trained": _described(study.runs),
        "metric": study.policy.metric,
        "margin": study.policy.margin,
        "decision": verdict.decision,
    }
    table = verdict.table
    if table.empty or "gap_high" not in table:
        return {**row, "why": f"({verdict.explanation.rstrip('.')})"}
    deciding = _deciding_row(table, verdict.decision)
    return {
        **row,
        "condition": describe(keys, [deciding[k] for k in keys]),
        "best_fraction": deciding["best_fraction"],
        "versus": deciding["versus"],
        "gap": deciding["gap"],
        "gap_low": deciding["gap_low"],
        "gap_high": deciding["gap_high"],
        "confidence": deciding["confidence"],
        "seeds": deciding["n_fraction"],
        "why": describe_row(deciding, keys, study.policy),
    }


def _deciding_row(table: pd.DataFrame, decision: str) -> pd.Series:
    """The condition that decided a study: its clearest failure when not robust, else its
    closest call (the highest upper bound of a rival's advantage) among the conditions with
    the study's decision."""
    rows = table[table["decision"] == decision]
    if decision == "not robust":
        return rows.loc[rows["gap_low"].fillna(-np.inf).idxmax()]
    return rows.loc[rows["gap_high"].fillna(np.inf).idxmax()]


def _described(runs: pd.DataFrame) -> str:
    """What sets a study apart, from the params its runs share: ``dataset digits, model cnn,
    epochs 12``."""
    shared = {k: runs[k].iloc[0] for k in DESCRIBED_BY if k in runs and runs[k].nunique() == 1}
    if shared.get("trainable") == "classifier":  # the built-in loop: no news
        del shared["trainable"]
    return describe(list(shared), list(shared.values()))


def _explain(decision: str, table: pd.DataFrame, fraction: float) -> str:
    name, count = f"{percent(fraction)} explore", len(table)
    by = {d: table.loc[table["decision"] == d, "study"].tolist() for d in table["decision"]}
    if decision == "robust":
        return (
            f"{name} is robust across the {count} studies: in each, no other explore fraction "
            "beats it by more than that study's margin at any condition, and its share of "
            "diverged seeds exceeds none of theirs by the divergence margin; each study must "
            'be robust on its own, so a false "robust across them" is no more likely than in '
            "one study."
        )
    if decision == "not robust":
        failing = table[table["decision"] == "not robust"]
        where = "; ".join(f"in {r['study']} {r['why']}" for _, r in failing.iterrows())
        return (
            f"{name} is not robust across these {count} studies: {where}, at a level "
            "corrected over every test of every study."
        )
    open_ = table[table["decision"] == "inconclusive"]
    where = "; ".join(f"in {r['study']} {r['why']}" for _, r in open_.iterrows())
    held = by.get("robust", [])
    also = f"robust in {', '.join(held)}; " if held else ""
    return (
        f"{name}: inconclusive across these {count} studies: {also}inconclusive {where}. "
        "Robust across them needs every study robust."
    )
