"""Compiled test problems for the ODE solvers (closed forms, stiff classics, a benchmark surrogate).

Every problem follows the kernel contract of ``cartsim.models.kernels``::

    rhs(t, y, p, dydt)   # writes dy/dt (float64[n]) in solver coordinates
    jac(t, y, p, J)      # writes d(dy/dt)/dy (float64[n, n]), when the problem has one

Problems, with the model id under which ``kernels`` dispatches them:

``decay`` (10)
    Per component ``y_i' = -p[0] y_i + p[1]`` (any ``n``). Closed form
    ``y(t) = r/k + (y(t0) - r/k) exp(-k (t - t0))`` with ``k = p[0]``, ``r = p[1]``
    (``y(t) = y(t0) + r (t - t0)`` for ``k = 0``). Analytic Jacobian.
``prothero`` (11)
    Prothero-Robinson, per component ``y_i' = p[0] (y_i - sin t) + cos t``, stiff for
    ``p[0] << 0``. Closed form ``y = sin t + (y(t0) - sin t0) exp(p[0] (t - t0))``.
    Non-autonomous, analytic Jacobian.
``logistic`` (12)
    Per component ``y_i' = p[0] y_i (1 - y_i / p[1])``. Closed form
    ``y = K / (1 + (K / y(t0) - 1) exp(-r (t - t0)))``. Analytic Jacobian.
``loglogistic`` (13)
    The logistic law for ``N = exp(y)`` held in log coordinates:
    ``y_i' = p[0] (1 - exp(y_i) / p[1])``. No analytic Jacobian (exercises the
    finite-difference path).
``robertson`` (14)
    Robertson's chemical kinetics (3 states), rates ``p = (0.04, 3e7, 1e4)``.
    Analytic Jacobian. Hairer & Wanner (1996), Sect. IV.1.
``vdp`` (15)
    Van der Pol, ``y0' = y1``, ``y1' = p[0] (1 - y0^2) y1 - y0``. Analytic Jacobian.
``blowup`` (16)
    ``y_i' = p[0] y_i^2``: finite-time blow-up at ``t = 1 / (p[0] y(0))``. Analytic Jacobian.
``linear`` (17)
    ``y' = A y + b`` with ``A = p[:n*n].reshape(n, n)`` (row-major) and
    ``b = p[n*n:n*n+n]``. Analytic Jacobian ``A``.
``forced`` (18)
    ``y_i' = -p[0] y_i + p[1] cos(p[2] t)``; no analytic Jacobian and
    non-autonomous (finite-difference Jacobian and df/dt). Closed form
    ``y = yp(t) + (y(t0) - yp(t0)) exp(-k (t - t0))``, ``yp = A cos(wt) + B sin(wt)``,
    ``A = a k / (k^2 + w^2)``, ``B = a w / (k^2 + w^2)``.
``cartlike`` (19)
    A 14-state CAR-T-like benchmark surrogate (six log cell populations, four
    fast cytokines, two-compartment fludarabine / cyclophosphamide PK driven by
    infusion-rate parameters switched by events). Written to resemble the
    reference model of ``BENCHMARKS.md`` in size, stiffness and ``exp`` count, for
    solver timing only; it has no clinical meaning. No analytic Jacobian.
"""

import math

import numba as nb
import numpy as np

# ----------------------------------------------------------------------------- decay


@nb.njit(cache=True, error_model="numpy")
def decay_rhs(t, y, p, dydt):
    """``y_i' = -p[0] y_i + p[1]``."""
    k = p[0]
    r = p[1]
    for i in range(y.shape[0]):
        dydt[i] = -k * y[i] + r


@nb.njit(cache=True, error_model="numpy")
def decay_jac(t, y, p, J):
    """Diagonal ``-p[0]``."""
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
        J[i, i] = -p[0]


# ----------------------------------------------------------------------------- Prothero-Robinson


@nb.njit(cache=True, error_model="numpy")
def prothero_rhs(t, y, p, dydt):
    """``y_i' = p[0] (y_i - sin t) + cos t``."""
    lam = p[0]
    s = math.sin(t)
    c = math.cos(t)
    for i in range(y.shape[0]):
        dydt[i] = lam * (y[i] - s) + c


@nb.njit(cache=True, error_model="numpy")
def prothero_jac(t, y, p, J):
    """Diagonal ``p[0]``."""
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
        J[i, i] = p[0]


# ----------------------------------------------------------------------------- logistic


@nb.njit(cache=True, error_model="numpy")
def logistic_rhs(t, y, p, dydt):
    """``y_i' = r y_i (1 - y_i / K)``."""
    r = p[0]
    kk = p[1]
    for i in range(y.shape[0]):
        dydt[i] = r * y[i] * (1.0 - y[i] / kk)


@nb.njit(cache=True, error_model="numpy")
def logistic_jac(t, y, p, J):
    """Diagonal ``r (1 - 2 y_i / K)``."""
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
        J[i, i] = p[0] * (1.0 - 2.0 * y[i] / p[1])


