"""Samplers of the compiled per-replicate generator against their distributions."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest

from cartsim.stochastic import rng


@nb.njit(cache=True)
def _draws(seed_state, kind, a, b, n):
    st = seed_state.copy()
    out = np.empty(n)
    for i in range(n):
        if kind == 0:
            out[i] = rng.poisson(st, a, b)
        elif kind == 1:
            out[i] = rng.binomial(st, a, b)
        elif kind == 2:
            out[i] = rng.uniform(st)
        else:
            out[i] = rng.stochastic_round(st, a)
    return out


def _state(seed=0):
    return rng.seed_states(seed, 1)[0]


@pytest.mark.parametrize("mu", [0.3, 4.0, 25.0, 3e3, 1e6, 5e8])
def test_poisson_mean_and_variance(mu):
    n = 40_000
    x = _draws(_state(1), 0, mu, 1e7, n)
    assert np.all(x >= 0) and np.all(x == np.round(x))
    assert abs(x.mean() - mu) < 5 * np.sqrt(mu / n)
    assert abs(x.var() / mu - 1.0) < 0.05


@pytest.mark.parametrize("n_,p", [(30, 0.2), (1e4, 1e-3), (1e6, 0.3), (1e12, 1e-9), (50, 0.9)])
def test_binomial_mean_and_variance(n_, p):
    n = 40_000
    x = _draws(_state(2), 1, n_, p, n)
    m, v = n_ * p, n_ * p * (1 - p)
    assert np.all((x >= 0) & (x <= n_))
    assert abs(x.mean() - m) < 5 * np.sqrt(v / n)
    assert abs(x.var() / v - 1.0) < 0.06


def test_uniform_and_rounding():
    u = _draws(_state(3), 2, 0.0, 0.0, 100_000)
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005
    r = _draws(_state(3), 3, 2.3, 0.0, 100_000)
    assert set(np.unique(r)) == {2.0, 3.0} and abs(r.mean() - 2.3) < 0.01


def test_streams_are_reproducible_and_distinct():
    a = rng.seed_states(5, 3)
    np.testing.assert_array_equal(a, rng.seed_states(5, 3))
    np.testing.assert_array_equal(a[2], rng.seed_states(5, 1, offset=2)[0])
    assert len({tuple(r) for r in a}) == 3
