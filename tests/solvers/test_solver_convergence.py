"""Empirical orders at fixed step size (``METHOD_*_FIXED``): step values and dense output."""

import numpy as np
import pytest
from conftest import run_integrate

from cartsim.models import kernels as K
from cartsim.solvers import driver

R, KK, Y0, T1 = 1.0, 10.0, 0.5, 4.0


def logistic(t):
    return KK / (1.0 + (KK / Y0 - 1.0) * np.exp(-R * t))


def _errors(mid, method, hs, dense, log=False):
    errs = []
    for h in hs:
        nst = int(round(T1 / h))
        # midpoints of the steps (dense output) or the step end points themselves
        te = (np.arange(nst) + (0.37 if dense else 1.0)) * h
        y0 = np.log(Y0) if log else Y0
        st, y, stats, _ = run_integrate(mid, method, [y0], [R, KK], te, 0.0, T1, h0=h,
                                        log_mask=[log])
        assert st == driver.SUCCESS and stats[0] == nst and stats[1] == 0
        yy = np.exp(y[:, 0]) if log else y[:, 0]
        errs.append(np.max(np.abs(yy - logistic(te)) / logistic(te)))
    return np.array(errs)


def _slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


HS = 0.2 / 2.0 ** np.arange(5)  # 20 .. 320 steps


@pytest.mark.parametrize("mid, log, hs", [
    (K.MODEL_TEST_LOGISTIC, False, HS),
    # the finite-difference Jacobian (relative error ~1e-8) floors the error near 1e-11
    (K.MODEL_TEST_LOGLOGISTIC, True, 2.0 * HS[:4])], ids=["analytic-jac", "fd-jac-log"])
def test_rodas4_order(mid, log, hs):
    errs = _errors(mid, driver.METHOD_RODAS4_FIXED, hs, dense=False, log=log)
    assert abs(_slope(hs, errs) - 4.0) < 0.3, errs


def test_dp5_order():
    errs = _errors(K.MODEL_TEST_LOGISTIC, driver.METHOD_DP5_FIXED, HS, dense=False)
    assert abs(_slope(HS, errs) - 5.0) < 0.3, errs


def test_prothero_robinson_rodas4_order_non_autonomous():
    """Non-stiff Prothero-Robinson exercises the (finite-difference) df/dt terms."""
    errs = []
    for h in HS:
        nst = int(round(T1 / h))
        te = np.arange(1, nst + 1) * h
        st, y, _, _ = run_integrate(K.MODEL_TEST_PROTHERO, driver.METHOD_RODAS4_FIXED, [1.0],
                                    [-1.0], te, 0.0, T1, h0=h)
        assert st == driver.SUCCESS
        errs.append(np.max(np.abs(y[:, 0] - np.sin(te) - np.exp(-te))))
    assert abs(_slope(HS, np.array(errs)) - 4.0) < 0.3, errs


@pytest.mark.parametrize("method, lo", [(driver.METHOD_RODAS4_FIXED, 3.0),
                                        (driver.METHOD_DP5_FIXED, 4.0)], ids=["rodas4", "dp5"])
def test_dense_output_order(method, lo):
    """Continuous extensions of order 3 (Rodas4) and 4 (DP5): error slope >= order."""
    errs = _errors(K.MODEL_TEST_LOGISTIC, method, HS, dense=True)
    s = _slope(HS, errs)
    assert lo - 0.2 < s < lo + 1.5, (s, errs)