@nb.njit(cache=True, error_model="numpy")
def loglogistic_rhs(t, y, p, dydt):
    """``y_i' = r (1 - exp(y_i) / K)`` (logistic growth of ``N = exp(y)``)."""
    r = p[0]
    kk = p[1]
    for i in range(y.shape[0]):
        dydt[i] = r * (1.0 - math.exp(y[i]) / kk)


# ----------------------------------------------------------------------------- Robertson


@nb.njit(cache=True, error_model="numpy")
def robertson_rhs(t, y, p, dydt):
    """Robertson: ``y0' = -k1 y0 + k3 y1 y2``, ``y1' = k1 y0 - k3 y1 y2 - k2 y1^2``,
    ``y2' = k2 y1^2``."""
    k1 = p[0]
    k2 = p[1]
    k3 = p[2]
    a = k1 * y[0]
    b = k3 * y[1] * y[2]
    c = k2 * y[1] * y[1]
    dydt[0] = -a + b
    dydt[1] = a - b - c
    dydt[2] = c


@nb.njit(cache=True, error_model="numpy")
def robertson_jac(t, y, p, J):
    """Analytic Jacobian of Robertson's problem."""
    k1 = p[0]
    k2 = p[1]
    k3 = p[2]
    J[0, 0] = -k1
    J[0, 1] = k3 * y[2]
    J[0, 2] = k3 * y[1]
    J[1, 0] = k1
    J[1, 1] = -k3 * y[2] - 2.0 * k2 * y[1]
    J[1, 2] = -k3 * y[1]
    J[2, 0] = 0.0
    J[2, 1] = 2.0 * k2 * y[1]
    J[2, 2] = 0.0


# ----------------------------------------------------------------------------- Van der Pol


@nb.njit(cache=True, error_model="numpy")
def vdp_rhs(t, y, p, dydt):
    """Van der Pol: ``y0' = y1``, ``y1' = mu (1 - y0^2) y1 - y0``."""
    mu = p[0]
    dydt[0] = y[1]
    dydt[1] = mu * (1.0 - y[0] * y[0]) * y[1] - y[0]


@nb.njit(cache=True, error_model="numpy")
def vdp_jac(t, y, p, J):
    """Analytic Jacobian of Van der Pol."""
    mu = p[0]
    J[0, 0] = 0.0
    J[0, 1] = 1.0
    J[1, 0] = -2.0 * mu * y[0] * y[1] - 1.0
    J[1, 1] = mu * (1.0 - y[0] * y[0])


# ----------------------------------------------------------------------------- blow-up


@nb.njit(cache=True, error_model="numpy")
def blowup_rhs(t, y, p, dydt):
    """``y_i' = p[0] y_i^2``."""
    for i in range(y.shape[0]):
        dydt[i] = p[0] * y[i] * y[i]


@nb.njit(cache=True, error_model="numpy")
def blowup_jac(t, y, p, J):
    """Diagonal ``2 p[0] y_i``."""
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
        J[i, i] = 2.0 * p[0] * y[i]


# ----------------------------------------------------------------------------- linear


@nb.njit(cache=True, error_model="numpy")
def linear_rhs(t, y, p, dydt):
    """``y' = A y + b`` with ``A`` row-major in ``p[:n*n]`` and ``b = p[n*n:n*n+n]``."""
    n = y.shape[0]
    for i in range(n):
        s = p[n * n + i]
        for j in range(n):
            s += p[i * n + j] * y[j]
        dydt[i] = s


@nb.njit(cache=True, error_model="numpy")
def linear_jac(t, y, p, J):
    """``J = A``."""
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = p[i * n + j]


# ----------------------------------------------------------------------------- forced decay


@nb.njit(cache=True, error_model="numpy")
def forced_rhs(t, y, p, dydt):
    """``y_i' = -p[0] y_i + p[1] cos(p[2] t)``."""
    f = p[1] * math.cos(p[2] * t)
    for i in range(y.shape[0]):
        dydt[i] = -p[0] * y[i] + f


# ----------------------------------------------------------------------------- CAR-T-like surrogate

CL_N = 14
"""Number of states of the ``cartlike`` surrogate."""
CL_NP = 40
"""Length of its parameter vector."""
CL_LOG = (True, True, True, True, True, True, False, False, False, False,
          False, False, False, False)
"""Which ``cartlike`` states are held as ln(cells)."""
CL_P_FLU_INF = 28
"""``cartlike`` slot of the fludarabine infusion rate (mg/day), switched by events."""
CL_P_CY_INF = 33
"""``cartlike`` slot of the cyclophosphamide infusion rate (mg/day), switched by events."""


