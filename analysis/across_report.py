"""The report across studies: ``write_across_report`` writes into one folder::

    report.md           the verdict across the studies, one row per study, each study's verdict
    report.html         the same, self-contained
    studies.csv         the row per study, numbers unrounded (gaps in each study's own metric)
    explore_panels.png  each study's objective against explore fraction, a panel per study

The decisions are :func:`analysis.across.across_verdict`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.across import AcrossVerdict, StudyRuns, across_verdict
from analysis.plots import explore_panels
from analysis.render import Block, FigureBlock, clear_report, write_documents
from analysis.trials import knee_trials, usable
from analysis.verdict import say
from analysis.wording import percent

FILES = ("report.md", "report.html", "studies.csv", "explore_panels.png")


def write_across_report(
    studies: Sequence[StudyRuns], out: Path, title: str = "Knee study report across studies"
) -> AcrossVerdict:
    """Judge ``studies`` together (:func:`~analysis.across.across_verdict`) and write the
    report into ``out`` (created if needed; an earlier report's files replaced); returns the
    verdict."""
    verdict = across_verdict(studies)
    clear_report(out, FILES)
    verdict.table.to_csv(out / "studies.csv", index=False)
    fraction = percent(verdict.fraction)
    drawn = [
        (f"{s.name}: {verdict.verdicts[s.name].status}", s.runs, s.policy.metric, s.policy.mode)
        for s in studies
        if s.policy.metric in s.runs and usable(knee_trials(s.runs), s.policy.metric).any()
    ]
    figure: list[Block] = []
    if drawn:
        panels = explore_panels(drawn, verdict.fraction)
        figure.append(FigureBlock("explore_panels.png", f"{fraction} explore per study", panels))
    blocks: list[Block] = [
        f"# {title}",
        f"## Is {fraction} explore robust across these studies?",
        f"**Verdict across {len(studies)} studies: {verdict.decision}.** {verdict.explanation}",
        _method(verdict),
        _table(studies, verdict),
        *figure,
        "## Each study",
        *(f"**{name}: {v.status}.** {v.explanation}" for name, v in verdict.verdicts.items()),
        f"Files: studies.csv (one row per study){', explore_panels.png' if figure else ''}.",
    ]
    write_documents(blocks, out, title)
    return verdict


def _method(verdict: AcrossVerdict) -> str:
    return (
        "Each study is judged by its own objective and margin, as its own report is: "
        f"{percent(verdict.fraction)} explore against every other explore fraction it swept, "
        "at every condition. Robust across the studies needs every study robust (an "
        "intersection of their tests, so its level is each study's); not robust needs a study "
        "not robust at a level corrected over every test of every study, which can leave "
        "inconclusive here a study its own report calls not robust. A study that cannot be "
        "compared makes the answer inconclusive, never robust."
    )


def _table(studies: Sequence[StudyRuns], verdict: AcrossVerdict) -> pd.DataFrame:
    """The row per study, each number in its study's unit (a gap in points, or in val_loss)."""
    rows = []
    for study, (_, row) in zip(studies, verdict.table.iterrows(), strict=True):
        unit = study.policy.unit
        shown = {
            "study": row["study"],
            "trained": row["trained"],
            "objective": unit.name,
            "verdict": verdict.verdicts[study.name].status,
            "deciding condition": row.get("condition", ""),
            "best fraction": _percent(row.get("best_fraction")),
            "deciding rival": _rival(row.get("versus")),
            f"its advantage over {percent(verdict.fraction)}": _gap(unit, row.get("gap")),
            "interval": _interval(unit, row),
            "seeds": "" if pd.isna(row.get("seeds", np.nan)) else int(row["seeds"]),
        }
        rows.append(shown)
    return pd.DataFrame(rows)


def _percent(value) -> str:
    return percent(float(value)) if value is not None and not pd.isna(value) else ""


def _rival(value) -> str:
    return "" if value is None or pd.isna(value) else say(value)


def _gap(unit, value) -> str:
    return "" if value is None or pd.isna(value) else f"{unit.gap(value)} {unit.points}"


def _interval(unit, row: pd.Series) -> str:
    low, high, level = row.get("gap_low"), row.get("gap_high"), row.get("confidence")
    if low is None or pd.isna(low):
        return ""
    return f"{unit.gap(low)} to {unit.gap(high)} ({percent(level)})"
