"""Stiff problems: Rodas4 against scipy's Radau and matrix exponentials."""

import numpy as np
import pytest
import scipy.linalg
from conftest import RODAS, run_integrate
from scipy.integrate import solve_ivp

from cartsim.models import kernels as K
from cartsim.solvers import driver


def test_robertson_vs_radau():
    p = np.array([0.04, 3e7, 1e4])
    te = np.array([0.0, 1e-3, 0.1, 1.0, 10.0, 40.0, 400.0])

    def f(t, y):
        return [-p[0] * y[0] + p[2] * y[1] * y[2],
                p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] ** 2, p[1] * y[1] ** 2]

    def jac(t, y):
        return [[-p[0], p[2] * y[2], p[2] * y[1]],
                [p[0], -p[2] * y[2] - 2 * p[1] * y[1], -p[2] * y[1]],
                [0.0, 2 * p[1] * y[1], 0.0]]

    atol = np.full(3, 1e-14)
    ref = solve_ivp(f, (0.0, 400.0), [1.0, 0.0, 0.0], method="Radau", t_eval=te, rtol=1e-10,
                    atol=1e-16, jac=jac).y.T
    st, y, stats, _ = run_integrate(K.MODEL_TEST_ROBERTSON, RODAS, [1.0, 0.0, 0.0], p, te, 0.0,
                                    400.0, rtol=1e-10, atol=atol)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(y, ref, rtol=2e-7, atol=1e-16)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)
    assert stats[0] < 5000


def test_stiff_linear_few_steps():
    """Eigenvalues -1, -1e3, -1e6: Rodas4 needs few steps (an explicit method ~ 3e6)."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    a = q @ np.diag([-1.0, -1e3, -1e6]) @ q.T
    b = np.array([1.0, -2.0, 0.5])
    p = np.concatenate([a.ravel(), b])
    y0 = np.array([1.0, 2.0, 3.0])
    te = np.array([0.0, 0.5, 1.0, 5.0, 10.0])
    yinf = -np.linalg.solve(a, b)
    exact = np.array([yinf + scipy.linalg.expm(a * t) @ (y0 - yinf) for t in te])
    st, y, stats, _ = run_integrate(K.MODEL_TEST_LINEAR, RODAS, y0, p, te, 0.0, 10.0,
                                    rtol=1e-8, atol=1e-10)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(y, exact, rtol=1e-6, atol=1e-9)
    assert stats[0] < 1000


def test_van_der_pol_stiff_vs_radau():
    mu = 1000.0
    te = np.linspace(0.0, 2000.0, 9)

    def f(t, y):
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    def jac(t, y):
        return [[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1.0, mu * (1 - y[0] ** 2)]]

    ref = solve_ivp(f, (0.0, 2000.0), [2.0, 0.0], method="Radau", t_eval=te, rtol=1e-10,
                    atol=1e-10, jac=jac).y.T
    st, y, stats, _ = run_integrate(K.MODEL_TEST_VDP, RODAS, [2.0, 0.0], [mu], te, 0.0, 2000.0,
                                    rtol=1e-9, atol=1e-9)
    assert st == driver.SUCCESS
    np.testing.assert_allclose(y[:, 0], ref[:, 0], rtol=0, atol=1e-5)
    assert stats[0] < 20000


@pytest.mark.parametrize("mid", [K.MODEL_TEST_LOGISTIC, K.MODEL_TEST_LOGLOGISTIC])
def test_fd_and_analytic_jacobians_agree(mid):
    """The finite-difference Jacobian matches the analytic one (through the solution)."""
    te = np.linspace(0.0, 5.0, 11)
    log = mid == K.MODEL_TEST_LOGLOGISTIC
    y0 = np.log(0.5) if log else 0.5
    st, y, _, _ = run_integrate(mid, RODAS, [y0], [1.0, 10.0], te, 0.0, 5.0, log_mask=[log],
                                rtol=1e-10, atol=1e-12)
    assert st == driver.SUCCESS
    yy = np.exp(y[:, 0]) if log else y[:, 0]
    np.testing.assert_allclose(yy, 10.0 / (1.0 + 19.0 * np.exp(-te)), rtol=1e-8)
