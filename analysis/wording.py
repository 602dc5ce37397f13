"""How reports and figures name things: explore fractions as percentages, params as words
(``peak LR``), a condition as ``peak LR 0.05, decay cosine``."""

from __future__ import annotations

import numpy as np


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
    if metric.endswith("acc"):
        return f"{round(value * 100, 2) or 0.0:.2f}{unit}"  # never "-0.00"
    return f"{value:.4g}"
