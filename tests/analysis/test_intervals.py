"""analysis/intervals.py against closed forms worked out by hand: the t interval of a gap over
seeds (paired by seed where the seeds allow, Welch's otherwise), Wilson's interval of a share,
Newcombe's interval of the difference of two shares, the seeds that would decide a gap, a
metric's resolution.

Constants used below: z = 1.644854 (one-sided 5%, z^2 = 2.705543); t(0.95, df=2) = 2.919986,
t(0.95, 11) = 1.795885, t(0.95, 12) = 1.782288."""

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import t

from analysis.intervals import (
    Gap,
    difference_interval,
    equivalence,
    rate_difference,
    resolution,
    seeds_needed,
    wilson,
)

Z2 = 2.705543

# best - 50% per seed: 0.001, 0.002, 0.003 -> mean 0.002, sd 0.001, 90% t interval
# 0.002 +- t(0.95, df=2) 2.919986 * 0.001 / sqrt(3) = [0.000314, 0.003686]
BEST = pd.Series([0.980, 0.980, 0.980])
FIFTY = pd.Series([0.979, 0.978, 0.977])


def test_the_same_seeds_are_paired():
    gap = difference_interval(BEST, FIFTY, 0.90)

    assert gap.test == "paired t"
    assert gap.estimate == pytest.approx(0.002)
    assert (gap.low, gap.high) == pytest.approx((0.000314, 0.003686), abs=1e-6)
    assert (gap.spread, gap.n) == (pytest.approx(0.001), 3)


def test_fewer_than_three_shared_seeds_fall_back_to_welch():
    a = pd.Series([0.980, 0.981, 0.982], index=[0, 1, 2])
    b = pd.Series([0.975, 0.977, 0.979], index=[1, 2, 3])  # shares seeds 1 and 2 only

    gap, low, high, test = difference_interval(a, b, 0.90)[:4]

    v = statistics.variance(a) / 3 + statistics.variance(b) / 3  # both 1e-6 / 3 and 4e-6 / 3
    df = v**2 / ((1e-6 / 3) ** 2 / 2 + (4e-6 / 3) ** 2 / 2)
    half = t.ppf(0.95, df) * v**0.5
    assert test == "Welch t"
    assert gap == pytest.approx(0.004)
    assert (low, high) == pytest.approx((0.004 - half, 0.004 + half))
    # Three shared seeds (0-2 of 0-4 against 0-2): paired on them, seeds 3 and 4 left out.
    paired = difference_interval(pd.Series([0.98, 0.98, 0.98, 0.5, 0.9]), FIFTY, 0.90)
    assert paired[3] == "paired t on 3 shared seeds"
    assert paired[1:3] == pytest.approx((0.000314, 0.003686), abs=1e-6)


def test_pairs_are_not_bought_with_most_of_the_data():
    """3 shared seeds of 10 on one side: pairing would drop 7 of its values; Welch's keeps
    them all. 5 of 10 shared: half, so paired on those 5."""
    a = pd.Series([0.98 + 0.001 * s for s in range(10)], index=range(10))

    assert difference_interval(a, a.iloc[:3])[3] == "Welch t"
    assert difference_interval(a, a.iloc[:5])[3] == "paired t on 5 shared seeds"


@settings(max_examples=30, deadline=None)
@given(
    offsets=st.lists(st.floats(-0.05, 0.05), min_size=4, max_size=4),
    noise=st.lists(st.floats(0.0, 0.004), min_size=8, max_size=8),
    floor=st.sampled_from([0.0, 1 / 540]),
)
def test_paired_gap_ignores_what_a_seed_does_to_every_fraction(offsets, noise, floor):
    """Pairing: adding a per-seed constant to both sides leaves the gap and its interval."""
    a = pd.Series([0.9 + x for x in noise[:4]])
    b = pd.Series([0.9 + x for x in noise[4:]])
    shift = pd.Series(offsets)

    plain = difference_interval(a, b, 0.9, floor)
    moved = difference_interval(a + shift, b + shift, 0.9, floor)

    assert moved[3] == plain[3] == "paired t"
    assert moved[:3] == pytest.approx(plain[:3], abs=1e-9)


def test_identical_differences_are_floored_at_the_resolution():
    """Each seed one image (1/540) apart: the sd of the differences is 0, taken as one image:
    step +- 2.919986 * step / sqrt(3)."""
    step = 1 / 540
    a = pd.Series([(530 + s) * step for s in range(3)])

    gap = difference_interval(a, a - step, 0.90, sd_floor=step)

    half = 2.919986 * step / 3**0.5
    assert gap.estimate == pytest.approx(step)
    assert (gap.low, gap.high) == pytest.approx((step - half, step + half), rel=1e-5)
    assert difference_interval(a, a - step, 0.90)[1:3] == pytest.approx((step, step))


def test_one_value_a_side_has_no_interval():
    paired = difference_interval(pd.Series([0.98]), pd.Series([0.97]))
    welch = difference_interval(pd.Series([0.98], index=[0]), pd.Series([0.97], index=[1]))

    assert paired.estimate == pytest.approx(0.01)
    assert math.isnan(paired.low)
    assert math.isnan(paired.high)
    assert (welch.estimate, welch.test) == (pytest.approx(0.01), "Welch t")
    assert math.isnan(welch.low)
    assert math.isnan(welch.high)