@nb.njit(cache=True, error_model="numpy")
def cartlike_rhs(t, y, p, dydt):
    """Right-hand side of the 14-state CAR-T-like surrogate (see the module docstring).

    States: 0 ln CAR-T effector, 1 ln CAR-T memory, 2 ln CAR-T exhausted, 3 ln blasts,
    4 ln normal T cells, 5 ln normal CD7+ cells, 6-9 IL-6, IFN-g, IL-10, IL-15 (pg/mL),
    10-11 fludarabine central/peripheral (mg), 12-13 cyclophosphamide central/peripheral (mg).
    """
    e = math.exp(y[0])
    b = math.exp(y[3])
    nn = math.exp(y[4])
    hh = math.exp(y[5])
    em = math.exp(y[0] - y[1])
    ex = math.exp(y[0] - y[2])
    il6 = y[6]
    ifn = y[7]
    il10 = y[8]
    il15 = y[9]
    cf = y[10] / p[32]
    cc = y[12] / p[37]
    chemo = cf + 0.1 * cc
    bsat = b / (b + p[1])
    c15 = il15 / (il15 + p[26])
    supp = 1.0 / (1.0 + il10 / 50.0)
    kdiff = p[3]
    kexh = p[5] * bsat
    dydt[0] = (p[0] * bsat * (1.0 + c15) * supp - p[2] - kdiff - kexh - p[39] * chemo
               - 0.05 * math.exp(-ifn / 200.0))
    dydt[1] = kdiff * em - p[4] - p[39] * chemo
    dydt[2] = kexh * ex - p[6]
    kill = p[9] * e / (b + p[10]) * (1.0 + ifn / (ifn + 100.0))
    dydt[3] = p[7] * (1.0 - b / p[8]) - kill - p[17] * chemo
    frat = p[13] * e / (nn + p[14])
    dydt[4] = p[11] * (1.0 - nn / p[12]) - frat - p[17] * chemo
    dydt[5] = p[15] * (1.0 - hh / p[16]) - p[13] * e / (hh + p[14]) - 0.5 * p[17] * chemo
    act = e * bsat * 1e-9
    dydt[6] = p[18] * act * 1e9 * (1.0 + ifn / 100.0) - p[19] * il6
    dydt[7] = p[20] * act * 1e9 - p[21] * ifn
    dydt[8] = p[22] * act * 1e9 + 0.01 * il6 - p[23] * il10
    lymph = (e + nn) * 1e-10
    dydt[9] = p[24] * (1.0 + p[38] * math.exp(-10.0 * nn / p[12])) - p[25] * il15 \
        - p[27] * lymph * il15
    dydt[10] = p[28] - (p[29] + p[30]) * y[10] + p[31] * y[11]
    dydt[11] = p[30] * y[10] - p[31] * y[11]
    dydt[12] = p[33] - (p[34] + p[35]) * y[12] + p[36] * y[13]
    dydt[13] = p[35] * y[12] - p[36] * y[13]


def cartlike_problem():
    """Default parameters, initial state, chemotherapy events and log mask of ``cartlike``.

    Returns
    -------
    p : float64[CL_NP]
    y0 : float64[CL_N]
        Day -5 state (solver coordinates); CAR-T populations start at 1 cell, the
        CAR-T dose is left to the caller (``ADD_STATE`` on state 0 at day 0).
    events : tuple of arrays (t, kind, idx, val)
        Fludarabine (30 min) and cyclophosphamide (1 h) infusions on days -5, -4, -3,
        as ``SET_PARAM`` switches of the infusion-rate slots (kind 1).
    log_mask : bool[CL_N]
    """
    p = np.zeros(CL_NP)
    p[:28] = [1.0, 1e9, 0.15, 0.02, 0.01, 0.1, 0.3, 0.05, 1e12, 10.0, 1e9,
              0.05, 1e11, 0.5, 1e10, 0.03, 1e11, 0.3,
              3e-6, 33.0, 3.3e-7, 16.6, 4e-8, 8.3, 4.2, 4.2, 10.0, 0.1]
    p[29:33] = [2.0, 1.5, 0.8, 30.0]
    p[34:40] = [3.0, 1.0, 1.0, 40.0, 5.0, 0.1]
    y0 = np.array([0.0, 0.0, 0.0, np.log(1e11), np.log(5e10), np.log(3e10),
                   1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    t, kind, idx, val = [], [], [], []
    for d in (-5.0, -4.0, -3.0):
        for start, dur, slot, rate in ((d, 0.5 / 24, CL_P_FLU_INF, 54.0 / (0.5 / 24)),
                                       (d, 1.0 / 24, CL_P_CY_INF, 900.0 / (1.0 / 24))):
            t += [start, start + dur]
            kind += [1, 1]
            idx += [slot, slot]
            val += [rate, 0.0]
    order = np.argsort(np.array(t), kind="stable")
    events = (np.array(t)[order], np.array(kind, np.int64)[order],
              np.array(idx, np.int64)[order], np.array(val)[order])
    return p, y0, events, np.array(CL_LOG, dtype=np.bool_)
