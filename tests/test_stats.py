"""cartsim.stats against textbook survival tables, closed-form binomial bounds and a hand loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta, norm

from cartsim.stats import binomial_ci, kaplan_meier

# Freireich et al. 1963 Blood 21:699, 6-MP arm (weeks in remission; 0 = censored), as tabulated
# in Kleinbaum & Klein 2012 "Survival Analysis", 3rd ed., ch. 2.
SIX_MP_TIME = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
SIX_MP_EVENT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
# published product-limit estimates at the event times (Kleinbaum & Klein table 2.x)
SIX_MP_PUBLISHED = {6: 0.857, 7: 0.807, 10: 0.753, 13: 0.690, 16: 0.627, 22: 0.538, 23: 0.448}
Z95 = norm.ppf(0.975)


def hand_km(time, event, z=Z95):
    """Product-limit estimate, Greenwood sum and log-log band by an explicit loop."""
    rows, s, gw = [], 1.0, 0.0
    for tj in sorted({t for t, e in zip(time, event) if e}):
        n = sum(t >= tj for t in time)
        d = sum(t == tj and e for t, e in zip(time, event))
        s *= 1.0 - d / n
        gw = gw + d / (n * (n - d)) if n > d else math.inf
        if 0.0 < s < 1.0:
            se = math.sqrt(gw) / abs(math.log(s))
            lo, hi = s ** math.exp(z * se), s ** math.exp(-z * se)
        else:
            lo = hi = math.nan
        rows.append((tj, n, d, s, gw, lo, hi))
    return rows


def test_six_mp_matches_the_published_table_and_hand_greenwood():
    km = kaplan_meier(SIX_MP_TIME, SIX_MP_EVENT)
    hand = hand_km(SIX_MP_TIME, SIX_MP_EVENT)
    np.testing.assert_array_equal(km.time, list(SIX_MP_PUBLISHED))
    np.testing.assert_allclose(km.survival, list(SIX_MP_PUBLISHED.values()), atol=5e-4)
    np.testing.assert_array_equal(km.n_at_risk, [r[1] for r in hand])
    np.testing.assert_array_equal(km.n_events, [3, 1, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(km.survival, [r[3] for r in hand], rtol=1e-12)
    np.testing.assert_allclose(km.lower, [r[5] for r in hand], rtol=1e-10)
    np.testing.assert_allclose(km.upper, [r[6] for r in hand], rtol=1e-10)
    # Greenwood standard error on the S scale, published to 4 decimals (same table)
    se = [r[3] * math.sqrt(r[4]) for r in hand]
    np.testing.assert_allclose(se, [0.0764, 0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346],
                               atol=5e-5)


def test_six_mp_median_and_brookmeyer_crowley_interval():
    km = kaplan_meier(SIX_MP_TIME, SIX_MP_EVENT)
    hand = hand_km(SIX_MP_TIME, SIX_MP_EVENT)
    first_lower_below = next(r[0] for r in hand if r[5] <= 0.5)
    med, lo, hi = km.median()
    assert med == 23  # S(22) = 0.538 > 0.5 >= S(23) = 0.448
    assert lo == first_lower_below == 13
    assert math.isnan(hi)  # the upper band never reaches 0.5: upper bound not reached


def test_at_is_a_right_continuous_step_function():
    km = kaplan_meier(SIX_MP_TIME, SIX_MP_EVENT)
    assert km.at(5.9) == (1.0, 1.0, 1.0)
    s6 = km.at(6.0)
    assert s6[0] == pytest.approx(18 / 21)
    assert km.at(6.99) == s6  # flat until the next event, including the censoring at 9
    s, lo, hi = km.at([0.0, 6.0, 22.5, 35.0])
    np.testing.assert_allclose(s, [1.0, 18 / 21, km.survival[5], km.survival[-1]])
    assert np.all(lo <= s) and np.all(s <= hi)
    # no-one observed past the largest time: not estimable
    assert all(math.isnan(v) for v in km.at(35.1))


def test_ties_between_events_and_censorings_count_the_censored_as_at_risk():
    km = kaplan_meier([1, 1, 2, 2, 2, 3], [1, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(km.n_at_risk, [6, 4])
    np.testing.assert_array_equal(km.n_events, [1, 2])
    np.testing.assert_allclose(km.survival, [5 / 6, 5 / 6 * 2 / 4])
    np.testing.assert_array_equal(km.n_at_risk_at([0, 1.5, 2, 3, 4]), [6, 4, 4, 1, 0])


def test_random_data_with_ties_agree_with_the_hand_loop():
    rng = np.random.default_rng(7)
    time = rng.integers(1, 15, size=60).astype(float)
    event = rng.random(60) < 0.6
    km = kaplan_meier(time, event)
    hand = hand_km(time.tolist(), event.tolist())
    np.testing.assert_allclose(km.survival, [r[3] for r in hand], rtol=1e-12)
    np.testing.assert_allclose(km.lower, [r[5] for r in hand], rtol=1e-9)
    np.testing.assert_allclose(km.upper, [r[6] for r in hand], rtol=1e-9)


def pairwise_counts(time, event):
    """Event times, numbers at risk and events from their definitions, pair by pair
    (an events x subjects table: the O(n^2) reference the sorted counts must equal)."""
    t, e = np.asarray(time, dtype=float), np.asarray(event, dtype=bool)
    tj = np.unique(t[e])
    return (tj, (t[None, :] >= tj[:, None]).sum(axis=1),
            ((t[None, :] == tj[:, None]) & e[None, :]).sum(axis=1))


@pytest.mark.parametrize("seed", range(6))
def test_counts_equal_the_pairwise_definition_on_random_data_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    # half on a coarse grid (ties between events, censorings and both), half continuous
    time = np.where(rng.random(n) < 0.5, rng.integers(0, 12, n).astype(float),
                    rng.exponential(8.0, n))
    event = rng.random(n) < rng.uniform(0.2, 0.9)
    km = kaplan_meier(time, event)
    tj, n_risk, n_ev = pairwise_counts(time, event)
    np.testing.assert_array_equal(km.time, tj)
    np.testing.assert_array_equal(km.n_at_risk, n_risk)
    np.testing.assert_array_equal(km.n_events, n_ev)
    hand = hand_km(time.tolist(), event.tolist())
    np.testing.assert_allclose(km.survival, [r[3] for r in hand], rtol=1e-12)
    np.testing.assert_allclose(km.lower, [r[5] for r in hand], rtol=1e-9)
    np.testing.assert_allclose(km.upper, [r[6] for r in hand], rtol=1e-9)
    q = np.concatenate([time, tj, [-1.0, 0.0, 5.5, 1e9, np.inf, np.nan]])
    np.testing.assert_array_equal(km.n_at_risk_at(q),
                                  (time[None, :] >= q[:, None]).sum(axis=1))
    assert km.n_at_risk_at(3.0).shape == ()
    np.testing.assert_array_equal(km.n_at_risk_at(q[:6].reshape(2, 3)),
                                  km.n_at_risk_at(q[:6]).reshape(2, 3))


def test_hand_computed_curve_with_tied_events_and_censorings():
    # at risk / events at 2, 3, 5, 9: 8/1, 7/2 (the censoring at 3 still at risk), 4/1, 1/1
    km = kaplan_meier([2, 3, 3, 3, 5, 5, 8, 9], [1, 1, 1, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(km.time, [2, 3, 5, 9])
    np.testing.assert_array_equal(km.n_at_risk, [8, 7, 4, 1])
    np.testing.assert_array_equal(km.n_events, [1, 2, 1, 1])
    np.testing.assert_allclose(km.survival, [7 / 8, 5 / 8, 15 / 32, 0.0], rtol=1e-15)
    np.testing.assert_array_equal(km.n_at_risk_at([0, 3, 4, 8.5, 9, 10]), [8, 7, 4, 1, 1, 0])
    assert km.median()[0] == 5


def test_median_at_exactly_one_half_and_curve_reaching_zero():
    km = kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1])
    np.testing.assert_allclose(km.survival, [0.75, 0.5, 0.25, 0.0])
    assert km.median()[0] == 2  # smallest time with S <= 0.5
    assert math.isnan(km.lower[-1]) and math.isnan(km.upper[-1])  # band undefined at S = 0
    assert km.at(4.0)[0] == 0.0


def test_all_censored_stays_at_one_and_median_is_not_reached():
    km = kaplan_meier([3.0, 5.0, 8.0], [False, False, False])
    assert km.time.size == 0 and km.n == 3
    assert km.at(8.0) == (1.0, 1.0, 1.0)
    assert all(math.isnan(v) for v in km.median())
    np.testing.assert_array_equal(km.censored_time, [3.0, 5.0, 8.0])


def test_empty_input_gives_nan_everywhere():
    km = kaplan_meier([], [])
    assert km.n == 0 and math.isnan(km.max_time)
    assert all(math.isnan(v) for v in km.at(1.0))
    assert all(math.isnan(v) for v in km.median())


def test_nan_times_raise_by_default_and_are_counted_when_omitted():
    time, event = [1.0, np.nan, 3.0, np.nan], [1, 1, 0, 0]
    with pytest.raises(ValueError, match=r"rows \[1, 3\].*nan_policy='omit'"):
        kaplan_meier(time, event)
    km = kaplan_meier(time, event, nan_policy="omit")
    assert km.n_omitted == 2 and km.n == 2
    np.testing.assert_allclose(km.survival, [0.5])


@pytest.mark.parametrize(("time", "event", "match"), [
    ([1.0, -2.0], [1, 0], r"time\[1\]=-2.0"),
    ([1.0, np.inf], [1, 0], r"time\[1\]=inf"),
    ([1.0, 2.0], [1, 2], r"event\[1\]=2"),
    ([1.0, 2.0], [1], "equal length"),
])
def test_bad_survival_input_names_the_field_and_value(time, event, match):
    with pytest.raises(ValueError, match=match):
        kaplan_meier(time, event)


def test_unknown_nan_policy_is_rejected():
    with pytest.raises(ValueError, match="nan_policy='drop'"):
        kaplan_meier([1.0], [1], nan_policy="drop")


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (18, 20),
                                      (1, 14), (137, 400)])
def test_binomial_ci_matches_the_beta_quantile_formula(k, n):
    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    assert binomial_ci(k, n) == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)


def test_binomial_ci_closed_forms_at_the_extremes_and_a_published_interval():
    # k = n: lower bound (alpha/2)^(1/n); k = 0: upper bound 1 - (alpha/2)^(1/n)
    assert binomial_ci(14, 14) == pytest.approx((0.025 ** (1 / 14), 1.0))
    assert binomial_ci(0, 14, alpha=0.1) == pytest.approx((0.0, 1 - 0.05 ** (1 / 14)))
    lo, hi = binomial_ci(18, 20)  # 90% CR in Pan et al. 2021 JCO: 68.3-98.8%
    assert (round(100 * lo, 1), round(100 * hi, 1)) == (68.3, 98.8)


def test_binomial_ci_of_nothing_is_nan():
    assert all(math.isnan(v) for v in binomial_ci(0, 0))


@pytest.mark.parametrize(("k", "n", "alpha", "match"), [
    (3, 2, 0.05, "k=3 is larger than n=2"),
    (-1, 2, 0.05, "k=-1"),
    (1.5, 2, 0.05, "k=1.5"),
    (1, "x", 0.05, "n='x'"),
    (True, 2, 0.05, "k=True"),
    (1, 2, 1.0, "alpha=1.0"),
])
def test_binomial_ci_rejects_bad_input(k, n, alpha, match):
    with pytest.raises(ValueError, match=match):
        binomial_ci(k, n, alpha)
