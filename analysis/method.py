"""The report's method paragraphs, rendered from the policy that decided the verdict, so the
prose always says the test that ran: its margin, levels, seed counts and divergence rule."""

from __future__ import annotations

from analysis.policy import Policy
from analysis.wording import amount, percent


def margin_line(policy: Policy) -> str:
    """``Margin: 0.20 accuracy points (test_acc, higher is better).``; any other metric as
    logged: ``Margin: 0.01 of val_loss (val_loss, lower is better).``"""
    unit, metric = policy.unit, policy.metric
    if unit.percent:
        size = amount(policy.margin, metric, " accuracy points")
    else:
        size = f"{amount(policy.margin, metric)} of {metric}"
    return f"Margin: {size} ({metric}, {unit.better})."


def grid_method(policy: Policy, kind: str = "explore") -> str:
    """How the explore, schedule and budget verdicts are decided (see analysis.decide)."""
    arm, rivals = {
        "explore": (f"{percent(policy.fraction)} explore", "every other explore fraction swept"),
        "schedule": (f"Knee at {percent(policy.fraction)} explore", "every baseline schedule"),
        "budget": (
            f"Knee at {percent(policy.fraction)} explore at each shorter budget",
            "every baseline at the full budget",
        ),
    }[kind]
    level, one_sided = percent(policy.confidence), percent(policy.alpha)
    limit = percent(policy.divergence_margin)
    return (
        f"Method: at each condition, {arm} is compared with {rivals}. A rival's advantage "
        f"({policy.metric}, in its better direction) gets a t interval over the seeds, paired "
        "by seed over the seeds both finished when they share at least "
        f"{policy.min_seeds} and at least half of the larger side's (Welch's otherwise), its "
        "standard deviation never taken below the metric's resolution. The share of seeds that "
        "diverged gets a Newcombe score interval of the difference. It holds against a rival "
        f"when the advantage's {level} upper bound lies below the margin and its excess share of "
        f"diverged seeds is below {limit} ({level} upper bound); robust when it holds against "
        f"every rival at every condition (an intersection-union test: a false robust is at "
        f"most {one_sided} likely). Not robust when a rival's advantage lies above the margin, "
        f"or its excess divergence above {limit}, at a level Bonferroni-corrected over every "
        f"test of the study, so a false not robust is at most {one_sided} likely however many "
        "conditions ran. A rival that diverged on more than "
        f"{limit} more of its seeds cannot be the better setting. Inconclusive otherwise, "
        f"including when any swept setting has fewer than {policy.min_seeds} usable seeds at a "
        "condition (crashed, killed, stopped early or never run): it is named, never dropped. "
        "Diverged, failed and stopped trials are counted, never averaged in. With no seed "
        f"diverging at all, {policy.seeds_for_divergence()} finished seeds are the fewest that "
        f"can rule out a {limit} excess, so robust needs at least that many."
    )


def search_method(policy: Policy, selected_by: str = "") -> str:
    """How the search verdict is decided, in the search's own words; ``selected_by``: the
    metric the best points were chosen by (:func:`analysis.comparisons.selection_metric`; by
    default the policy's metric)."""
    level = percent(policy.confidence)
    chosen = selected_by or policy.metric
    if chosen != policy.metric:
        by = (
            f"Points are ranked and chosen by mean {chosen}, so choosing never sees the test "
            f"split; the numbers reported and compared for them are {policy.metric}'s."
        )
    elif policy.selection_metric != policy.metric:
        by = f"Points are ranked by mean {chosen} (the runs have no {policy.selection_metric})."
    else:
        by = f"Points are ranked by mean {chosen}."
    return (
        "Method: the search ran each suggested point (explore fraction, peak LR) over the "
        f"seeds. {by} The best point within {policy.window * 100:.4g} explore points of "
        f"{percent(policy.fraction)} is compared with the best point outside that window: the "
        f"outside point's advantage gets a {level} t interval, paired by seed where the seeds "
        "allow (Welch's otherwise). Near the best when the whole interval lies below the "
        "margin, short of the best when it lies above, unclear when it straddles the margin, "
        f"when either point has fewer than {policy.min_seeds} usable seeds or when no point "
        "(or every point) lies in the window. Both points are the best of their group, so this "
        "is a guide, not a test at a known level, and never says robust. Diverged, failed and "
        "stopped trials are counted, never averaged in."
    )


def asha_note(stopped: int) -> str:
    """What a verdict can and cannot claim when a scheduler stopped trials early."""
    return (
        f"ASHA stopped {stopped} trial{'s' * (stopped != 1)} early. The verdict compares only "
        "trials that trained the whole budget; a stopped trial is neither a result nor a "
        "failure. ASHA judged them mid-training, when a long explore phase (still at the peak "
        "LR) always looks worse, so being stopped is no evidence against a fraction. Stopped "
        "seeds at the fraction under test forbid robust (the survivors are a flattering sample); "
        "stopped seeds at a rival forbid not robust against it; a setting that lost most of its "
        "seeds to ASHA cannot be judged at all."
    )
