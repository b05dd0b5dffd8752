"""Variable-order BDF/NDF (``METHOD_BDF``) and DP5 switching to it (``METHOD_DP5_BDF``):
closed forms, stiff problems, events, rules, cd7. Every test runs for both methods."""

import numpy as np
import pytest
from conftest import RODAS
from scipy.integrate import solve_ivp

from cartsim.models import kernels as K
from cartsim.solvers import RuleTable, driver, solve_batch

BDF = driver.METHOD_BDF
DP5_BDF = driver.METHOD_DP5_BDF


@pytest.fixture(params=[BDF, DP5_BDF], ids=["bdf", "dp5_bdf"])
def meth(request):
    """The method under test: plain BDF, or DP5 that switches to BDF when stiff."""
    return request.param
ADD_STATE, SET_PARAM, ADD_PARAM = driver.ADD_STATE, driver.SET_PARAM, driver.ADD_PARAM


def logistic(t, y0, r, kk):
    return kk / (1.0 + (kk / y0 - 1.0) * np.exp(-r * t))


def decay_exact(t, t0, y0, k, r):
    return r / k + (y0 - r / k) * np.exp(-k * (t - t0))


def test_decay_with_bolus_on_log_state(integ, meth):
    """ln N with N' = r (1 - N/K) N (FD Jacobian) and a bolus in linear units at t = 3."""
    r, kk, n0, tb, bol = 0.9, 1e9, 1e3, 3.0, 4e6
    te = np.array([0.0, 1.0, 2.0, 2.9999, 3.0, 3.5, 5.0, 8.0])
    st, y, stats, _ = integ(K.MODEL_TEST_LOGLOGISTIC, meth, [np.log(n0)], [r, kk], te, 0.0, 8.0,
                            events=[(tb, ADD_STATE, 0, bol)], log_mask=[True],
                            rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    nb_ = logistic(tb, n0, r, kk) + bol
    exact = np.where(te < tb, logistic(te, n0, r, kk), logistic(te - tb, nb_, r, kk))
    np.testing.assert_allclose(np.exp(y[:, 0]), exact, rtol=1e-7)
    assert np.exp(y[4, 0]) == pytest.approx(nb_, rel=1e-10)  # right-continuous at the bolus


def test_exponential_decay_bolus_and_jacobian_reuse(integ, meth):
    """Linear decay, a bolus at t = 1 (restart), few Jacobians for many steps."""
    te = np.array([0.0, 0.5, 1.0, 1.5, 4.0])
    ev = [(1.0, ADD_STATE, 0, 10.0)]
    st, y, stats, _ = integ(K.MODEL_TEST_DECAY, meth, [1.0], [1.0, 0.0], te, 0.0, 4.0, events=ev,
                            rtol=1e-9, atol=1e-12)
    assert st == driver.SUCCESS
    exact = np.where(te < 1.0, np.exp(-te), (np.exp(-1.0) + 10.0) * np.exp(-(te - 1.0)))
    np.testing.assert_allclose(y[:, 0], exact, rtol=2e-7)
    assert stats[3] <= 4 < stats[0]  # Jacobians: one per (re)start, not one per step


def test_logistic(integ, meth):
    te = np.linspace(0.0, 10.0, 21)
    st, y, _, _ = integ(K.MODEL_TEST_LOGISTIC, meth, [0.1], [1.3, 10.0], te, 0.0, 10.0,
                        rtol=1e-9, atol=1e-12)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(y[:, 0], logistic(te, 0.1, 1.3, 10.0), rtol=1e-6)


@pytest.mark.parametrize("lam", [-1e2, -1e6])
def test_prothero_robinson(integ, meth, lam):
    """Stiff, non-autonomous; the solution tracks sin t (dense output checked between steps)."""
    te = np.linspace(0.0, 10.0, 101)
    st, y, stats, _ = integ(K.MODEL_TEST_PROTHERO, meth, [0.5], [lam], te, 0.0, 10.0,
                            rtol=1e-8, atol=1e-10)
    assert st == driver.SUCCESS
    exact = np.sin(te) + 0.5 * np.exp(lam * te)
    np.testing.assert_allclose(y[:, 0], exact, rtol=0, atol=2e-6)
    np.testing.assert_allclose(y[20:, 0], exact[20:], rtol=0, atol=2e-7)
    assert stats[0] < 2000


def test_robertson_vs_radau(integ, meth):
    p = [0.04, 3e7, 1e4]

    def f(t, y):
        return [-p[0] * y[0] + p[2] * y[1] * y[2],
                p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] ** 2, p[1] * y[1] ** 2]

    te = np.array([0.0, 0.04, 0.4, 4.0, 40.0, 400.0])
    ref = solve_ivp(f, (0.0, 400.0), [1.0, 0.0, 0.0], method="Radau", t_eval=te, rtol=1e-11,
                    atol=1e-17).y.T
    st, y, stats, _ = integ(K.MODEL_TEST_ROBERTSON, meth, [1.0, 0.0, 0.0], p, te, 0.0, 400.0,
                            rtol=1e-9, atol=[1e-12, 1e-17, 1e-12])
    assert st == driver.SUCCESS
    np.testing.assert_allclose(y, ref, rtol=2e-6, atol=1e-15)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-10)
    assert stats[3] < stats[0] / 10  # Jacobian reuse


