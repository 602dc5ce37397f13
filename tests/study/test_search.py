"""SeedRepeater without Ray running anything: a fake searcher records what it is told."""

import math

import pytest
from ray.tune.search import Searcher

from study.search import SeedRepeater


class Recording(Searcher):
    """Suggests point 0, 1, ... and records every completion it hears of."""

    def __init__(self, mode: str = "max") -> None:
        super().__init__(metric="test_acc", mode=mode)
        self.suggested = 0
        self.completed: list[tuple[str, dict]] = []

    def suggest(self, trial_id: str) -> dict:
        self.suggested += 1
        return {"point": self.suggested - 1}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        self.completed.append((trial_id, result))


def run_group(
    results: list[dict | None], seeds: list[int], mode: str = "max"
) -> tuple[Recording, list[dict]]:
    inner = Recording(mode)
    repeater = SeedRepeater(inner, seeds)
    configs = [repeater.suggest(f"t{i}") for i in range(len(seeds))]
    for i, result in enumerate(results):
        repeater.on_trial_complete(f"t{i}", result)
    return inner, configs


def test_each_suggestion_runs_once_per_seed_with_the_seed_in_its_config():
    inner, configs = run_group([], [7, 3, 11])

    assert configs == [{"point": 0, "seed": 7}, {"point": 0, "seed": 3}, {"point": 0, "seed": 11}]
    assert inner.suggested == 1  # one suggestion, three trials


@pytest.mark.parametrize(
    ("results", "mean"),
    [
        ([{"test_acc": 0.9, "diverged": False}, {"test_acc": 0.8, "diverged": False}], 0.85),
        # a diverged seed reports its last finite epoch's accuracy: it counts as the worst
        ([{"test_acc": 0.9, "diverged": False}, {"test_acc": 0.7, "diverged": True}], -math.inf),
        ([{"test_acc": 0.9, "diverged": False}, {"diverged": True}], -math.inf),  # no metric
        ([{"test_acc": 0.9, "diverged": False}, None], -math.inf),  # failed: no result
        ([{"test_acc": 0.9, "diverged": False}, {"test_acc": float("nan")}], -math.inf),
        # failed at once (a bad plug-in): its final report says so
        (
            [
                {"test_acc": 0.9, "diverged": False},
                {"test_acc": 0.95, "diverged": False, "report": "final", "trial_error": "bad"},
            ],
            -math.inf,
        ),
    ],
)
def test_the_searcher_sees_the_mean_over_seeds_with_divergence_as_the_worst(results, mean):
    inner, _ = run_group(results, [0, 1])

    ((trial_id, result),) = inner.completed  # once, when the whole group is in
    assert trial_id == "t0"  # the trial the searcher suggested
    assert result["test_acc"] == pytest.approx(mean)


def test_a_minimising_searcher_sees_a_diverged_seed_as_plus_infinity():
    inner, _ = run_group([{"test_acc": 0.9, "diverged": False}, {"diverged": True}], [0, 1], "min")

    ((_, result),) = inner.completed
    assert result["test_acc"] == math.inf


def test_the_searcher_waits_for_every_seed():
    inner, _ = run_group([{"test_acc": 0.9, "diverged": False}], [0, 1, 2])

    assert inner.completed == []
