"""Scheduled events and state-triggered rules."""

import numpy as np
import pytest
from conftest import DP5, RODAS

from cartsim.models import kernels as K
from cartsim.solvers import driver

METHODS = [pytest.param(RODAS, id="rodas4"), pytest.param(DP5, id="dp5")]
ADD_STATE, SET_PARAM, ADD_PARAM = driver.ADD_STATE, driver.SET_PARAM, driver.ADD_PARAM


def decay_exact(t, t0, y0, k, r):
    """y' = -k y + r from (t0, y0)."""
    return r / k + (y0 - r / k) * np.exp(-k * (t - t0))


def logistic(t, y0, r, kk):
    return kk / (1.0 + (kk / y0 - 1.0) * np.exp(-r * t))


@pytest.mark.parametrize("method", METHODS)
def test_set_param_switch_is_exact(integ, method):
    """A rate switched at t = 2.345 gives the exact piecewise solution (no step across it)."""
    ts, k1, k2, r = 2.345, 1.0, 3.0, 0.5
    te = np.array([0.0, 1.0, 2.3, 2.344999, 2.345, 2.345001, 2.4, 3.0, 5.0])
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, method, [2.0], [k1, r], te, 0.0, 5.0,
                        events=[(ts, SET_PARAM, 0, k2)], rtol=1e-12, atol=1e-14)
    assert st == driver.SUCCESS
    ys = decay_exact(ts, 0.0, 2.0, k1, r)
    exact = np.where(te < ts, decay_exact(te, 0.0, 2.0, k1, r), decay_exact(te, ts, ys, k2, r))
    np.testing.assert_allclose(y[:, 0], exact, rtol=0, atol=1e-9)
    # a stepper that crossed the switch would be off by ~|k2 - k1| * dt ~ 1e-3 here


@pytest.mark.parametrize("method", METHODS)
def test_bolus_right_continuous_and_events_at_t0(integ, method):
    te = np.array([0.0, 0.5, 1.0, 1.5])
    ev = [(0.0, ADD_STATE, 0, 3.0), (1.0, ADD_STATE, 0, 10.0)]
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, method, [1.0], [1.0, 0.0], te, 0.0, 1.5, events=ev,
                        rtol=1e-12, atol=1e-14)
    assert st == driver.SUCCESS
    assert y[0, 0] == 4.0  # event at t0 applied before output and first step
    y1m = 4.0 * np.exp(-1.0)
    np.testing.assert_allclose(y[2, 0], y1m + 10.0, rtol=1e-11)  # state after the bolus
    np.testing.assert_allclose(y[3, 0], (y1m + 10.0) * np.exp(-0.5), rtol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_same_time_events_in_array_order(integ, method):
    """SET then ADD at the same time gives k = 6; the other order would give 5."""
    te = np.array([1.0, 2.0])
    ev = [(1.0, SET_PARAM, 0, 5.0), (1.0, ADD_PARAM, 0, 1.0)]
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, method, [1.0], [1.0, 0.0], te, 0.0, 2.0, events=ev,
                        rtol=1e-12, atol=1e-14)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(y[1, 0], np.exp(-1.0) * np.exp(-6.0), rtol=1e-9)


def test_events_outside_interval_ignored_and_event_at_t1(integ):
    te = np.array([1.0, 2.0])
    ev = [(0.5, ADD_STATE, 0, 100.0), (2.0, ADD_STATE, 0, 7.0), (2.5, ADD_STATE, 0, 100.0)]
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, RODAS, [1.0], [0.0, 0.0], te, 1.0, 2.0, events=ev)
    assert st == driver.SUCCESS
    assert y[0, 0] == 1.0
    assert y[1, 0] == pytest.approx(8.0, rel=1e-12)  # event at t1 reported