def test_tolerance_proportionality(integ, meth):
    """The global error shrinks roughly in proportion to rtol."""
    te = np.linspace(0.0, 10.0, 11)
    errs = []
    for rtol in (1e-5, 1e-6, 1e-7, 1e-8):
        st, y, _, _ = integ(K.MODEL_TEST_LOGISTIC, meth, [0.1], [1.3, 10.0], te, 0.0, 10.0,
                            rtol=rtol, atol=1e-3 * rtol)
        assert st == driver.SUCCESS
        errs.append(np.max(np.abs(y[:, 0] / logistic(te, 0.1, 1.3, 10.0) - 1.0)))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all(ratios > 3.0) and np.all(ratios < 40.0), (errs, ratios)
    assert errs[-1] < 1e-6


def test_set_param_switch_is_exact(integ, meth):
    ts, k1, k2, r = 2.345, 1.0, 3.0, 0.5
    te = np.array([0.0, 1.0, 2.3, 2.344999, 2.345, 2.345001, 2.4, 3.0, 5.0])
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, meth, [2.0], [k1, r], te, 0.0, 5.0,
                        events=[(ts, SET_PARAM, 0, k2)], rtol=1e-11, atol=1e-13)
    assert st == driver.SUCCESS
    ys = decay_exact(ts, 0.0, 2.0, k1, r)
    exact = np.where(te < ts, decay_exact(te, 0.0, 2.0, k1, r), decay_exact(te, ts, ys, k2, r))
    np.testing.assert_allclose(y[:, 0], exact, rtol=0, atol=1e-8)


@pytest.mark.parametrize("method", [RODAS, BDF, DP5_BDF], ids=["rodas4", "bdf", "dp5_bdf"])
def test_rule_crossing_time_and_action(integ, method):
    """Logistic growth stopped (r := 0) when y crosses 5: fires at ln(9) / r."""
    r, kk, thr = 1.3, 10.0, 5.0
    tc = np.log((kk / 1.0 - 1.0) / (kk / thr - 1.0)) / r
    te = np.linspace(0.0, 4.0, 9)
    rules = [(0, thr, SET_PARAM, 0, 0.0)]
    st, y, _, rt = integ(K.MODEL_TEST_LOGISTIC, method, [1.0], [r, kk], te, 0.0, 4.0,
                         rules=rules, rtol=1e-11, atol=1e-13)
    assert st == driver.SUCCESS
    assert abs(rt[0] - tc) < 1e-8
    before = te < tc
    np.testing.assert_allclose(y[before, 0], logistic(te[before], 1.0, r, kk), rtol=1e-8)
    np.testing.assert_allclose(y[~before, 0], thr, rtol=1e-8)


