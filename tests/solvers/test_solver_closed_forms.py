"""Both methods against closed-form solutions (dense output included)."""

import numpy as np
import pytest
from conftest import DP5, RODAS

from cartsim.models import kernels as K
from cartsim.solvers import driver

METHODS = [pytest.param(RODAS, id="rodas4"), pytest.param(DP5, id="dp5")]


def logistic(t, y0, r, kk):
    return kk / (1.0 + (kk / y0 - 1.0) * np.exp(-r * t))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [1.3, -0.7])
def test_exponential_decay_and_growth(integ, method, k):
    te = np.linspace(0.0, 5.0, 37)
    st, y, stats, _ = integ(K.MODEL_TEST_DECAY, method, [2.0, -1.0], [k, 0.0], te, 0.0, 5.0,
                            rtol=1e-11, atol=1e-13)
    assert st == driver.SUCCESS
    exact = np.outer(np.exp(-k * te), [2.0, -1.0])
    np.testing.assert_allclose(y, exact, rtol=2e-9, atol=0)
    assert stats[0] > 0 and stats[2] > 0


@pytest.mark.parametrize("method", METHODS)
def test_logistic(integ, method):
    te = np.linspace(0.0, 8.0, 41)
    st, y, _, _ = integ(K.MODEL_TEST_LOGISTIC, method, [0.1], [1.2, 10.0], te, 0.0, 8.0,
                        rtol=1e-11, atol=1e-13)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(y[:, 0], logistic(te, 0.1, 1.2, 10.0), rtol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_log_state_logistic_with_bolus(integ, method):
    """ln N held by the solver, FD Jacobian; a bolus (ADD_STATE, linear units) at t=3."""
    r, kk, n0, tb, bol = 0.9, 1e9, 1e3, 3.0, 4e6
    te = np.array([0.0, 1.0, 2.0, 2.9999, 3.0, 3.5, 5.0, 8.0])
    st, y, _, _ = integ(K.MODEL_TEST_LOGLOGISTIC, method, [np.log(n0)], [r, kk], te, 0.0, 8.0,
                        events=[(tb, driver.ADD_STATE, 0, bol)], log_mask=[True],
                        rtol=1e-11, atol=1e-12)
    assert st == driver.SUCCESS
    nb_ = logistic(tb, n0, r, kk) + bol
    exact = np.where(te < tb, logistic(te, n0, r, kk), logistic(te - tb, nb_, r, kk))
    np.testing.assert_allclose(np.exp(y[:, 0]), exact, rtol=1e-9)
    # right-continuous output: the row at the event time is after the bolus
    assert np.exp(y[4, 0]) == pytest.approx(nb_, rel=1e-10)


def test_log_state_negative_bolus_floor(integ):
    """A removal larger than the population floors the linear value at 1e-30."""
    te = np.array([0.0, 1.0, 1.5])
    st, y, _, _ = integ(K.MODEL_TEST_LOGLOGISTIC, RODAS, [np.log(100.0)], [0.0, 1e9], te, 0.0,
                        1.5, events=[(1.0, driver.ADD_STATE, 0, -500.0)], log_mask=[True])
    assert st == driver.SUCCESS
    assert y[1, 0] == pytest.approx(np.log(driver.LOG_FLOOR))
    # partial removal in log coordinates is exact
    st, y, _, _ = integ(K.MODEL_TEST_LOGLOGISTIC, RODAS, [np.log(100.0)], [0.0, 1e9], te, 0.0,
                        1.5, events=[(1.0, driver.ADD_STATE, 0, -75.0)], log_mask=[True])
    assert np.exp(y[2, 0]) == pytest.approx(25.0, rel=1e-12)


@pytest.mark.parametrize("method, lam, rtol, hmax, tol", [
    pytest.param(RODAS, -1e6, 1e-8, 0.01, 1e-7, id="rodas4-stiff"),
    pytest.param(RODAS, -2.0, 1e-10, 0.0, 5e-9, id="rodas4-mild"),
    pytest.param(DP5, -20.0, 1e-10, 0.0, 5e-9, id="dp5")])
def test_prothero_robinson(integ, method, lam, rtol, hmax, tol):
    """y' = lam (y - sin t) + cos t, y(0) = 1: y = sin t + exp(lam t). Non-autonomous.

    In the stiff case the step end points are almost exact for any h, so only
    ``hmax`` bounds the interpolation error of the dense output between them.
    """
    te = np.linspace(0.0, 10.0, 51)
    st, y, stats, _ = integ(K.MODEL_TEST_PROTHERO, method, [1.0], [lam], te, 0.0, 10.0,
                            rtol=rtol, atol=rtol * 1e-2, hmax=hmax)
    assert st == driver.SUCCESS
    exact = np.sin(te) + np.exp(lam * te)
    np.testing.assert_allclose(y[:, 0], exact, rtol=0, atol=tol)
    if lam == -1e6:
        assert stats[0] < 2000  # an explicit method would need > 3e6 steps


@pytest.mark.parametrize("method", METHODS)
def test_forced_fd_jacobian_and_dfdt(integ, method):
    """Non-autonomous model without analytic Jacobian (FD Jacobian and FD df/dt)."""
    k, a, w = 2.0, 1.5, 3.0
    te = np.linspace(0.0, 6.0, 25)
    st, y, stats, _ = integ(K.MODEL_TEST_FORCED, method, [0.5], [k, a, w], te, 0.0, 6.0,
                            rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    ca = a * k / (k * k + w * w)
    cb = a * w / (k * k + w * w)
    yp = ca * np.cos(w * te) + cb * np.sin(w * te)
    exact = yp + (0.5 - ca) * np.exp(-k * te)
    np.testing.assert_allclose(y[:, 0], exact, rtol=0, atol=1e-8)
    if method == RODAS:
        # one Jacobian per accepted step (reused after rejections): FD columns (n = 1) and a
        # central df/dt, plus f(t, y), per Jacobian; five stages per attempt; one for HINIT
        nacc, nrej, nfev, njev = stats
        assert njev == nacc
        assert nfev == 1 + njev * (1 + 1 + 2) + 5 * (nacc + nrej)


def test_outputs_outside_interval_are_nan(integ):
    te = np.array([-1.0, 0.0, 0.5, 1.0, 1.5])
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, RODAS, [1.0], [1.0, 0.0], te, 0.0, 1.0)
    assert st == driver.SUCCESS
    assert np.isnan(y[0, 0]) and np.isnan(y[4, 0])
    assert y[1, 0] == 1.0
    np.testing.assert_allclose(y[2:4, 0], np.exp(-te[2:4]), rtol=1e-7)


def test_zero_length_interval(integ):
    st, y, stats, _ = integ(K.MODEL_TEST_DECAY, DP5, [3.0], [1.0, 0.0], [0.0, 1.0], 0.0, 0.0,
                            events=[(0.0, driver.ADD_STATE, 0, 1.0)])
    assert st == driver.SUCCESS
    assert y[0, 0] == 4.0 and np.isnan(y[1, 0])
    assert stats[0] == 0
