"""analysis/verdict.py: a verdict's words in each kind of study, the decision over a table of
conditions, and a condition's row in words."""

import numpy as np
import pandas as pd
import pytest

from analysis.policy import Policy
from analysis.verdict import Verdict, describe_row, inconclusive, overall

WORDS = {  # kind: (robust, not robust, inconclusive) as that kind of study says them
    "explore": ("robust", "not robust", "inconclusive"),
    "schedule": ("matches", "falls short", "inconclusive"),
    "budget": ("matches", "falls short", "inconclusive"),
    "search": ("near the best", "short of the best", "unclear"),
}


@pytest.mark.parametrize("kind", WORDS)
def test_each_kind_of_study_says_the_decision_in_its_own_words(kind):
    policy = Policy(fraction=0.25, margin=0.01, metric="test_loss")
    said = [
        Verdict(decision, pd.DataFrame(), "", policy, kind).status
        for decision in ("robust", "not robust", "inconclusive")
    ]

    assert tuple(said) == WORDS[kind]
    verdict = inconclusive("why", policy, kind)
    assert (verdict.decision, verdict.status, verdict.explanation) == (
        "inconclusive",
        WORDS[kind][2],
        "why",
    )
    assert (verdict.fraction, verdict.margin, verdict.metric) == (0.25, 0.01, "test_loss")


@pytest.mark.parametrize(
    ("decisions", "decided"),
    [
        (["robust", "robust"], "robust"),
        (["robust", "inconclusive"], "inconclusive"),
        (["inconclusive", "not robust", "robust"], "not robust"),  # one loss is enough
        ([], "inconclusive"),
    ],
)
def test_the_study_is_robust_only_where_every_condition_is(decisions, decided):
    assert overall(pd.DataFrame({"decision": decisions}, dtype=object)) == decided


def test_a_row_says_the_rival_its_lead_and_interval_or_else_why():
    row = pd.Series(
        {
            "peak_lr": 0.1,
            "versus": 0.25,
            "gap": 0.0012,
            "gap_low": -0.0005,
            "gap_high": 0.0029,
            "confidence": 0.9,
            "decision": "inconclusive",
            "reason": "interval straddles the margin",
        }
    )

    assert describe_row(row, ["peak_lr"], Policy()) == (
        "at peak LR 0.1 (25% ahead of it by 0.12 points, 90% interval -0.05 to 0.29)"
    )
    other = row.copy()
    other["gap_low"], other["reason"] = np.nan, "2 usable seeds at 50%, need 3"
    assert describe_row(other, ["peak_lr"], Policy()) == (
        "at peak LR 0.1 (2 usable seeds at 50%, need 3)"
    )
