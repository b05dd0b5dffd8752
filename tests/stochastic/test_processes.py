"""The engine against textbook stochastic processes with known laws (independent truth).

The cd7 network itself is reduced by its parameters (``conftest.quiet_network``):

* normal CD7- T cells with frozen homeostatic level H form a linear birth-death process,
  birth ``b = r_T H``, death ``d = r_T`` (extinction probability ``(d/b)^n0``; mean
  ``n0 e^{(b-d)t}``; variance ``n0 (b+d)/(b-d) e^{(b-d)t}(e^{(b-d)t}-1)``; Bailey 1964
  *The Elements of Stochastic Processes*, s8.6);
* effector CAR-T cells fed by reactivation of a huge memory pool and dying at ``delta_E``
  form an immigration-death process with stationary law Poisson(lambda / delta_E).
"""

from __future__ import annotations

import numpy as np
import pytest

from cartsim.models import cd7_kernel as K
from cartsim.stochastic import StochasticOptions
from cartsim.stochastic.engine import simulate_network
from tests.stochastic.conftest import quiet_network

H = K.S_H - K.N_CELL


def birth_death(n0, b, d):
    x0, c0, p = quiet_network()
    p[K.P_R_T] = d
    c0[H] = b / d
    x0[K.S_T0] = n0
    return x0, c0, p


def p0_exact(n0, b, d, t):
    """P(extinct by t) of the linear birth-death process (Bailey 1964 eq. 8.47)."""
    e = np.exp((b - d) * t)
    return (d * (e - 1.0) / (b * e - d)) ** n0


@pytest.mark.parametrize("method", ["hybrid", "exact"])
def test_birth_death_extinction_probability(method):
    n0, b, d, t = 2, 1.0, 0.5, 12.0
    x0, c0, p = birth_death(n0, b, d)
    reps = 4000
    opts = StochasticOptions(method=method, dt_max=30.0)
    out = simulate_network(x0, c0, p, [0.0, t], replicates=reps, seed=11, options=opts)
    assert (out.status == 0).all()
    extinct = (out.y[:, -1, K.S_T0] == 0).mean()
    expected = p0_exact(n0, b, d, t)  # 0.25 * (1 - 1e-2)
    se = np.sqrt(expected * (1 - expected) / reps)
    assert abs(extinct - expected) < 4 * se, (extinct, expected, se)
    # and the known limit (d/b)^n0
    assert abs(expected - (d / b) ** n0) < 0.01


def test_birth_death_moments_across_the_exact_tau_switch():
    # starts exact (< 100 cells), grows to ~1e3 cells where it leaps: the law must not change
    n0, b, d, t = 20, 1.0, 0.5, 8.0
    x0, c0, p = birth_death(n0, b, d)
    reps = 3000
    out = simulate_network(x0, c0, p, [0.0, t], replicates=reps, seed=5,
                           options=StochasticOptions(dt_max=30.0))
    assert out.counters[:, 0].min() > 0 and out.counters[:, 1].min() > 0  # both regimes
    x = out.y[:, -1, K.S_T0]
    g = b - d
    mean = n0 * np.exp(g * t)
    var = n0 * (b + d) / g * np.exp(g * t) * (np.exp(g * t) - 1.0)
    assert abs(x.mean() - mean) < 4 * np.sqrt(var / reps), (x.mean(), mean)
    # sample variance: relative SE ~ sqrt((kurtosis - 1) / reps), here < 6%
    assert abs(x.var() / var - 1.0) < 0.15, (x.var(), var)
    assert np.all(x == np.round(x)) and np.all(x >= 0)


