"""The study report: the verdict, the numbers behind it and the figures, as Markdown and HTML.

``write_report`` writes into one folder::

    report.md     the report, figures linked
    report.html   the same, self-contained (figures embedded): mail it, open it anywhere
    summary.csv   per condition and explore fraction, for the policy's metric (test_acc_*
                  by default, val_loss_* for that objective) and sharpness_*: n, mean, std,
                  ci_low, ci_high, best and worst seed (best_seed, worst_seed) and their
                  values (best, worst), diverged, stopped, failed; the best seed is the
                  one best in the policy's mode (the highest accuracy, the lowest loss) and
                  the lowest sharpness (flatter is better)
    runs.csv      one row per trial, as load_runs returned it
    *.png         the figures

Both documents are rendered from one list of blocks (analysis/render.py), so they never
disagree. Every verdict, margin, table and caption is in the policy's metric and its unit
(:class:`analysis.wording.Unit`); the figures keep their file names whatever the metric.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis import comparisons, method, sections, views
from analysis.intervals import resolution
from analysis.policy import Policy
from analysis.render import Block, FigureBlock, clear_report, write_documents
from analysis.robustness import Swept, Verdict, study_verdict
from analysis.runs import AnalysisError
from analysis.summaries import explore_summary
from analysis.trials import conditions, counts, knee_trials, outcome, usable
from analysis.wording import Unit, label, percent

FIGURES = (
    "accuracy_vs_explore.png",
    "accuracy_heatmap.png",
    "search_landscape.png",
    "sharpness_vs_explore.png",
    "sharpness_vs_accuracy.png",
    "learning_curves.png",
    "distributions.png",
)
FILES = ("report.md", "report.html", "summary.csv", "runs.csv", *FIGURES)  # all a report writes
HEADLINES = {  # the question each kind of study asked, as the report's first section says it
    "explore": "Is {fraction} explore robust?",
    "schedule": "Does Knee at {fraction} explore match the baseline schedules?",
    "budget": "Does Knee at a shorter budget match the full one?",
    "search": "Where did the search find its best points?",
}


def write_report(
    runs: pd.DataFrame,
    out: Path,
    title: str,
    fraction: float = 0.5,
    margin: float = 0.002,
    history: pd.DataFrame | None = None,
    policy: Policy | None = None,
    swept: Swept = None,
    next_step: Callable[[Verdict], str | None] | None = None,
) -> Verdict:
    """Analyse ``runs`` (from :func:`analysis.runs.load_runs`) and write the report into ``out``
    (created if needed); returns the verdict. A ``policy`` replaces ``fraction`` and ``margin``.
    ``next_step(verdict)``: a closing paragraph saying what to do next (the command that grows
    an inconclusive study), or None.

    ``history`` (from :func:`analysis.runs.load_history`, at least
    ``curves.history_metrics(policy.metric)`` of the trials ``curves.needed(runs,
    metric=policy.metric)`` names) adds the learning curves to a grid study's report;
    without it (or with fewer than two epochs in it) that section is left out. ``swept``: the
    explore fractions the study meant to run, or its whole grid (``{"peak_lr": [...], ...}``),
    so a fraction or a condition with no run at all is named by the verdict.

    The headline answers the question the study asked (:func:`analysis.robustness.study_kind`):
    a grid over explore fractions gets the explore verdict, a schedule study Knee against each
    baseline, a budget study Knee at the shorter budgets against the full one, and a search
    (trials tagged ``search=optuna``) where its best points lie, in its own words. Sections on
    schedules, budgets and decay shapes appear when the study swept them. A study where no
    trial can be used (all diverged, failed or stopped) gets a short inconclusive report; runs
    without the policy's metric raise :class:`~analysis.runs.AnalysisError` before anything is
    written.
    """
    policy = policy or Policy(fraction=fraction, margin=margin)
    metric = policy.metric
    if metric not in runs:
        raise AnalysisError(f"the runs have no {metric} metric; metrics found: {_metrics(runs)}")
    # A figure or table this report does not write must not survive from the last one.
    clear_report(out, FILES)
    if not usable(runs, metric).any():
        return _write_inconclusive(runs, out, title, policy)
    verdict = study_verdict(runs, policy, swept)
    search = verdict.kind == "search"
    # Explore-fraction views need a usable Knee trial: a study of baselines alone has none.
    knee = usable(knee_trials(runs), metric).any()
    runs.to_csv(out / "runs.csv", index=False)
    if knee:
        _summary_table(runs, policy).to_csv(out / "summary.csv", index=False)
    if search:
        chosen = comparisons.selection_metric(runs, policy)
        explain = [method.search_method(policy, chosen)]
        explore = sections.search_section(runs, verdict)
    else:
        explain = [method.grid_method(policy, verdict.kind)]
        explore = sections.explore_sections(runs, verdict) if knee else []
        if verdict.kind in ("schedule", "budget"):
            keys = [c for c in conditions(runs) if c in verdict.table]
            explore = [views.verdict_view(verdict.table, keys, policy.unit), *explore]
    stopped = counts(runs)["stopped"]
    blocks = [
        f"# {title}",
        f"## {HEADLINES[verdict.kind].format(fraction=percent(policy.fraction))}",
        f"**{_lead(verdict)}: {verdict.status}.** {verdict.explanation}",
        " ".join([method.margin_line(policy), *explain]),
        " ".join(filter(None, [_trial_counts(runs), _resolution(runs, metric)])),
        *([method.asha_note(stopped)] if stopped else []),
        *explore,
        *(sections.curve_sections(runs, history, policy) if knee and not search else []),
        *sections.comparison_sections(runs, policy, verdict.kind),
        *sections.sharpness_sections(runs, policy.fraction, explore=knee and not search),
        *_left_out_section(runs),
    ]
    files = [
        *(["summary.csv (per condition and explore fraction)"] if knee else []),
        "runs.csv (one row per trial)",
        *(["the PNG figures"] if any(isinstance(b, FigureBlock) for b in blocks) else []),
    ]
    step = next_step(verdict) if next_step else None
    blocks += [step] if step else []
    blocks.append(f"Files: {', '.join(files)}.")
    write_documents(blocks, out, title)
    return verdict


def _lead(verdict: Verdict) -> str:
    """``Verdict``, or for a search (a guide, not a test) ``Search result``."""
    return "Search result" if verdict.kind == "search" else "Verdict"


def _write_inconclusive(runs: pd.DataFrame, out: Path, title: str, policy: Policy) -> Verdict:
    """The report of a study with no usable trial: the counts and the trials, no figures."""
    explanation = f"{percent(policy.fraction)} explore: inconclusive, no usable trials."
    verdict = Verdict("inconclusive", pd.DataFrame(), explanation, policy)
    runs.to_csv(out / "runs.csv", index=False)
    blocks: list[Block] = [
        f"# {title}",
        f"**Verdict: {verdict.status}.** {verdict.explanation}",
        _trial_counts(runs) + " No trial finished its budget: there is nothing to average.",
        *_left_out_section(runs),
        "Files: runs.csv (one row per trial).",
    ]
    write_documents(blocks, out, title)
    return verdict


def _metrics(runs: pd.DataFrame) -> str:
    """The metric columns of ``runs`` (everything but the params and the run's own columns)."""
    params = set(runs.attrs.get("params", ()))
    own = ("run_id", "status", "diverged", "search", "stopped", "stopped_at_epoch")
    found = [c for c in runs if c not in params and c not in own]
    return ", ".join(sorted(found)) or "none"


def verdict_line(verdict: Verdict) -> str:
    """The one line a terminal shows: ``verdict: ROBUST: 50% explore is robust: ...``; a
    search's is ``search: NEAR THE BEST: ...`` (a guide, never the test's words)."""
    lead = "search" if verdict.kind == "search" else "verdict"
    return f"{lead}: {verdict.status.upper()}: {verdict.explanation}"


def _summary_table(runs: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """summary.csv: the policy's metric (best in its mode) and sharpness summaries side by
    side, each column prefixed by its metric."""
    metrics = [m for m in dict.fromkeys((policy.metric, "sharpness")) if m in runs]
    keys = [*conditions(knee_trials(runs)), "explore_fraction"]
    parts = [
        explore_summary(runs, m, mode=policy.mode if m == policy.metric else "")
        .set_index(keys)
        .add_prefix(f"{m}_")
        for m in metrics
    ]
    return pd.concat(parts, axis=1).reset_index()


def _left_out_section(runs: pd.DataFrame) -> list[Block]:
    ending = outcome(runs)
    left_out = ending != "finished"
    if not left_out.any():  # assigned to no rows, pandas would take the Series' rows instead
        return []
    unusable = runs[left_out].assign(outcome=ending[left_out])
    keys = conditions(knee_trials(runs))
    columns = [c for c in ("run_id", "schedule", *keys, "explore_fraction", "seed") if c in runs]
    return [
        "## Trials left out of the means",
        unusable[[*columns, "status", "outcome"]].rename(columns=label),
    ]


def _trial_counts(runs: pd.DataFrame) -> str:
    found = counts(runs)
    return (
        f"{len(runs)} trials: {found['finished']} finished, {found['diverged']} diverged, "
        f"{found['stopped']} stopped early by the scheduler, {found['failed']} failed, killed "
        "or still running."
    )


def _resolution(runs: pd.DataFrame, metric: str) -> str:
    """How finely an accuracy can move: a one-image step on a small split matters for a margin.
    Nothing for any other metric (a loss has no such step)."""
    unit = Unit(metric)
    if not unit.percent:
        return ""
    step = resolution(runs[metric])
    if not step:
        return ""
    images = round(1 / step)
    split = unit.name.removesuffix("accuracy").strip()
    if abs(images * step - 1) < 0.01:
        seen = f"one of {images} {split} images".replace("  ", " ")
        return f"Accuracy moves in steps of {step * 100:.3f} points ({seen})."
    return f"The smallest accuracy difference seen is {step * 100:.3f} points."
