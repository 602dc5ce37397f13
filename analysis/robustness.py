"""The verdicts: is 50% explore robust (a grid over explore fractions), and where a search
found its best points (an Optuna study); :func:`study_verdict` picks the one a study asked for,
including the schedule and budget verdicts of :mod:`analysis.baselines`.

Every grid verdict is a set of comparisons decided by :mod:`analysis.decide` under one
:class:`~analysis.policy.Policy`; the search verdict has its own words, since comparing the
best of two groups of points is a guide, not a test at a known level.

Explore verdict, at each condition (peak LR, and any other swept axis): 50% against every other
explore fraction the study swept. Robust there when it holds against every one of them; robust
overall when robust at every condition (an intersection-union test: a false "robust" is at most
``alpha`` likely). Not robust when any comparison of the study fails at the study-wide
Bonferroni level. Inconclusive otherwise: a swept fraction that has too few usable seeds at a
condition (crashed, stopped, missing) makes that condition inconclusive, never silently
dropped, and so does a fraction the study swept elsewhere but not there, and a condition of
the study's grid (a peak LR, say) where nothing ran at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from analysis.baselines import budget_verdict, schedule_verdict
from analysis.comparisons import is_search, search_summary
from analysis.decide import Comparison, compare, decide
from analysis.intervals import resolution
from analysis.policy import Policy
from analysis.summaries import explore_sensitivity, explore_summary, sharpness_correlation
from analysis.trials import (
    conditions,
    knee_trials,
    refuse_repeated_seeds,
    swept_budget,
    usable,
    with_outcome,
)
from analysis.verdict import (
    Verdict,
    comparison_table,
    decisions,
    describe_row,
    inconclusive,
    overall,
    plural,
    span,
)
from analysis.wording import amount, percent

# The fractions a study meant to run, or its whole grid ({"peak_lr": [...], ...}).
Swept = Sequence[float] | Mapping[str, Sequence] | None

__all__ = [  # the notebook API: import these from here
    "Verdict",
    "explore_sensitivity",
    "explore_summary",
    "robustness_verdict",
    "search_verdict",
    "sharpness_correlation",
    "study_verdict",
]


def robustness_verdict(
    runs: pd.DataFrame,
    fraction: float = 0.5,
    margin: float = 0.002,
    metric: str = "test_acc",
    min_seeds: int = 3,
    policy: Policy | None = None,
    swept: Swept = None,
) -> Verdict:
    """Is explore ``fraction`` within ``margin`` (in ``metric`` units: 0.002 = 0.2 accuracy
    points) of every other explore fraction at every condition? A ``policy`` replaces the
    other arguments. ``swept``: the fractions the study meant to run (default: those its runs
    have), so a fraction with no run at all is named too; or the study's whole grid,
    ``{"explore_fraction": [...], "peak_lr": [...], ...}``, so a condition where nothing ran
    is named as well. See the module docstring and :mod:`analysis.decide` for the test."""
    policy = policy or Policy(fraction=fraction, margin=margin, metric=metric, min_seeds=min_seeds)
    found = explore_comparisons(runs, policy, swept)
    if isinstance(found, Verdict):
        return found
    decide(found.comparisons, policy)
    return found.verdict()


@dataclass
class ExploreComparisons:
    """A grid study's explore comparisons before they are decided: :func:`decide` them (alone,
    or with other studies' in one family), then :meth:`verdict`."""

    trials: pd.DataFrame
    keys: list[str]
    comparisons: list[Comparison]
    problems: dict[tuple, list[str]]  # per condition, what keeps it from being robust
    policy: Policy

    def verdict(self) -> Verdict:
        """The explore verdict of the decided comparisons."""
        table = _condition_table(
            self.trials, self.keys, self.comparisons, self.problems, self.policy
        )
        decision = overall(table)
        explanation = _explain_explore(decision, table, self.keys, self.policy)
        return Verdict(
            decision, table, explanation, self.policy, "explore", comparison_table(self.comparisons)
        )


_NOT_AXES = ("explore_fraction", "seed", "schedule")  # a grid's keys that are no condition


def grid_of(swept: Swept) -> dict[str, list]:
    """``swept`` as a grid ``{param: values}``: a list of fractions is the explore axis alone."""
    if swept is None:
        return {}
    if isinstance(swept, Mapping):
        return {key: list(values) for key, values in swept.items()}
    return {"explore_fraction": list(swept)}


