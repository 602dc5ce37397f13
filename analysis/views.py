"""How the report's tables look: the verdict table, mean ± interval cells per explore
fraction, differences with their intervals, the budget table. Values in, display frames out;
no statistics are computed here. Every value is shown in its metric's unit
(:class:`analysis.wording.Unit`: an accuracy in percent and points, anything else as logged)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis.wording import Unit, describe, label, percent

CI_CELLS = "mean ± 95% CI half-width (n)"  # the explore tables' cells
STD_CELLS = "mean ± std (n)"  # the schedule and decay tables' cells
ACCURACY = Unit("test_acc")  # the default objective's


def verdict_view(table: pd.DataFrame, keys: list[str], unit: Unit = ACCURACY) -> pd.DataFrame:
    """A grid verdict's table, one row per condition (and arm, for a schedule or budget
    verdict): the rival that decided, how far ahead of the judged arm it is with its interval,
    the decision and why, and the seeds that would decide an open one."""
    keys = [*keys, *(["arm"] if "arm" in table else [])]
    view = table[keys].copy()
    if "best_fraction" in table:
        view["best fraction"] = table["best_fraction"].map(percent)
    view["compared with"] = table["versus"].map(_say)
    view[f"its mean ({unit.short})"] = unit.column(table["versus_mean"])
    view[f"judged mean ({unit.short})"] = unit.column(table["fraction_mean"])
    view[f"ahead of it ({unit.points})"] = unit.column(table["gap"], 3)
    view["interval"] = [
        f"{percent(level)}: {unit.value(low, 3)} to {unit.value(high, 3)}"
        if np.isfinite(low)
        else ""
        for low, high, level in zip(
            table["gap_low"], table["gap_high"], table["confidence"], strict=True
        )
    ]
    if "n_fraction" in table:
        view["seeds at the fraction"] = table["n_fraction"]
    view["test"] = table["test"]
    view["decision"] = [
        f"{decision} ({reason})" if reason else decision
        for decision, reason in zip(table["decision"], table["reason"], strict=True)
    ]
    needed = table["seeds_needed"]
    if needed.notna().any():
        view["seeds that would decide it"] = [
            "" if pd.isna(n) else f"about {int(n)}" for n in needed
        ]
    return headed(view, keys)


def _say(rival: object) -> str:
    if isinstance(rival, float):
        return percent(rival)
    return "" if rival is None or pd.isna(rival) else str(rival)


def headed(view: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The condition columns headed in words, as every table of the report heads them."""
    return view.rename(columns={k: label(k) for k in keys})


def difference_view(table: pd.DataFrame, name: str, unit: Unit = ACCURACY) -> pd.DataFrame:
    """Means as ``mean ± std (n)`` and a difference column with its interval, in ``unit``."""
    heading = {
        "knee_ahead": f"Knee ahead by ({unit.points})",
        "ahead_of_linear": f"ahead of linear ({unit.points})",
    }[name]
    dropped = [c for c in table if c.startswith(name)] + ["n", "mean", "std", "is_knee"]
    view = table.drop(columns=[c for c in dropped if c in table])
    view = view.rename(columns=label)  # the conditions, and schedule or decay
    view[f"{unit.label}: {STD_CELLS}"] = [
        f"{unit.value(m)} ± {unit.value(s)} (n={n})" if n > 1 else f"{unit.value(m)} (n={n})"
        for m, s, n in zip(table["mean"], table["std"], table["n"], strict=True)
    ]
    columns = [c for c in table if c.startswith(name) and c.endswith("_low")]
    for low_column in columns:
        base = low_column.removesuffix("_low")
        suffix = base.removeprefix(name)
        view[heading + suffix] = [
            "" if pd.isna(d) else _gap(d, lo, hi, unit)
            for d, lo, hi in zip(table[base], table[low_column], table[f"{base}_high"], strict=True)
        ]
    return view


def _gap(estimate: float, low: float, high: float, unit: Unit) -> str:
    """``+0.50 (+0.38 to +0.62)``."""
    return f"{unit.gap(estimate)} ({unit.gap(low)} to {unit.gap(high)})"


def budget_view(table: pd.DataFrame, unit: Unit = ACCURACY) -> pd.DataFrame:
    """:func:`analysis.comparisons.budget_table` for reading: each arm with its budget."""
    budget = "steps" if "knee_steps" in table else "epochs"
    ours, theirs = table[f"knee_{budget}"], table[f"baseline_{budget}"]
    skip = {*_BUDGET_COLUMNS, ours.name, theirs.name}
    keys = [c for c in table if c not in skip and not c.startswith("knee_ahead")]
    view = table[keys].copy()
    view["Knee"] = [f"{k} {e} {budget}" for k, e in zip(table["knee"], ours, strict=True)]
    view[f"Knee ({unit.short})"] = unit.column(table["knee_mean"])
    view["baseline"] = [f"{b} {e} {budget}" for b, e in zip(table["baseline"], theirs, strict=True)]
    view[f"baseline ({unit.short})"] = unit.column(table["baseline_mean"])
    view[f"Knee ahead by ({unit.points})"] = [
        _gap(d, lo, hi, unit)
        for d, lo, hi in zip(
            table["knee_ahead"], table["knee_ahead_low"], table["knee_ahead_high"], strict=True
        )
    ]
    view["decision"] = table["decision"]
    return headed(view, keys)


_BUDGET_COLUMNS = {"knee", "knee_mean", "baseline", "baseline_mean", "decision"}


def cells(
    summary: pd.DataFrame, keys: list[str], number: Callable[[float], str] = ACCURACY.value
) -> pd.DataFrame:
    """One row per explore fraction, one column per condition: ``mean ± CI half-width (n)``,
    each number as ``number`` shows it (a :class:`Unit`'s ``value``, by default an accuracy's).

    Pivoted on the fractions themselves, labelled afterwards: two fractions may share a label
    at low precision (0% and 0.2%), never a row."""

    def cell(row: pd.Series) -> str:
        if not row["n"]:
            return "no usable seeds"
        text = number(row["mean"])
        if pd.notna(row["ci_high"]) and np.isfinite(row["ci_high"]):
            text += f" ± {number(row['ci_high'] - row['mean'])}"
        text += f" (n={int(row['n'])}"
        if row["diverged"]:
            text += f", {int(row['diverged'])} diverged"
        return text + ")"

    table = summary.assign(text=summary.apply(cell, axis=1)).pivot(
        index="explore_fraction", columns=keys, values="text"
    )
    table = table.sort_index()
    columns = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    table.columns = [describe(keys, list(c)) for c in columns]
    table.index = table.index.map(percent)
    return table.rename_axis(f"explore (cells: {CI_CELLS})").reset_index()


def sensitivity_view(
    sensitivity: pd.DataFrame, keys: list[str], unit: Unit = ACCURACY
) -> pd.DataFrame:
    view = sensitivity[keys].copy()
    view["best"] = [
        f"{percent(f)} ({unit.with_unit(m)})"
        for f, m in zip(sensitivity["best_fraction"], sensitivity["best_mean"], strict=True)
    ]
    view["worst"] = [
        f"{percent(f)} ({unit.with_unit(m)})"
        for f, m in zip(sensitivity["worst_fraction"], sensitivity["worst_mean"], strict=True)
    ]
    view[f"range ({unit.points})"] = unit.column(sensitivity["range"])
    return headed(view, keys)
