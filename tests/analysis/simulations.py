"""Simulated studies with a known truth, and how often a verdict gets them wrong.

Each study is a frame shaped like ``load_runs`` output (``factories.runs_frame``): five explore
fractions x some peak LRs x some seeds, accuracy = 0.98 + the truth's advantage + a seed effect
shared by every fraction (the pairing removes it) + independent noise. The tests
(test_robustness.py) run a few hundred studies per case; run this file for the full table,
1,000 studies a case (``tests`` on the path, where pytest puts it, for ``factories``):

    PYTHONPATH=tests .venv/bin/python tests/analysis/simulations.py
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pandas as pd
from factories import FRACTIONS, runs_frame

from analysis.policy import Policy
from analysis.robustness import robustness_verdict

MARGIN = Policy().margin
NOISE, SEED_EFFECT = 0.002, 0.004  # sd of a trial's own noise, and of a seed's shared effect


def study(
    rng: np.random.Generator,
    seeds: int = 10,
    peak_lrs: int = 1,
    ahead: dict[float, float] | None = None,
    failed: dict[float, int] | None = None,
    diverge: dict[float, float] | None = None,
) -> pd.DataFrame:
    """One simulated study: ``ahead[f]`` is how much fraction f's true accuracy exceeds 50%'s
    (0 for any fraction not named), ``failed[f]`` how many of its seeds crashed, ``diverge[f]``
    the chance that one of its seeds diverges (its accuracy is then chance level, 0.1)."""
    ahead, failed, diverge = ahead or {}, failed or {}, diverge or {}
    rows = []
    for lr in range(peak_lrs):
        effects = rng.normal(0, SEED_EFFECT, seeds)
        for f, s in itertools.product(FRACTIONS, range(seeds)):
            diverged = rng.random() < diverge.get(f, 0.0)
            accuracy = 0.98 + ahead.get(f, 0.0) + effects[s] + rng.normal(0, NOISE)
            rows.append(
                {
                    "explore_fraction": f,
                    "peak_lr": 0.05 * (lr + 1),
                    "seed": s,
                    "test_acc": 0.1 if diverged else accuracy,
                    "diverged": diverged,
                    "status": "FAILED" if s < failed.get(f, 0) else "FINISHED",
                }
            )
    return runs_frame(rows)


def rate(decision: str, studies: int, seed: int = 0, **shape) -> float:
    """The share of ``studies`` simulated studies of ``shape`` whose verdict is ``decision``."""
    rng = np.random.default_rng(seed)
    hits = sum(robustness_verdict(study(rng, **shape)).status == decision for _ in range(studies))
    return hits / studies


def table(studies: int = 1000) -> pd.DataFrame:
    """The verdict's error rate in each case the tests check, ``studies`` simulated studies
    each."""
    rows = []

    def add(case: str, decision: str, **shape) -> None:
        found = rate(decision, studies, **shape)
        rows.append({"case": case, "wrong verdict": decision, "rate": found, **shape})
        print(f"{case:<55} {decision:<12} {found:6.3f}", file=sys.stderr)

    for times in (1.0, 1.5):
        for seeds in (5, 10, 20):
            add(f"rival at {times}x the margin", "robust", seeds=seeds, ahead={1.0: times * MARGIN})
    for lrs, seeds in itertools.product((1, 2, 5, 10), (5, 10, 20)):
        every = dict.fromkeys((0.0, 0.25, 0.75, 1.0), MARGIN)
        add(
            f"every rival at the margin, {lrs} peak LRs",
            "not robust",
            seeds=seeds,
            peak_lrs=lrs,
            ahead=every,
        )
    add(
        "1.0 ahead by a point, 8 of its 10 seeds failed",
        "robust",
        ahead={1.0: 0.01},
        failed={1.0: 8},
    )
    add("50% diverges on half its seeds, others never", "robust", diverge={0.5: 0.5})
    for share in (0.05, 0.2):
        shared = dict.fromkeys(FRACTIONS, share)
        add(f"every fraction diverges {share:.0%} of seeds", "not robust", diverge=shared)
        add(f"every fraction diverges {share:.0%} of seeds (power)", "robust", diverge=shared)
    add("flat, nothing diverges (power)", "robust")
    add("flat, nothing diverges, 20 seeds (power)", "robust", seeds=20)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    table(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
