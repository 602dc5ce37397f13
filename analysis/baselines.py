"""Knee against the baseline schedules: does Knee at the policy's explore fraction match every
baseline (a schedule study), and does Knee at a shorter budget match the baselines at the full
one (a budget study)? The explore verdict's rules (:mod:`analysis.decide`), with the baselines
in the rivals' place: matches / falls short / inconclusive.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from analysis.decide import Comparison, compare, decide
from analysis.intervals import resolution
from analysis.policy import Policy
from analysis.trials import conditions, swept_budget, usable, with_outcome
from analysis.verdict import (
    STATUS_WORDS,
    Verdict,
    comparison_table,
    decisions,
    describe_row,
    inconclusive,
    overall,
    plural,
)
from analysis.wording import percent
from trainables.config import KNEE_ONLY_KEYS


def schedule_verdict(runs: pd.DataFrame, policy: Policy | None = None) -> Verdict:
    """Does Knee at the policy's explore fraction match every baseline schedule? At each
    condition, no baseline may beat it by more than the margin (the explore verdict's rules,
    the baselines in the rivals' place)."""
    policy = policy or Policy()
    arms, keys = _schedule_arms(runs, policy, exclude=("decay",))
    return _arms_verdict(arms, keys, policy, "schedule", _baselines)


def budget_verdict(runs: pd.DataFrame, policy: Policy | None = None) -> Verdict:
    """Does Knee at a shorter budget (``epochs``, or ``steps`` for a language model) match the
    baselines at the full (largest) budget, or Knee at the full budget when the study ran no
    baseline?"""
    policy = policy or Policy()
    budget = swept_budget(runs) or "epochs"
    arms, keys = _schedule_arms(runs, policy, exclude=("decay", budget))
    rivals = partial(_full_budget_rivals, budget=budget)
    return _arms_verdict(arms, keys, policy, "budget", rivals, budget)


def _schedule_arms(
    runs: pd.DataFrame, policy: Policy, exclude: tuple[str, ...]
) -> tuple[pd.DataFrame, list[str]]:
    """Every trial of Knee at the fraction and of every baseline, labelled by ``arm``; a
    baseline an older grid crossed with explore fractions counts once per seed."""
    keys = [k for k in conditions(runs) if k not in exclude and k not in KNEE_ONLY_KEYS]
    at = np.isclose(runs["explore_fraction"].astype(float), policy.fraction)
    knee = runs[(runs["schedule"] == "knee") & at]
    decays = "decay" in knee and knee["decay"].nunique() > 1
    label = f"Knee {percent(policy.fraction)}"
    knee = knee.assign(arm=label + (" " + knee["decay"].astype(str) if decays else ""))
    baselines = runs[runs["schedule"] != "knee"]
    varying = [k for k in conditions(runs) if k not in KNEE_ONLY_KEYS]
    baselines = baselines.drop_duplicates([*varying, "schedule", "seed"])
    arms = pd.concat([knee, baselines.assign(arm=baselines["schedule"])], ignore_index=True)
    return with_outcome(arms), keys


def _baselines(cell: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {arm: group for arm, group in cell[cell["schedule"] != "knee"].groupby("arm")}


def _full_budget_rivals(cell: pd.DataFrame, budget: str) -> dict:
    """Knee at each shorter ``budget`` against the baselines at the full one (or Knee there)."""
    full = cell[budget].max()
    at_full = cell[cell[budget] == full]
    baselines = at_full[at_full["schedule"] != "knee"]
    chosen = baselines if len(baselines) else at_full
    return {f"{arm} {full:g} {budget}": group for arm, group in chosen.groupby("arm")}


def _arms_verdict(
    arms: pd.DataFrame,
    keys: list[str],
    policy: Policy,
    kind: str,
    rivals_of: Callable[[pd.DataFrame], dict[str, pd.DataFrame]],
    budget: str | None = None,
) -> Verdict:
    """Knee's arms against their rivals at each condition, decided as the explore verdict;
    a budget study's arms are Knee at each shorter ``budget`` (the column its trials differ in)."""
    knee = arms[arms["schedule"] == "knee"]
    if knee.empty:
        return inconclusive(
            f"Knee at {percent(policy.fraction)} explore: inconclusive, no such trial.",
            policy,
            kind,
        )
    floor = resolution(arms.loc[usable(arms, policy.metric), policy.metric])
    found: list[Comparison] = []
    problems: dict[tuple, list[str]] = {}
    for key, cell in arms.groupby(keys, sort=True, dropna=False):
        rivals = rivals_of(cell)
        ours = cell[cell["schedule"] == "knee"]
        if budget:
            ours = ours[ours[budget] < cell[budget].max()]
        for arm_key, arm in ours.groupby(["arm", *([budget] if budget else [])]):
            arm_name = " ".join(_label(part) for part in np.atleast_1d(arm_key))
            arm_name += f" {budget}" if budget else ""
            condition = {**dict(zip(keys, key, strict=True)), "arm": arm_name}
            problems[(*key, arm_name)] = [] if rivals else ["no rival to compare"]
            for rival_name, rival in rivals.items():
                names = (arm_name, rival_name)
                found.append(compare(arm, rival, policy, floor, condition, names, rival_name))
    decide(found, policy)
    table = decisions([*keys, "arm"], found, problems, policy)
    decision = overall(table)
    explanation = _explain_arms(decision, table, keys, policy, kind)
    return Verdict(decision, table, explanation, policy, kind, comparison_table(found))


def _label(part: object) -> str:
    """An arm's name part: ``40`` for a budget pandas read as 40.0, the name itself otherwise."""
    return f"{part:g}" if isinstance(part, float) else str(part)


def _explain_arms(
    decision: str, table: pd.DataFrame, keys: list[str], policy: Policy, kind: str
) -> str:
    if table.empty:
        return f"Knee at {percent(policy.fraction)} explore: inconclusive, no usable trials."
    rivals = "every baseline at the full budget" if kind == "budget" else "every baseline"
    words = STATUS_WORDS[kind][decision]
    if decision == "robust":
        arms = " and ".join(dict.fromkeys(table["arm"]))
        count = len(table[keys].drop_duplicates())
        return (
            f"{arms} {words} {rivals}: at every {plural(keys, 1)} ({count}) none beats it by "
            f"more than {policy.unit.said(policy.margin)} ({percent(policy.confidence)} "
            "upper bounds below the margin)."
        )
    rows = table[table["decision"] == decision]
    parts = [
        f"{row['arm']}: {words} {describe_row(row, keys, policy)}" for _, row in rows.iterrows()
    ]
    return "; ".join(parts) + "."
