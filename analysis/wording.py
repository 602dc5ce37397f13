"""How reports and figures name things: explore fractions as percentages, params as words
(``peak LR``), a condition as ``peak LR 0.05, decay cosine``, and a metric's values in its
unit (:class:`Unit`: the one place that knows accuracies are shown in percent)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainables.results import lower_is_better  # the one rule, the trials' ASHA/Optuna's too

SPLITS = {"test": "test", "val": "validation", "train": "training"}  # a metric name's prefix


def percent(fraction: float) -> str:
    """0.5 -> 50%, 0.002 -> 0.2%, 0.975 -> 97.5%: as many digits as tell fractions apart."""
    return f"{fraction * 100:.4g}%" if np.isfinite(fraction) else ""


def describe(keys: list[str], values) -> str:
    """A condition in words: ``peak LR 0.05, decay cosine``."""
    return ", ".join(
        f"{label(k)} {f'{v:g}' if isinstance(v, float) else v}"
        for k, v in zip(keys, values, strict=True)
    )


def label(key: str) -> str:
    """A param in words, as the report's tables head their columns: ``peak_lr`` -> ``peak LR``."""
    return {"peak_lr": "peak LR"}.get(key, key.replace("_", " "))


def amount(value: float, metric: str, unit: str = " points") -> str:
    """A value or gap of ``metric`` in words: accuracies are fractions, said in points
    (0.002 -> 0.20 points); anything else as it is, to 4 significant digits."""
    if Unit(metric).percent:
        return f"{round(value * 100, 2) or 0.0:.2f}{unit}"  # never "-0.00"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Unit:
    """How the report shows ``metric``'s values. Accuracies (names ending in ``acc``) are
    fractions, shown in percent and their differences in points (x100, 2 decimals unless
    told); anything else (a loss in nats, perplexity, a custom metric) as logged, to 4
    significant digits, under its own name. ``mode`` ("max" or "min", by default from the
    name: :func:`lower_is_better`) says which way is better."""

    metric: str
    mode: str = ""

    def __post_init__(self) -> None:
        if not self.mode:
            object.__setattr__(self, "mode", "min" if lower_is_better(self.metric) else "max")

    @property
    def percent(self) -> bool:
        return self.metric.endswith("acc")

    @property
    def scale(self) -> float:
        """What a value is multiplied by to be shown: 100 for an accuracy, else 1."""
        return 100.0 if self.percent else 1.0

    @property
    def better(self) -> str:
        return "higher is better" if self.mode == "max" else "lower is better"

    @property
    def name(self) -> str:
        """``test accuracy``, ``validation accuracy``; any other metric by its own name."""
        if not self.percent:
            return self.metric
        split = self.metric.removesuffix("acc").rstrip("_")
        return f"{SPLITS.get(split, split.replace('_', ' '))} accuracy".strip()

    @property
    def opening(self) -> str:
        """The name opening a sentence: ``Test accuracy``; a metric's own name is never
        capitalised (``val_loss``)."""
        return self.name.capitalize() if self.percent else self.metric

    @property
    def title(self) -> str:
        """What a section heading calls it: ``Accuracy``, or the metric's name."""
        return "Accuracy" if self.percent else self.metric

    @property
    def label(self) -> str:
        """An axis label or column heading: ``test accuracy (%)``, ``val_loss (lower is
        better)``; the direction said whenever it is not an accuracy's usual one."""
        if self.percent:
            return f"{self.name} (%)" if self.mode == "max" else f"{self.name} (%, {self.better})"
        return f"{self.metric} ({self.better})"

    @property
    def short(self) -> str:
        """What a mean is in, for ``its mean (%)``: ``%``, or the metric's name."""
        return "%" if self.percent else self.metric

    @property
    def points(self) -> str:
        """What a difference is in, for ``ahead by (points)``: ``points``, or the metric."""
        return "points" if self.percent else self.metric

    def value(self, value: float, digits: int = 2) -> str:
        """A value or a spread as a table shows it: ``98.33`` (percent), ``0.4123``."""
        if self.percent:
            return f"{round(value * 100, digits) or 0.0:.{digits}f}"  # never "-0.00"
        return _significant(value)

    def gap(self, value: float, digits: int = 2) -> str:
        """A difference with its sign: ``+0.50`` (points), ``-0.0123``."""
        if self.percent:
            return f"{round(value * 100, digits) or 0.0:+.{digits}f}"
        return _significant(value, "+")

    def with_unit(self, value: float) -> str:
        """A value in a sentence: ``98.33%``, ``0.4123``."""
        return self.value(value) + ("%" if self.percent else "")

    def said(self, value: float) -> str:
        """A difference in a sentence: ``0.20 points``, ``0.01 in val_loss``."""
        return amount(value, self.metric) if self.percent else f"{value:.4g} in {self.metric}"

    def column(self, values: pd.Series, digits: int = 2) -> pd.Series:
        """Values as a numeric table column: percent rounded to ``digits`` decimals, or 4
        significant digits."""
        if self.percent:
            return (values * 100).round(digits)
        return values.map(lambda v: float(f"{v:.4g}") if np.isfinite(v) else np.nan)


def _significant(value: float, sign: str = "") -> str:
    """4 significant digits, trailing zeros kept so a column's values line up (0.9 ->
    0.9000), never a bare trailing point (1234. -> 1234)."""
    if not np.isfinite(value):
        return f"{value}"
    return f"{value:{sign}#.4g}".rstrip(".").replace(".e", "e")
