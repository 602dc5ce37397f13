"""A study that grows: ``knee-study extend STUDY --set 'sweep.seed=[0, ..., 19]'``.

An extension adds values to a grid study's sweep (seeds, explore fractions, peak LRs,
schedules, decay shapes, budgets) and changes nothing else: the points the study already ran
stay as they are, and only the new ones run, under the same parent run, into the same MLflow
experiment, so the report covers all of them. Anything else (another model, another budget, a
changed training key, a value taken away) is not an extension: one line says what changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from study.config import StudyConfig, load_config
from study.errors import BadInput

_GROWING = ("explore_fraction", "peak_lr", "seed", "schedule", "epochs", "steps", "decay")


class ExtensionError(BadInput):
    """A change to a study that is not an extension of its grid."""


def extended(cfg: StudyConfig, overrides: Sequence[str], source: str) -> StudyConfig:
    """The study ``cfg`` with ``overrides`` applied, checked to only add sweep values.
    ``source``: the study's own config file (read again, so the overrides apply as in ``run``)."""
    if not overrides:
        raise ExtensionError("extend: say what to add, e.g. --set 'sweep.seed=[0, 1, 2, 3, 4, 5]'")
    if cfg.tune.search != "grid":
        raise ExtensionError(
            "extend: grows a grid study; an Optuna search chooses its own points (run a new one "
            "with more tune.num_samples)"
        )
    grown = load_config(source, overrides, check_files=False)
    before, after = cfg.model_dump(mode="json"), grown.model_dump(mode="json")
    changed = _changed_keys(before, after)
    fixed = [key for key in changed if key.removeprefix("sweep.") not in _GROWING]
    if fixed:
        key = fixed[0]
        raise ExtensionError(
            f"{key}: an extension only adds sweep values; this changes {key} "
            f"({_at(before, key)!r} -> {_at(after, key)!r}): run a new study for that"
        )
    for key in changed:
        old, new = _at(before, key) or [], _at(after, key) or []
        lost = [value for value in old if value not in new]
        if lost:
            raise ExtensionError(
                f"{key}: an extension keeps every value the study ran; {lost} would be dropped "
                f"(give {old + [v for v in new if v not in old]})"
            )
    return grown


def new_points(cfg: StudyConfig, grown: StudyConfig) -> list[dict[str, Any]]:
    """The grid points of ``grown`` that ``cfg`` did not have, in ``grown``'s order."""
    ran = {_key(point, cfg) for point in cfg.grid()}
    return [point for point in grown.grid() if _key(point, grown) not in ran]


def _key(point: Mapping[str, Any], cfg: StudyConfig) -> tuple:
    """A point with its budget named even where the budget was not swept: a study that starts
    sweeping its budget keeps the points it ran at the one it had."""
    return tuple(sorted({cfg.budget_unit: cfg.budgets[0], **point}.items()))


def _changed_keys(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list:
    changed = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changed += _changed_keys(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key}")
    return changed


def _at(config: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, Mapping) else None
    return config