def test_rules_on_log_state_chain_and_already_above(integ, meth):
    r, kk, n0 = 0.8, 1e10, 1e4
    thrs = [1e6, 1e8]
    tcs = [np.log((kk / n0 - 1.0) / (kk / th - 1.0)) / r for th in thrs]
    rules = [(0, thrs[1], ADD_PARAM, 1, 0.0), (0, thrs[0], ADD_PARAM, 1, 0.0),
             (0, 1.0, ADD_PARAM, 1, 0.0)]  # the last one is above at t0
    st, _, _, rt = integ(K.MODEL_TEST_LOGLOGISTIC, meth, [np.log(n0)], [r, kk], [20.0], 0.0,
                         20.0, rules=rules, log_mask=[True], rtol=1e-11, atol=1e-13)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(rt, [tcs[1], tcs[0], 0.0], rtol=0, atol=1e-8)
    # chain at one instant: y0 crosses 2 -> add 10 to y1 -> y1 > 5 stops y0
    rules = [(0, 2.0, ADD_STATE, 1, 10.0), (1, 5.0, SET_PARAM, 0, 0.0)]
    st, y, _, rt = integ(K.MODEL_TEST_DECAY, meth, [1.0, 0.0], [-1.0, 0.0], [3.0], 0.0, 3.0,
                         rules=rules, rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    assert abs(rt[0] - np.log(2.0)) < 1e-8 and rt[1] == rt[0]
    np.testing.assert_allclose(y[0], [2.0, 10.0], rtol=1e-7)


def test_statuses(integ, meth):
    """Blow-up fails cleanly (no exception); max_steps is honoured."""
    st, y, _, _ = integ(K.MODEL_TEST_BLOWUP, meth, [1.0], [1.0], [0.5, 2.0], 0.0, 2.0)
    assert st in (driver.STEP_UNDERFLOW, driver.NONFINITE)
    assert np.isfinite(y[0, 0]) and np.isnan(y[1, 0])
    st, _, stats, _ = integ(K.MODEL_TEST_LOGISTIC, meth, [0.1], [1.3, 10.0], [10.0], 0.0, 10.0,
                            max_steps=5)
    assert st == driver.MAX_STEPS and stats[0] + stats[1] <= 5


def test_batch_equals_single_calls(integ, meth):
    """solve_batch on per-patient events and rules == one integrate call each."""
    name = {BDF: "bdf", DP5_BDF: "dp5_bdf"}[meth]
    from test_solver_batch import _cartlike_batch

    npat = 4
    P, y0, events, rules, lm = _cartlike_batch(npat)
    te = np.linspace(-5.0, 60.0, 66)
    atol = np.where(lm, 1e-8, 1e-6)
    res = solve_batch(K.MODEL_TEST_CARTLIKE, y0, P, te, -5.0, 60.0, events, rules, lm,
                      method=name, rtol=1e-6, atol=atol)
    assert (res.status == 0).all()
    for i in range(npat):
        e = events[i]
        r = rules[i] if rules[i] is not None else RuleTable.empty()
        st, y, stats, rt = integ(
            K.MODEL_TEST_CARTLIKE, meth, y0, P[i], te, -5.0, 60.0,
            events=zip(e.t, e.kind, e.idx, e.val), rules=zip(r.idx, r.thr, r.kind, r.tgt, r.val),
            log_mask=lm, rtol=1e-6, atol=atol)
        assert st == res.status[i]
        np.testing.assert_array_equal(y, res.y[i])
        np.testing.assert_array_equal(stats, res.stats[i])
        np.testing.assert_array_equal(rt, res.rule_time[i, :len(r)])
    # and close to Rodas4
    ref = solve_batch(K.MODEL_TEST_CARTLIKE, y0, P, te, -5.0, 60.0, events, rules, lm,
                      method="rodas4", rtol=1e-9, atol=atol * 1e-3)
    np.testing.assert_allclose(res.y, ref.y, rtol=2e-4, atol=2e-3)


@pytest.mark.parametrize("name", ["bdf", "dp5_bdf"])
def test_cd7_matches_rodas4(name):
    """The whole cd7 model at rtol 1e-9 vs Rodas4 at 1e-10, all states, daily."""
    import cartsim
    from cartsim.models.cd7 import Cd7Model

    names = Cd7Model().state_names
    lm = np.asarray(Cd7Model().log_mask)
    a = cartsim.simulate(cartsim.Scenario(solver=cartsim.SolverOptions(method=name, rtol=1e-9)))
    b = cartsim.simulate(cartsim.Scenario(solver=cartsim.SolverOptions(method="rodas4",
                                                                       rtol=1e-10)))
    assert int(a["status"].values[0]) == 0 and int(b["status"].values[0]) == 0
    for nm, is_log in zip(names, lm):
        xa = a[nm].values[0]
        xb = b[nm].values[0]
        floor = 1e-3 if is_log else 1e-7
        np.testing.assert_allclose(xa, xb, rtol=1e-5, atol=floor, err_msg=nm)


# ------------------------------------------------------------------ the DP5 -> BDF switch

def test_switch_nonstiff_stays_explicit(integ):
    """Logistic growth is not stiff: DP5_BDF never forms a Jacobian, and costs what DP5 does."""
    te = np.linspace(0.0, 10.0, 21)
    st, y, stats, _ = integ(K.MODEL_TEST_LOGISTIC, DP5_BDF, [0.1], [1.3, 10.0], te, 0.0, 10.0,
                            rtol=1e-8, atol=1e-10)
    st5, y5, stats5, _ = integ(K.MODEL_TEST_LOGISTIC, driver.METHOD_DP5, [0.1], [1.3, 10.0], te,
                               0.0, 10.0, rtol=1e-8, atol=1e-10)
    assert st == st5 == driver.SUCCESS
    assert stats[3] == 0
    np.testing.assert_array_equal(y, y5)  # the same DP5 steps, bit for bit
    np.testing.assert_array_equal(stats, stats5)


def test_switch_stiff_goes_implicit(integ):
    """Prothero-Robinson with lambda = -1e5: DP5 alone would need ~3e5 steps (stability);
    DP5_BDF switches after a few and finishes in BDF's step count, to BDF's accuracy."""
    lam = -1e5
    te = np.linspace(0.0, 10.0, 101)
    st, y, stats, _ = integ(K.MODEL_TEST_PROTHERO, DP5_BDF, [0.5], [lam], te, 0.0, 10.0,
                            rtol=1e-8, atol=1e-10)
    assert st == driver.SUCCESS
    assert stats[3] >= 1  # BDF took over
    assert stats[0] < 2000
    np.testing.assert_allclose(y[:, 0], np.sin(te) + 0.5 * np.exp(lam * te), rtol=0, atol=2e-7)
    st5, _, _, _ = integ(K.MODEL_TEST_PROTHERO, driver.METHOD_DP5, [0.5], [lam], te, 0.0, 10.0,
                         rtol=1e-8, atol=1e-10, max_steps=20_000)
    assert st5 == driver.MAX_STEPS


def test_switch_restarts_explicit_after_an_event(integ):
    """Stiff decay then a parameter switch making it non-stiff: BDF before the event, DP5
    after (no new Jacobian), exact solution on both sides."""
    ts, k1, k2, r = 1.0, 1e4, 0.5, 3e3
    te = np.array([0.0, 0.5, 0.999, 1.0, 1.5, 3.0, 6.0])
    ev = [(ts, SET_PARAM, 0, k2)]
    st, y, stats, _ = integ(K.MODEL_TEST_DECAY, DP5_BDF, [2.0], [k1, r], te, 0.0, 6.0,
                            events=ev, rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    ys = decay_exact(ts, 0.0, 2.0, k1, r)
    exact = np.where(te < ts, decay_exact(te, 0.0, 2.0, k1, r), decay_exact(te, ts, ys, k2, r))
    np.testing.assert_allclose(y[:, 0], exact, rtol=1e-8)
    # Jacobians only before the event: the same count as integrating [0, 1] alone
    _, _, stats1, _ = integ(K.MODEL_TEST_DECAY, DP5_BDF, [2.0], [k1, r], [1.0], 0.0, 1.0,
                            rtol=1e-10, atol=1e-12)
    assert stats1[3] >= 1 and stats[3] == stats1[3]
