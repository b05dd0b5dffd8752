"""Batch entry point: equals one-by-one calls, independent of the thread count."""

import numba
import numpy as np
import pytest
from conftest import run_integrate

from cartsim.models import kernels as K
from cartsim.models import testproblems as tp
from cartsim.solvers import EventTable, RuleTable, driver, solve_batch


def _cartlike_batch(npat, seed=0):
    """Per-patient parameters, events and rules for the 14-state surrogate."""
    p0, y0, ev, lm = tp.cartlike_problem()
    ev = EventTable(*ev)
    rng = np.random.default_rng(seed)
    P = np.tile(p0, (npat, 1))
    var = [0, 2, 7, 9, 13, 19, 24, 29]
    P[:, var] *= np.exp(0.3 * rng.standard_normal((npat, len(var))))
    events = []
    rules = []
    for i in range(npat):
        # a CAR-T dose that differs per patient, plus the shared chemotherapy
        e = EventTable.merge(ev, EventTable.from_lists([0.0], [driver.ADD_STATE], [0],
                                                       [rng.uniform(1e7, 1e8)]))
        events.append(e)
        # tocilizumab-like rule: when IL-6 > 200, halve its production (ADD_PARAM)
        rules.append(RuleTable.from_lists([6, 3], [200.0, 1e6], [driver.ADD_PARAM,
                                                                 driver.SET_PARAM],
                                          [18, 7], [-0.5 * P[i, 18], 0.0]) if i % 2 == 0
                     else None)
    return P, y0, events, rules, lm


def test_batch_equals_single_calls():
    npat = 6
    P, y0, events, rules, lm = _cartlike_batch(npat)
    te = np.linspace(-5.0, 60.0, 66)
    atol = np.where(lm, 1e-8, 1e-6)
    res = solve_batch(K.MODEL_TEST_CARTLIKE, y0, P, te, -5.0, 60.0, events, rules, lm,
                      method="rodas4", rtol=1e-6, atol=atol)
    assert (res.status == 0).all()
    assert np.isfinite(res.rule_time[0]).any()
    for i in range(npat):
        e = events[i]
        r = rules[i] if rules[i] is not None else RuleTable.empty()
        st, y, stats, rt = run_integrate(
            K.MODEL_TEST_CARTLIKE, driver.METHOD_RODAS4, y0, P[i], te, -5.0, 60.0,
            events=zip(e.t, e.kind, e.idx, e.val), rules=zip(r.idx, r.thr, r.kind, r.tgt, r.val),
            log_mask=lm, rtol=1e-6, atol=atol)
        assert st == res.status[i]
        np.testing.assert_array_equal(y, res.y[i])
        np.testing.assert_array_equal(stats, res.stats[i])
        np.testing.assert_array_equal(rt, res.rule_time[i, :len(r)])
        assert np.isnan(res.rule_time[i, len(r):]).all()


@pytest.mark.parametrize("method", ["rodas4", "dp5"])
def test_thread_count_does_not_change_results(method):
    npat = 8
    P, y0, events, rules, lm = _cartlike_batch(npat, seed=1)
    te = np.linspace(-5.0, 30.0, 36)
    atol = np.where(lm, 1e-8, 1e-6)
    nthreads = numba.get_num_threads()
    out = []
    try:
        for nth in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(nth)
            out.append(solve_batch(K.MODEL_TEST_CARTLIKE, y0, P, te, -5.0, 30.0, events, rules,
                                   lm, method=method, rtol=1e-6, atol=atol))
    finally:
        numba.set_num_threads(nthreads)
    a, b = out
    assert (a.status == 0).all()
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.stats, b.stats)
    np.testing.assert_array_equal(a.rule_time, b.rule_time)


def test_event_table_helpers():
    e = EventTable.from_lists([2.0, 1.0, 2.0, 1.0], [0, 1, 2, 0], [0, 1, 2, 3], [1., 2., 3., 4.])
    assert e.t.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert e.val.tolist() == [2.0, 4.0, 1.0, 3.0]  # stable: ties keep their order
    m = EventTable.merge(EventTable.from_lists([3.0], 1, 0, 9.0), e)
    assert m.t.tolist() == [1.0, 1.0, 2.0, 2.0, 3.0] and len(m) == 5
    assert len(EventTable.empty()) == 0 and len(RuleTable.empty()) == 0


def test_shared_inputs_broadcast():
    te = np.linspace(0.0, 1.0, 3)
    res = solve_batch("test_decay", [1.0, 2.0], [[1.0, 0.0], [2.0, 0.0]], te, 0.0, 1.0,
                      None, None, [False, False], "dp5", 1e-10, 1e-12)
    assert res.y.shape == (2, 3, 2) and res.rule_time.shape == (2, 0)
    np.testing.assert_allclose(res.y[1, -1], [np.exp(-2.0), 2 * np.exp(-2.0)], rtol=1e-8)