def test_many_close_events(integ):
    """Events closer together than the underflow limit are applied without a step."""
    te = np.array([0.0, 1.0, 2.0])
    ev = [(1.0, ADD_STATE, 0, 1.0), (1.0 + 1e-16, ADD_STATE, 0, 1.0), (1.0 + 1e-9, ADD_STATE,
                                                                        0, 1.0)]
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, RODAS, [0.0], [0.0, 0.0], te, 0.0, 2.0, events=ev)
    assert st == driver.SUCCESS
    assert y[2, 0] == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_rule_crossing_time_and_action(integ, method):
    """Logistic growth stopped (r := 0) when y crosses 5: fires at ln(9) / r exactly."""
    r, kk, thr = 1.3, 10.0, 5.0
    tc = np.log((kk / 1.0 - 1.0) / (kk / thr - 1.0)) / r
    te = np.linspace(0.0, 4.0, 9)
    rules = [(0, thr, SET_PARAM, 0, 0.0)]
    st, y, stats, rt = integ(K.MODEL_TEST_LOGISTIC, method, [1.0], [r, kk], te, 0.0, 4.0,
                             rules=rules, rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    assert abs(rt[0] - tc) < 1e-8
    before = te < tc
    np.testing.assert_allclose(y[before, 0], logistic(te[before], 1.0, r, kk), rtol=1e-8)
    np.testing.assert_allclose(y[~before, 0], thr, rtol=1e-8)  # frozen just above thr


def test_rule_on_log_state_and_second_rule_later(integ):
    """Thresholds in linear units on a log state; two rules crossing at different times."""
    r, kk, n0 = 0.8, 1e10, 1e4
    thrs = [1e6, 1e8]
    tcs = [np.log((kk / n0 - 1.0) / (kk / th - 1.0)) / r for th in thrs]
    rules = [(0, thrs[1], ADD_PARAM, 1, 0.0), (0, thrs[0], ADD_PARAM, 1, 0.0)]
    st, _, _, rt = integ(K.MODEL_TEST_LOGLOGISTIC, RODAS, [np.log(n0)], [r, kk], [20.0], 0.0,
                         20.0, rules=rules, log_mask=[True], rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(rt, [tcs[1], tcs[0]], rtol=0, atol=1e-8)


def test_rule_already_above_at_t0_and_after_bolus_and_never(integ):
    rules = [(0, 0.5, ADD_PARAM, 1, 0.0),     # above at t0
             (0, 20.0, ADD_PARAM, 1, 0.0),    # crossed by the bolus at t = 1
             (0, 1e6, ADD_PARAM, 1, 0.0)]     # never
    ev = [(1.0, ADD_STATE, 0, 50.0)]
    st, _, _, rt = integ(K.MODEL_TEST_DECAY, DP5, [1.0], [0.1, 0.0], [2.0], 0.0, 2.0,
                         events=ev, rules=rules)
    assert st == driver.SUCCESS
    assert rt[0] == 0.0 and rt[1] == 1.0 and np.isnan(rt[2])


def test_rule_chain_same_instant(integ):
    """A rule action that pushes another rule's state over its threshold fires it at once."""
    rules = [(0, 2.0, ADD_STATE, 1, 10.0),   # y0 crosses 2 -> add 10 to y1
             (1, 5.0, SET_PARAM, 0, 0.0)]    # y1 > 5 -> stop growth of y0
    st, y, _, rt = integ(K.MODEL_TEST_DECAY, RODAS, [1.0, 0.0], [-1.0, 0.0], [3.0], 0.0, 3.0,
                         rules=rules, rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    assert abs(rt[0] - np.log(2.0)) < 1e-8 and rt[1] == rt[0]
    np.testing.assert_allclose(y[0], [2.0, 10.0], rtol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_mul_state_on_linear_and_log_states(integ, method):
    """MUL_STATE scales the linear value: x -> f x, exact across the jump (also on ln(x))."""
    te = np.array([0.5, 1.0, 2.0])
    f = 1e-3
    for log, y0 in ((False, 2.0), (True, np.log(2.0))):
        st, y, _, _ = integ(K.MODEL_TEST_LOGLOGISTIC if log else K.MODEL_TEST_DECAY, method,
                            [y0], [0.0, 1e30] if log else [1.0, 0.0], te, 0.0, 2.0,
                            events=[(1.0, driver.MUL_STATE, 0, f)],
                            log_mask=[log], rtol=1e-12, atol=1e-14)
        assert st == driver.SUCCESS
        x = np.exp(y[:, 0]) if log else y[:, 0]
        expect = np.array([2.0, 2.0 * f, 2.0 * f]) if log else \
            2.0 * np.exp(-te) * np.where(te >= 1.0, f, 1.0)
        np.testing.assert_allclose(x, expect, rtol=1e-9)
    # a factor of 0 on a log state floors it instead of producing -inf
    st, y, _, _ = integ(K.MODEL_TEST_LOGLOGISTIC, method, [0.0], [0.0, 1e30], [2.0], 0.0, 2.0,
                        events=[(1.0, driver.MUL_STATE, 0, 0.0)], log_mask=[True])
    assert st == driver.SUCCESS and y[0, 0] == pytest.approx(np.log(driver.LOG_FLOOR))


def test_mul_state_factor_must_be_nonnegative():
    from cartsim.solvers.api import EventTable
    with pytest.raises(ValueError, match="mul_state factor"):
        EventTable.from_lists([1.0], [driver.MUL_STATE], [0], [-0.5])
