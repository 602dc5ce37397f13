"""The study report: the verdict, the numbers behind it and the figures, as Markdown and HTML.

``write_report`` writes into one folder::

    report.md     the report, figures linked
    report.html   the same, self-contained (figures embedded): mail it, open it anywhere
    summary.csv   per condition and explore fraction: test_acc_* and sharpness_* summaries
    runs.csv      one row per trial, as load_runs returned it
    *.png         the figures

Both documents are rendered from one list of blocks, so they never disagree.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import plots
from analysis.robustness import (
    Verdict,
    conditions,
    describe,
    explore_sensitivity,
    explore_summary,
    knee_trials,
    robustness_verdict,
    sharpness_correlation,
)

METHOD = (
    "Method: at each peak LR, the gap between the best explore fraction's mean and the "
    "fraction's mean gets a 90% t interval, paired by seed when both ran the same seeds "
    "(Welch's otherwise): the two one-sided tests (TOST) at the 5% level. Robust there when "
    "the whole interval lies below the margin, not robust when it lies above, inconclusive "
    "when it straddles the margin or fewer than 3 seeds finished. Diverged and failed trials "
    "are counted, never averaged in; a diverged seed at the fraction makes it not robust."
)


@dataclass(frozen=True)
class _Figure:
    file: str
    alt: str


Block = str | pd.DataFrame | _Figure  # a paragraph ("## " starts a heading), a table, a figure


def write_report(
    runs: pd.DataFrame,
    out: Path,
    title: str,
    fraction: float = 0.5,
    margin: float = 0.002,
) -> Verdict:
    """Analyse ``runs`` (from :func:`analysis.runs.load_runs`) and write the report into ``out``
    (created if needed); returns the verdict."""
    out.mkdir(parents=True, exist_ok=True)
    verdict = robustness_verdict(runs, fraction=fraction, margin=margin)
    runs.to_csv(out / "runs.csv", index=False)
    _summary_table(runs).to_csv(out / "summary.csv", index=False)
    figures = {
        "accuracy_vs_explore.png": plots.explore_curve(runs, "test_acc", fraction),
        "sharpness_vs_explore.png": plots.explore_curve(runs, "sharpness", fraction),
        "sharpness_vs_accuracy.png": plots.sharpness_accuracy_scatter(runs),
        "accuracy_heatmap.png": plots.explore_heatmap(runs, "test_acc"),
    }
    has_sharpness = "sharpness" in runs and runs["sharpness"].notna().any()
    for name, figure in figures.items():
        if has_sharpness or "sharpness" not in name:
            figure.savefig(out / name, dpi=120)
    blocks = _blocks(runs, verdict, title, has_sharpness)
    (out / "report.md").write_text(_markdown(blocks))
    (out / "report.html").write_text(_html(blocks, title, out))
    return verdict


def verdict_line(verdict: Verdict) -> str:
    """The one line a terminal shows: ``verdict: robust: 50% explore is robust: ...``."""
    return f"verdict: {verdict.status.upper()}: {verdict.explanation}"


def _summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: accuracy and sharpness summaries side by side, prefixed by metric."""
    metrics = [m for m in ("test_acc", "sharpness") if m in runs]
    keys = [*conditions(knee_trials(runs)), "explore_fraction"]
    parts = [explore_summary(runs, m).set_index(keys).add_prefix(f"{m}_") for m in metrics]
    return pd.concat(parts, axis=1).reset_index()


def _blocks(runs: pd.DataFrame, verdict: Verdict, title: str, has_sharpness: bool) -> list[Block]:
    keys = conditions(knee_trials(runs))
    blocks: list[Block] = [
        f"# {title}",
        f"**Verdict: {verdict.status}.** {verdict.explanation}",
        f"Margin: {verdict.margin * 100:.2f} accuracy points. {METHOD}",
        _trial_counts(runs) + " " + _resolution(runs),
        verdict.table.pipe(_verdict_view, keys),
        "## Accuracy against explore fraction",
        _Figure("accuracy_vs_explore.png", "test accuracy vs explore fraction"),
        _cells(explore_summary(runs, "test_acc"), keys, 100, 2),
        "## How much the explore fraction matters",
        "Range: best minus worst explore fraction's mean test accuracy, in points.",
        _sensitivity_view(explore_sensitivity(runs), keys),
        _Figure("accuracy_heatmap.png", "mean accuracy by explore fraction and peak LR"),
    ]
    if has_sharpness:
        correlation = sharpness_correlation(runs).round({"rho": 3, "p_value": 4})
        blocks += [
            "## Sharpness against explore fraction",
            "Keskar sharpness of the final weights: the largest loss rise in a small box "
            "around them, in percent (lower is flatter).",
            _Figure("sharpness_vs_explore.png", "sharpness vs explore fraction"),
            _cells(explore_summary(runs, "sharpness"), keys, 1, 3),
            "## Sharpness and accuracy",
            "Spearman rank correlation of sharpness with test accuracy (negative: flatter "
            "minima generalise better).",
            correlation,
            _Figure("sharpness_vs_accuracy.png", "sharpness vs test accuracy"),
        ]
    unusable = runs[(runs["status"] != "FINISHED") | runs["diverged"]]
    if len(unusable):
        columns = [c for c in ("run_id", *keys, "explore_fraction", "seed", "status") if c in runs]
        blocks += [
            "## Trials left out of the means",
            unusable[[*columns, "diverged"]],
        ]
    blocks.append(
        "Files: summary.csv (per condition and fraction), runs.csv (one row per trial), "
        "the PNG figures."
    )
    return blocks