# Wilson's interval at 90% (z as above): 0 of n is [0, z^2 / (n + z^2)]; 1 of 10 has centre
# (0.1 + z^2/20) / (1 + z^2/10) = 0.185177 and half-width z sqrt(0.009 + z^2/400) / 1.270554
# = 0.162542: [0.022635, 0.347719]; n of n mirrors 0 of n.
@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, Z2 / (10 + Z2)),  # 0.212942
        (0, 3, 0.0, Z2 / (3 + Z2)),  # 0.474196
        (1, 10, 0.022635, 0.347719),
        (9, 10, 1 - 0.347719, 1 - 0.022635),
        (10, 10, 1 - Z2 / (10 + Z2), 1.0),
        (0, 0, 0.0, 1.0),  # nothing seen: nothing known
    ],
)
def test_wilson_interval(successes, n, low, high):
    assert wilson(successes, n, 0.90) == pytest.approx((low, high), abs=1e-6)


def test_newcombe_interval_of_two_shares():
    """1 of 10 against 0 of 10: d = 0.1, low = d - sqrt((0.1 - 0.022635)^2 + (0.212942 - 0)^2)
    = -0.126560, high = d + sqrt((0.347719 - 0.1)^2 + (0 - 0)^2) = 0.347719."""
    found = rate_difference(1, 10, 0, 10, 0.90)
    mirrored = rate_difference(0, 10, 1, 10, 0.90)

    assert found.estimate == pytest.approx(0.1)
    assert (found.low, found.high) == pytest.approx((-0.126560, 0.347719), abs=1e-6)
    assert (found.test, found.n) == ("Newcombe score", 10)
    assert (mirrored.estimate, mirrored.low, mirrored.high) == pytest.approx(
        (-0.1, -0.347719, 0.126560), abs=1e-6
    )


def test_newcombe_interval_of_equal_shares_is_centred_on_zero():
    """2 of 10 both sides (Wilson 0.068558 to 0.459207): +-sqrt(0.259207^2 + 0.131442^2) =
    0.290629; none of 10 both sides: +-0.212942, never a point as Wald's would be."""
    two = rate_difference(2, 10, 2, 10, 0.90)
    none = rate_difference(0, 10, 0, 10, 0.90)

    assert (two.estimate, two.low, two.high) == pytest.approx((0, -0.290629, 0.290629), abs=1e-6)
    assert (none.low, none.high) == pytest.approx((-Z2 / (10 + Z2), Z2 / (10 + Z2)), abs=1e-6)


@pytest.mark.parametrize(
    ("low", "high", "decision"),
    [
        (-0.001, 0.0019, "robust"),
        (0.0021, 0.004, "not robust"),
        (0.001, 0.003, "inconclusive"),
        (0.001, 0.002, "inconclusive"),  # on the margin: not below it
        (np.nan, np.nan, "inconclusive"),
    ],
)
def test_equivalence_against_a_margin_of_0_002(low, high, decision):
    assert equivalence(low, high, 0.002) == decision


def test_seeds_needed_is_the_first_n_whose_half_width_fits():
    """Gap 0 against margin 0.002, spread 0.004 at 90%: n must have t(0.95, n-1) 0.004 /
    sqrt(n) < 0.002. At 12 seeds 1.795885 / sqrt(12) = 0.5184 > 0.5; at 13, 1.782288 /
    sqrt(13) = 0.4943 < 0.5."""
    gap = Gap(0.0, -0.01, 0.01, "paired t", spread=0.004, n=3)

    assert seeds_needed(gap, 0.002, 0.90) == 13
    # An estimate above the margin: the interval must clear it from above, the same distance.
    assert seeds_needed(gap._replace(estimate=0.004), 0.002, 0.90) == 13


@pytest.mark.parametrize(
    ("gap", "needed"),
    [
        (Gap(0.0, np.nan, np.nan, "paired t", spread=np.nan, n=1), None),  # spread unknown
        (Gap(0.002, 0.0, 0.004, "paired t", spread=0.001, n=3), None),  # on the margin
        (Gap(0.0, 0.0, 0.0, "paired t", spread=0.0, n=5), 5),  # no spread: as many as it had
        (Gap(0.0, -1.0, 1.0, "paired t", spread=10.0, n=3), None),  # not within 1000 seeds
    ],
)
def test_seeds_needed_when_no_number_of_seeds_or_none_more_would_do(gap, needed):
    assert seeds_needed(gap, 0.002, 0.90) == needed


def test_resolution_is_the_smallest_step_between_values():
    images = pd.Series([530 / 540, 532 / 540, 531 / 540, np.nan, 530 / 540])

    assert resolution(images) == pytest.approx(1 / 540)
    assert resolution(pd.Series([0.9, 0.9, np.nan])) == 0.0
    assert resolution(pd.Series([0.5, 0.5 + 1e-9, 0.75])) == pytest.approx(0.25)  # float noise
