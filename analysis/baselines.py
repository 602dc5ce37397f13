"""Knee against the baseline schedules: does Knee at the policy's explore fraction match every
baseline (a schedule study), and does Knee at a shorter budget match the baselines at the full
one (a budget study)? The explore verdict's rules (:mod:`analysis.decide`), with the baselines
in the rivals' place: matches / falls short / inconclusive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.decide import Comparison, compare, decide
from analysis.intervals import resolution
from analysis.policy import Policy
from analysis.trials import (
    conditions,
    refuse_repeated_seeds,
    swept_budget,
    usable,
    with_outcome,
)
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
    the baselines in the rivals' place). A baseline, or Knee, that ran in the study but not at
    a condition makes that condition inconclusive."""
    policy = policy or Policy()
    arms, keys = _schedule_arms(runs, policy, exclude=("decay",))
    knee = arms["schedule"] == "knee"
    ours, rivals = _names(arms[knee]), _names(arms[~knee])
    return _arms_verdict(arms, keys, policy, "schedule", ours, rivals)


def budget_verdict(runs: pd.DataFrame, policy: Policy | None = None) -> Verdict:
    """Does Knee at a shorter budget (``epochs``, or ``steps`` for a language model) match every
    baseline at the full budget (the largest of the study), or Knee at the full budget when the
    study ran no baseline? A rival missing at the full budget makes its comparisons
    inconclusive, never replaced by another."""
    policy = policy or Policy()
    budget = swept_budget(runs) or "epochs"
    arms, keys = _schedule_arms(runs, policy, exclude=("decay", budget))
    full = arms[budget].max()
    knee = arms["schedule"] == "knee"
    rival_arms = _names(arms[~knee]) or _names(arms[knee])
    shorter = arms[knee & (arms[budget] < full)]
    pairs = sorted(set(zip(shorter["arm"], shorter[budget], strict=True)))  # by arm, then budget
    ours = [f"{a} {_label(b)} {budget}" for a, b in pairs]
    rivals = [f"{a} {_label(full)} {budget}" for a in rival_arms]
    arms = arms.assign(
        arm=[f"{a} {_label(b)} {budget}" for a, b in zip(arms["arm"], arms[budget], strict=True)]
    )
    return _arms_verdict(arms, keys, policy, "budget", ours, rivals)


def _names(arms: pd.DataFrame) -> list[str]:
    return sorted(arms["arm"].unique())


def _schedule_arms(
    runs: pd.DataFrame, policy: Policy, exclude: tuple[str, ...]
) -> tuple[pd.DataFrame, list[str]]:
    """Every trial of Knee at the fraction and of every baseline, labelled by ``arm``; a
    baseline an older grid crossed with explore fractions counts once per seed. Two usable
    runs of one seed at one point are refused (:func:`analysis.trials.refuse_repeated_seeds`)."""
    keys = [k for k in conditions(runs) if k not in exclude and k not in KNEE_ONLY_KEYS]
    varying = [k for k in conditions(runs) if k not in KNEE_ONLY_KEYS]
    good = runs[usable(runs, policy.metric)]
    refuse_repeated_seeds(good, [*conditions(runs), "schedule", "explore_fraction"])
    at = np.isclose(runs["explore_fraction"].astype(float), policy.fraction)
    knee = runs[(runs["schedule"] == "knee") & at]
    decays = "decay" in knee and knee["decay"].nunique() > 1
    label = f"Knee {percent(policy.fraction)}"
    if decays:  # an older run that logged no decay is an arm of its own, never dropped
        label += " " + knee["decay"].astype(object).where(knee["decay"].notna(), "(no decay)")
    knee = knee.assign(arm=label)
    baselines = _one_copy_per_seed(runs[runs["schedule"] != "knee"], varying, policy)
    arms = pd.concat([knee, baselines.assign(arm=baselines["schedule"])], ignore_index=True)
    return with_outcome(arms), keys


def _one_copy_per_seed(baselines: pd.DataFrame, keys: list[str], policy: Policy) -> pd.DataFrame:
    """One run per baseline and seed where an older grid ran a copy at each explore fraction:
    the copy most in the baseline's favour (a usable one, the best of those), so that choosing
    among copies can never flatter Knee."""
    metric = baselines.get(policy.metric, pd.Series(np.nan, index=baselines.index))
    ranked = baselines.assign(
        _usable=usable(baselines, policy.metric).to_numpy(),
        _score=pd.to_numeric(metric, errors="coerce") * policy.sign,
    ).sort_values(["_usable", "_score"], ascending=False, kind="stable", na_position="last")
    kept = ranked.drop_duplicates([*keys, "schedule", "seed"])
    return kept.drop(columns=["_usable", "_score"]).sort_index()


def _arms_verdict(
    arms: pd.DataFrame,
    keys: list[str],
    policy: Policy,
    kind: str,
    ours: list[str],
    rivals: list[str],
) -> Verdict:
    """Each of Knee's arms (``ours``, by ``arm`` label) against each of ``rivals`` at every
    condition, decided as the explore verdict; an arm that ran in the study but not at a
    condition leaves that condition inconclusive."""
    if not (arms["schedule"] == "knee").any():
        return inconclusive(
            f"Knee at {percent(policy.fraction)} explore: inconclusive, no such trial.",
            policy,
            kind,
        )
    floor = resolution(arms.loc[usable(arms, policy.metric), policy.metric])
    found: list[Comparison] = []
    problems: dict[tuple, list[str]] = {}
    for key, cell in arms.groupby(keys, sort=True, dropna=False):
        for arm_name in ours:
            arm = cell[cell["arm"] == arm_name]
            condition = {**dict(zip(keys, key, strict=True)), "arm": arm_name}
            trouble = problems[(*key, arm_name)] = []
            if arm.empty:
                trouble.append(f"{arm_name} not run here")
                continue
            if not rivals:
                trouble.append("no rival to compare")
            for rival_name in rivals:
                rival = cell[cell["arm"] == rival_name]
                if rival.empty:
                    trouble.append(f"{rival_name} not run here")
                    continue
                names = (arm_name, rival_name)
                found.append(compare(arm, rival, policy, floor, condition, names, rival_name))
    decide(found, policy)
    table = decisions([*keys, "arm"], found, problems, policy)
    decision = overall(table)
    explanation = _explain_arms(decision, table, keys, policy, kind)
    return Verdict(decision, table, explanation, policy, kind, comparison_table(found))


def _label(part: object) -> str:
    """An arm's name part: ``40`` for a budget pandas read as 40.0, the name itself otherwise."""
    if isinstance(part, float) and part.is_integer():
        return str(int(part))
    return str(part)


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