def _trial_counts(runs: pd.DataFrame) -> str:
    finished = ((runs["status"] == "FINISHED") & ~runs["diverged"]).sum()
    diverged = int(runs["diverged"].sum())
    other = len(runs) - finished - diverged
    return (
        f"{len(runs)} trials: {finished} finished, {diverged} diverged, "
        f"{other} failed, killed or still running."
    )


def _resolution(runs: pd.DataFrame) -> str:
    """How finely accuracy can move: a one-image step on a small test set matters for a margin."""
    values = np.unique(runs["test_acc"].dropna().round(6)) if "test_acc" in runs else []
    steps = np.diff(values)
    steps = steps[steps > 5e-6]
    if not len(steps):
        return ""
    step = steps.min()
    images = round(1 / step)
    if abs(images * step - 1) < 0.01:
        return f"Accuracy moves in steps of {step * 100:.3f} points (one of {images} test images)."
    return f"The smallest accuracy difference seen is {step * 100:.3f} points."


def _verdict_view(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    view = table[keys].copy()
    view["best fraction"] = table["best_fraction"].map(_percent)
    view["best mean (%)"] = (table["best_mean"] * 100).round(2)
    view["fraction mean (%)"] = (table["fraction_mean"] * 100).round(2)
    view["gap (points)"] = (table["gap"] * 100).round(3)
    view["90% interval"] = [
        f"{low * 100:.3f} to {high * 100:.3f}" if np.isfinite(low) else ""
        for low, high in zip(table["gap_low"], table["gap_high"], strict=True)
    ]
    view["seeds (best, fraction)"] = [
        f"{a}, {b}" for a, b in zip(table["n_best"], table["n_fraction"], strict=True)
    ]
    view["test"] = table["test"]
    view["decision"] = [
        f"{decision} ({reason})" if reason else decision
        for decision, reason in zip(table["decision"], table["reason"], strict=True)
    ]
    return view


def _cells(summary: pd.DataFrame, keys: list[str], scale: float, digits: int) -> pd.DataFrame:
    """One row per explore fraction, one column per condition: ``mean ± CI half-width (n)``."""

    def cell(row: pd.Series) -> str:
        if not row["n"]:
            return "no usable seeds"
        text = f"{row['mean'] * scale:.{digits}f}"
        if np.isfinite(row["ci_high"]):
            text += f" ± {(row['ci_high'] - row['mean']) * scale:.{digits}f}"
        text += f" (n={int(row['n'])}"
        if row["diverged"]:
            text += f", {int(row['diverged'])} diverged"
        return text + ")"

    labelled = summary.assign(
        condition=summary.apply(lambda r: describe(keys, [r[k] for k in keys]), axis=1),
        text=summary.apply(cell, axis=1),
        explore=summary["explore_fraction"].map(_percent),
    )
    table = labelled.pivot(index="explore", columns="condition", values="text")
    table = table.reindex(labelled.drop_duplicates("explore")["explore"])
    return table.rename_axis(columns=None).reset_index()


def _sensitivity_view(sensitivity: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    view = sensitivity[keys].copy()
    view["best"] = [
        f"{_percent(f)} ({m * 100:.2f}%)"
        for f, m in zip(sensitivity["best_fraction"], sensitivity["best_mean"], strict=True)
    ]
    view["worst"] = [
        f"{_percent(f)} ({m * 100:.2f}%)"
        for f, m in zip(sensitivity["worst_fraction"], sensitivity["worst_mean"], strict=True)
    ]
    view["range (points)"] = (sensitivity["range"] * 100).round(2)
    return view


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if np.isfinite(fraction) else ""


def _markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, pd.DataFrame):
            parts.append(block.to_markdown(index=False))
        elif isinstance(block, _Figure):
            parts.append(f"![{block.alt}]({block.file})")
        else:
            parts.append(block)
    return "\n\n".join(parts) + "\n"


def _html(blocks: list[Block], title: str, folder: Path) -> str:
    body = []
    for block in blocks:
        if isinstance(block, pd.DataFrame):
            body.append(block.to_html(index=False, border=0, na_rep=""))
        elif isinstance(block, _Figure):
            data = base64.b64encode((folder / block.file).read_bytes()).decode()
            body.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">')
        elif block.startswith("#"):
            level = len(block) - len(block.lstrip("#"))
            body.append(f"<h{level}>{html.escape(block.lstrip('# '))}</h{level}>")
        else:
            text = html.escape(block)
            if text.startswith("**"):  # the verdict: its first sentence in bold
                head, _, rest = text[2:].partition("**")
                text = f"<strong>{head}</strong>{rest}"
            body.append(f"<p>{text}</p>")
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f4f4f4; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