def test_immigration_death_is_stationary_poisson():
    x0, c0, p = quiet_network()
    m0 = 1e9
    x0[K.S_M] = m0
    x0[K.S_T7] = p[K.P_K_AG]  # antigen saturation S_ag = 1/2, fixed (no T turnover)
    p[K.P_W_SELF] = 0.0
    p[K.P_K_ME] = 2e-8  # immigration lambda = k_me * S_ag * M = 10 cells/day
    p[K.P_DELTA_E] = 1.0
    lam = p[K.P_K_ME] * 0.5 * m0 / p[K.P_DELTA_E]
    reps = 3000
    out = simulate_network(x0, c0, p, [0.0, 15.0], replicates=reps, seed=3)
    e = out.y[:, -1, K.S_E]
    mean = lam * (1.0 - np.exp(-15.0))
    assert abs(e.mean() - mean) < 4 * np.sqrt(mean / reps)
    assert abs(e.var() / mean - 1.0) < 0.1  # Poisson: variance = mean
    assert abs((e == 0).mean() - np.exp(-mean)) < 4 * np.sqrt(np.exp(-mean) / reps) + 1e-3
    counts = np.bincount(e.astype(int), minlength=25)[:25] / reps
    from scipy.stats import poisson
    assert np.abs(counts - poisson.pmf(np.arange(25), mean)).max() < 0.015


def _tau_mean(n0, b, d, t, eps, reps, seed):
    x0, c0, p = birth_death(n0, b, d)
    opts = StochasticOptions(method="tau", epsilon=eps, dt_max=30.0)
    out = simulate_network(x0, c0, p, [0.0, t], replicates=reps, seed=seed, options=opts)
    return out.y[:, -1, K.S_T0].mean(), out


def test_tau_leap_weak_order():
    """The estimated-midpoint leap's bias on the mean shrinks like epsilon^2.

    For the linear birth-death process the mean after n leaps of tau is
    n0 (1 + g tau + (g tau)^2/2)^n against n0 e^{g t}: relative bias ~ -g t (g tau)^2 / 6,
    tau = epsilon / g (the CGP bound), far above the Monte-Carlo error at n0 = 1e7.
    """
    n0, b, d, t = 1e7, 1.0, 0.5, 2.0
    g = b - d
    exact = n0 * np.exp(g * t)
    bias = {}
    reps = 1600
    for eps in (0.2, 0.05):
        m, out = _tau_mean(n0, b, d, t, eps, reps, 9)
        assert out.counters[:, 1].max() == 0  # pure tau-leaping
        bias[eps] = m / exact - 1.0
        se = out.y[:, -1, K.S_T0].std() / np.sqrt(reps) / exact
        tau = eps / g
        predicted = (1.0 + g * tau + (g * tau) ** 2 / 2.0) ** (t / tau) / np.exp(g * t) - 1.0
        assert abs(bias[eps] - predicted) < 4 * se + 0.05 * abs(predicted), (eps, bias[eps],
                                                                              predicted, se)
    order = np.log(bias[0.2] / bias[0.05]) / np.log(4.0)
    assert 1.75 < order < 2.25, order


def test_tau_leap_matches_exact_ssa_on_small_system():
    n0, b, d, t = 200, 1.0, 0.8, 3.0
    x0, c0, p = birth_death(n0, b, d)
    reps = 3000
    res = {}
    for method in ("exact", "tau"):
        out = simulate_network(x0, c0, p, [0.0, t], replicates=reps, seed=21,
                               options=StochasticOptions(method=method, dt_max=30.0))
        res[method] = out.y[:, -1, K.S_T0]
    g = b - d
    var = n0 * (b + d) / g * np.exp(g * t) * (np.exp(g * t) - 1.0)
    se = np.sqrt(2 * var / reps)
    assert abs(res["exact"].mean() - res["tau"].mean()) < 4 * se
    assert abs(res["tau"].var() / res["exact"].var() - 1.0) < 0.15


def test_no_negative_populations_with_aggressive_leaps():
    # pure death from 150 cells with a huge epsilon: leaps would overshoot zero without the
    # rejection step
    x0, c0, p = birth_death(150, 0.0, 3.0)
    c0[H] = 0.0
    opts = StochasticOptions(method="tau", epsilon=0.5, dt_max=30.0)
    out = simulate_network(x0, c0, p, np.linspace(0.0, 3.0, 31), replicates=500, seed=2,
                           options=opts)
    x = out.y[:, :, K.S_T0]
    assert (x >= 0).all() and (x == np.round(x)).all()
    assert out.counters[:, 2].sum() > 0  # rejections happened and were handled
    assert (x[:, -1] == 0).mean() > 0.9  # e^{-9} survival per cell: nearly all extinct
