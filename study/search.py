"""How a study walks its space: a grid of explicit points, or Optuna suggestions run over seeds.

Both hand Tune flat trial configs (the same keys ``train()`` takes), so the tracker, the trial
function and the analysis never need to know which one ran.

* grid: ``StudyConfig.grid()`` lists every trial (baselines are not crossed with Knee's own
  axes); Tune's ``BasicVariantGenerator`` runs exactly those points, in order.
* optuna: ``OptunaSearch`` (TPE) suggests an explore fraction (uniform) and a peak LR
  (log-uniform) from the configured ranges; each suggestion runs once per seed
  (:class:`SeedRepeater`), and Optuna sees the mean over seeds. A ``ConcurrencyLimiter`` keeps
  the number of suggestions in flight to what the cluster runs at once.

Import this module only after :func:`study.ray_env.prepare_ray_env` ran.
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater, Searcher
from ray.tune.search.repeater import TRIAL_INDEX

from study.config import StudyConfig
from trainables.results import is_failed

OPTUNA_SEED = 0  # the same study suggests the same points


class SeedRepeater(Repeater):
    """Runs each suggestion once per seed, putting the seed itself in the trial's config.

    A seed that diverged, failed or reported no metric gets the worst score (-inf when the
    searcher maximises, +inf when it minimises): a diverged trial's result carries its last
    finite epoch's metrics, which would make a divergent region look good to the searcher (and
    Ray's Repeater would leave a missing score out of the mean)."""

    def __init__(self, searcher: Searcher, seeds: list[int]) -> None:
        super().__init__(searcher, repeat=len(seeds), set_index=True)
        self.seeds = list(seeds)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            config["seed"] = self.seeds[config.pop(TRIAL_INDEX)]
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, **kwargs) -> None:
        metric = self.searcher.metric
        score = (result or {}).get(metric)
        failed = not result or result.get("diverged") or is_failed(result)
        if failed or score is None or not math.isfinite(score):
            worst = -math.inf if self.searcher.mode == "max" else math.inf
            result = {**(result or {}), metric: worst}
        super().on_trial_complete(trial_id, result, **kwargs)


def search_space(cfg: StudyConfig) -> dict[str, Any]:
    """The swept part of the param space: for a grid, each axis as the choice of its values
    (Tune wants every key a point sets to be in the space; the points pick the values), for
    Optuna the two ranges."""
    if cfg.tune.search == "grid":
        points = cfg.grid()
        keys = _unique(key for point in points for key in point)  # a baseline adds decay
        return {key: tune.choice(_unique(p.get(key) for p in points)) for key in keys}
    sweep = cfg.sweep
    fixed = {k: v[0] for k, v in cfg.swept().items() if k not in ("explore_fraction", "peak_lr")}
    fixed.pop("seed")  # set per trial by SeedRepeater
    fixed.setdefault("decay", cfg.train.decay)  # a Knee key: each point carries it, not the base
    return {
        **fixed,
        "explore_fraction": tune.uniform(*sweep.explore_fraction),
        "peak_lr": tune.loguniform(*sweep.peak_lr),
    }


def search_algorithm(
    cfg: StudyConfig, concurrent_trials: int, points: list[dict[str, Any]] | None = None
) -> tuple[Searcher, int]:
    """Tune's search algorithm for the study and the number of trials (``num_samples``);
    ``points``: the grid points to run (default: all of them; an extension: its new ones).

    The algorithm holds the concurrency limit: Tune ignores ``max_concurrent_trials`` when it
    is given a search algorithm that is not a plain ``Searcher`` (the grid's generator)."""
    if cfg.tune.search == "grid":
        points = cfg.grid() if points is None else points
        generator = BasicVariantGenerator(
            points_to_evaluate=points, max_concurrent=concurrent_trials
        )
        return generator, len(points)
    from ray.tune.search.optuna import OptunaSearch  # imports optuna: drivers only, not workers

    # Optuna chooses by the validation split: the test split is only reported.
    objective = cfg.objective
    optuna = OptunaSearch(metric=objective.selection_metric, mode=objective.mode, seed=OPTUNA_SEED)
    repeated = SeedRepeater(optuna, cfg.sweep.seed)
    return ConcurrencyLimiter(repeated, max_concurrent=concurrent_trials), cfg.num_trials


def _unique(values) -> list:
    return list(dict.fromkeys(values))