def explore_comparisons(
    runs: pd.DataFrame, policy: Policy, swept: Swept = None
) -> ExploreComparisons | Verdict:
    """50% against every other explore fraction at every condition, undecided; or the
    inconclusive verdict of a study with no Knee trials to compare."""
    trials = with_outcome(knee_trials(runs)).reset_index(drop=True)
    name = f"{percent(policy.fraction)} explore"
    if trials.empty:
        ran = ", ".join(sorted(runs["schedule"].unique())) if "schedule" in runs else ""
        return inconclusive(
            f"{name}: inconclusive, no Knee trials to judge ({name} was not run; schedules "
            f"run: {ran or 'none'}).",
            policy,
        )
    grid = grid_of(swept)
    keys = conditions(trials)
    keys += [k for k in grid if k not in (*keys, *_NOT_AXES) and k in trials and len(grid[k]) > 1]
    trials.attrs = {}  # pandas deep-copies attrs into every derived frame: thousands here
    refuse_repeated_seeds(trials[usable(trials, policy.metric)], [*keys, "explore_fraction"])
    floor = resolution(trials.loc[usable(trials, policy.metric), policy.metric])
    ran = trials["explore_fraction"].dropna().to_numpy(dtype=float)
    swept = np.unique(np.concatenate([ran, np.asarray(grid.get("explore_fraction", []), float)]))
    found: list[Comparison] = []
    problems: dict[tuple, list[str]] = {}
    cells = trials.groupby(keys, sort=True, dropna=False)
    for key, cell in cells:
        condition = dict(zip(keys, key, strict=True))
        at = np.isclose(cell["explore_fraction"], policy.fraction)
        ran = np.unique(cell["explore_fraction"])
        missing = [f for f in swept if not np.isclose(ran, f).any()]
        problems[key] = [
            *(["not swept"] if not at.any() else []),
            *([f"{percent(f)} not run here" for f in missing]),
            *(["no other explore fraction to compare"] if at.any() and len(ran) < 2 else []),
        ]
        if not at.any():
            continue
        for other in ran[~np.isclose(ran, policy.fraction)]:
            rival = cell[np.isclose(cell["explore_fraction"], other)]
            names = (percent(policy.fraction), percent(float(other)))
            found.append(compare(cell[at], rival, policy, floor, condition, names, float(other)))
    for key in _unrun(cells, keys, grid):
        problems[key] = ["nothing ran here"]
    return ExploreComparisons(trials, keys, found, problems, policy)


def _unrun(cells, keys: list[str], grid: Mapping[str, list]) -> list[tuple]:
    """The conditions of the grid (each key's values: the grid's, then those that ran) where no
    trial ran at all, such as the peak LR an interrupted study never reached. None without a
    grid over the conditions: which combinations a study meant to run is not known then."""
    if not set(keys) & set(grid):
        return []
    ran = [key for key, _ in cells]
    seen = {_comparable(key) for key in ran}  # NaN equal to NaN, as groupby has it
    values = [
        {_comparable((v,))[0]: v for v in [*grid.get(k, []), *(key[i] for key in ran)]}.values()
        for i, k in enumerate(keys)
    ]
    return [key for key in product(*values) if _comparable(key) not in seen]


def _comparable(key: tuple) -> tuple:
    return tuple(None if pd.isna(part) else part for part in key)


def _condition_table(
    trials: pd.DataFrame,
    keys: list[str],
    found: list[Comparison],
    problems: dict[tuple, list[str]],
    policy: Policy,
) -> pd.DataFrame:
    """The explore verdict's table: :func:`_decisions`, with the best fraction and the seeds at
    the judged fraction beside each condition."""
    table = decisions(keys, found, problems, policy)
    cells = {_comparable(k): cell for k, cell in trials.groupby(keys, sort=True, dropna=False)}
    extra = []
    for key in problems:  # the table's rows, in its order
        cell = cells.get(_comparable(key), trials.iloc[:0])
        good = cell[usable(cell, policy.metric)]
        means = good.groupby("explore_fraction")[policy.metric].mean() * policy.sign
        at = np.isclose(cell["explore_fraction"], policy.fraction)
        extra.append(
            {
                "best_fraction": float(means.idxmax()) if len(means) else np.nan,
                "n_fraction": int(usable(cell[at], policy.metric).sum()),
                "diverged": int(cell.loc[at, "diverged"].sum()),
            }
        )
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)


def _explain_explore(decision: str, table: pd.DataFrame, keys: list[str], policy: Policy) -> str:
    name = f"{percent(policy.fraction)} explore"
    limit = f"the {amount(policy.margin, policy.metric, '-point')} margin"
    if table.empty:
        return f"{name}: inconclusive, no usable trials."
    if decision == "robust":
        return (
            f"{name} is robust: at every {plural(keys, 1)} ({len(table)}) no other explore "
            f"fraction beats it by more than {policy.unit.said(policy.margin)} "
            f"({percent(policy.confidence)} upper bounds below the margin against each of "
            f"{span(table['comparisons'])} fractions; {span(table['n_fraction'])} seeds each), "
            f"and its share of diverged seeds exceeds none of theirs by "
            f"{percent(policy.divergence_margin)} or more ({percent(policy.confidence)} upper "
            "bounds)."
        )
    rows = table[table["decision"] == decision]
    where = " and ".join(describe_row(row, keys, policy) for _, row in rows.iterrows())
    if decision == "not robust":
        return f"{name} is not robust {where}."
    needed = rows["seeds_needed"].dropna()
    hint = ""
    if len(needed):
        hint = (
            f"; about {int(needed.max())} seeds per fraction would decide it at the spread "
            "seen, if the gaps stayed as they are"
        )
    return (
        f"{name}: inconclusive {where}{hint}; robust means no other fraction beats it by more "
        f"than {limit}."
    )


def search_verdict(runs: pd.DataFrame, policy: Policy | None = None) -> Verdict:
    """Where an Optuna search found its best points, in the search's own words: is the best
    point within ``policy.window`` of the fraction (in explore points) within the margin of the
    best point beyond it? Both are the best of their group, so this is a guide, not a test at a
    known level: near the best / short of the best / unclear, never robust or not robust.
    The points are chosen by the objective's validation counterpart where the runs have it and
    compared on the objective (:func:`analysis.comparisons.search_summary`).
    ``verdict.table`` holds the search's points, best first."""
    policy = policy or Policy()
    points, found = search_summary(runs, policy)
    name = f"{percent(policy.fraction)} explore"
    window = f"{policy.window * 100:.4g} points"
    if "gap" not in found:
        why = found.get("reason", "no usable trials")
        return Verdict("inconclusive", points, f"{name}: unclear, {why}.", policy, "search")
    decision = found["decision"]
    near = f"explore {percent(found['near_explore'])}, peak LR {found['near_peak_lr']:.3g}"
    outside = f"explore {percent(found['outside_explore'])}, peak LR {found['outside_peak_lr']:.3g}"
    lead = {
        "robust": f"the best point within {window} of {name} is near the best",
        "not robust": f"the best point within {window} of {name} is short of the best",
        "inconclusive": f"whether the best point within {window} of {name} is near the best "
        "is unclear",
    }[decision]
    metric, unit = policy.metric, policy.unit
    chosen = found["selected_by"]
    by = f" (points chosen by {chosen}, compared on {metric})" if chosen != metric else ""
    explanation = (
        f"Search (a guide, not a test): {lead}{by}: the best point beyond ({outside}) is ahead "
        f"of the best within ({near}) by {unit.said(found['gap'])} (90% interval "
        f"{amount(found['gap_low'], metric, '')} to {amount(found['gap_high'], metric, '')}), "
        f"against a {amount(policy.margin, metric, '-point')} margin"
        f"{'; ' + found['reason'] if found['reason'] else ''}."
    )
    return Verdict(decision, points, explanation, policy, "search")


def study_kind(runs: pd.DataFrame, policy: Policy, swept: Swept = None) -> str:
    """Which question a study asked: ``search`` (an Optuna study), ``explore`` (Knee at two or
    more explore fractions, counting the ``swept`` ones that never ran), ``budget`` (Knee over
    budgets), ``schedule`` (Knee at the fraction against baselines), else ``explore`` (whose
    verdict then says what is missing)."""
    if is_search(runs):
        return "search"
    knee = knee_trials(runs)
    fractions = np.concatenate(
        [knee["explore_fraction"].dropna(), np.asarray(grid_of(swept).get("explore_fraction", []))]
    )
    if len(np.unique(fractions)) > 1:  # an interrupted explore study is still one
        return "explore"
    if swept_budget(runs) and len(knee):
        return "budget"
    if (runs["schedule"] != "knee").any() and len(knee):
        return "schedule"
    return "explore"


def study_verdict(runs: pd.DataFrame, policy: Policy | None = None, swept: Swept = None) -> Verdict:
    """The verdict on the question the study asked (see :func:`study_kind`); ``swept`` as for
    :func:`robustness_verdict`."""
    policy = policy or Policy()
    kind = study_kind(runs, policy, swept)
    if kind == "explore":
        return robustness_verdict(runs, policy=policy, swept=swept)
    verdicts = {"search": search_verdict, "budget": budget_verdict, "schedule": schedule_verdict}
    return verdicts[kind](runs, policy)
