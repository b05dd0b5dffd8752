r"""Variable-order BDF/NDF (orders 1-5) with Jacobian and LU reuse: the step kernels.

A Numba port of the algorithm of ``scipy.integrate.BDF`` (SciPy's ``_ivp/bdf.py``),
which follows Shampine & Reichelt (1997) ``ode15s``:

* quasi-constant step size in the *difference-array* form: ``D[j]`` holds the
  ``j``-th backward difference of the interpolating polynomial through the last
  ``order + 1`` solution values at spacing ``h``; a change of ``h`` by ``factor``
  re-interpolates the polynomial (``change_D``, the matrices ``R`` and ``U`` of
  the paper);
* the numerical differentiation formulas (NDF, ``kappa`` of Shampine & Reichelt;
  order 5 is plain BDF), solved by a simplified Newton iteration with the
  matrix ``I - c J``, ``c = h / alpha_k``. The Jacobian ``J`` is kept across
  steps and re-evaluated (once per step attempt) only when Newton fails to
  converge; the LU of ``I - c' J`` is kept while ``|c / c' - 1| <= LU_REUSE``
  (the corrections then scaled by ``2 / (1 + c / c')``, as CVODE) and until
  ``J`` is refreshed; a same-order step increase below ``MIN_GROWTH`` is not
  made (these two, from CVODE, cut the LU factorisations by a third);
* local error ``error_const[k] * d`` (``d`` the Newton correction), step and
  order selection after ``order + 1`` steps of equal size, as SciPy.

The event/rule/output driver loop lives in ``cartsim.solvers.driver``
(``METHOD_BDF``); the history is discarded at every event or rule action and
the method restarts at order 1.

Dense output is the interpolating polynomial of the accepted step
(SciPy's ``BdfDenseOutput``):
:math:`y(t) = D_0 + \sum_{j=1}^{k} D_j \prod_{m=0}^{j-1} (t - t_{n+1} + m h) / ((m+1) h)`.

References
----------
L. F. Shampine, M. W. Reichelt, "The MATLAB ODE Suite", SIAM J. Sci. Comput. 18
(1997) 1-22.

E. Hairer, S. P. Norsett, G. Wanner, *Solving Ordinary Differential Equations I*,
2nd ed., Springer 1993, Sect. III.2.
"""

import math

import numba as nb
import numpy as np

from cartsim.models import kernels
from cartsim.solvers import rodas, sparse_lu

MAX_ORDER = 5
NEWTON_MAXITER = 4
NEWTON_TOL = 0.03
"""Newton convergence tolerance in the error-weighted norm (see :func:`newton_tol`)."""
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
MIN_GROWTH = 1.2
"""An accepted step-size increase below this factor (same order) is not made (CVODE-like)."""
LU_REUSE = 0.3
"""The LU of ``I - c' J`` is reused while ``|c / c' - 1| <= LU_REUSE`` (CVODE's ``DGMAX``)."""

_KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0])
GAMMA = np.concatenate((np.zeros(1), np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))))
ALPHA = (1.0 - _KAPPA) * GAMMA
ERROR_CONST = _KAPPA * GAMMA + 1.0 / np.arange(1, MAX_ORDER + 2)

_EPS = 2.220446049250313e-16


@nb.njit(cache=True, error_model="numpy")
def newton_tol(rtol):
    """Newton convergence tolerance ``max(10 eps / rtol, NEWTON_TOL)`` in the error-weighted
    norm. SciPy uses ``min(0.03, sqrt(rtol))`` (1e-3 at rtol 1e-6), far below the local error
    test (1); CVODE stops at a tenth of it. 0.03 saves ~9% of the Newton iterations on ``cd7``
    with the benchmark's accuracy unchanged (``benchmarks/run.py``, part 2)."""
    return max(10.0 * _EPS / rtol, NEWTON_TOL)


@nb.njit(cache=True, error_model="numpy")
def compute_R(order, factor, R):
    """Fill ``R[:order+1, :order+1]``, the matrix that changes the difference array."""
    for j in range(order + 1):
        R[0, j] = 1.0
    for i in range(1, order + 1):
        R[i, 0] = 0.0
        for j in range(1, order + 1):
            R[i, j] = R[i - 1, j] * (i - 1 - factor * j) / i


@nb.njit(cache=True, error_model="numpy")
def change_D(D, order, factor, R, U, RU, Dtmp):
    """Re-interpolate ``D[:order+1]`` in place for the step size changed by ``factor``.

    ``R``, ``U``, ``RU`` are work arrays of at least ``(MAX_ORDER+1, MAX_ORDER+1)`` and
    ``Dtmp`` of at least ``(MAX_ORDER+1, n)``.
    """
    n = D.shape[1]
    k1 = order + 1
    compute_R(order, factor, R)
    compute_R(order, 1.0, U)
    for a in range(k1):
        for b in range(k1):
            s = 0.0
            for m in range(k1):
                s += R[a, m] * U[m, b]
            RU[a, b] = s
    # D_new[a] = sum_b RU[b, a] D[b]
    for a in range(k1):
        for i in range(n):
            s = 0.0
            for b in range(k1):
                s += RU[b, a] * D[b, i]
            Dtmp[a, i] = s
    for a in range(k1):
        for i in range(n):
            D[a, i] = Dtmp[a, i]


@nb.njit(cache=True, error_model="numpy")
def dense_eval(D, order, t_new, h, t, out):
    """Evaluate the interpolating polynomial of the last step (ends at ``t_new``, size ``h``)."""
    n = out.shape[0]
    for i in range(n):
        out[i] = D[0, i]
    pr = 1.0
    for j in range(order):
        pr *= (t - (t_new - j * h)) / ((j + 1) * h)
        for i in range(n):
            out[i] += D[j + 1, i] * pr


@nb.njit(cache=True, error_model="numpy")
def dense_comp(D, order, t_new, h, t, i):
    """Component ``i`` of ``dense_eval``."""
    v = D[0, i]
    pr = 1.0
    for j in range(order):
        pr *= (t - (t_new - j * h)) / ((j + 1) * h)
        v += D[j + 1, i] * pr
    return v


@nb.njit(cache=True, error_model="numpy")
def rms_scaled(v, scale):
    """``sqrt(mean((v / scale)^2))``."""
    n = v.shape[0]
    s = 0.0
    for i in range(n):
        e = v[i] / scale[i]
        s += e * e
    return math.sqrt(s / n)


@nb.njit(cache=True, error_model="numpy")
def jacobian(mid, t, y, p, jm, fwork, ywork, fwork2):
    """Fill ``jm = df/dy (t, y)`` (analytic, else forward differences); returns rhs calls."""
    if kernels.has_jac(mid):
        kernels.jac(mid, t, y, p, jm)
        return 0
    kernels.rhs(mid, t, y, p, fwork)
    return 1 + rodas.fd_jacobian(mid, t, y, p, fwork, jm, ywork, fwork2)


@nb.njit(cache=True, error_model="numpy")
def form_lu(jm, c, lu, piv, sp, sym, vals):
    """Factor ``I - c J`` into ``lu``; returns ``(status, sparse)``.

    First over the analysis ``sym`` of ``J``'s pattern (``cartsim.solvers.sparse_lu``:
    fill-reducing pivot order, diagonal pivots under a threshold test; factors in
    ``vals``, ``sparse`` True),
    else with row pivoting (``rodas.lu_factor`` into ``lu, piv, sp``; ``sparse`` False),
    whose status (``LU_OK``, ``LU_SINGULAR``, ``LU_NONFINITE``) is returned.
    """
    n = jm.shape[0]
    for i in range(n):
        for j in range(n):
            lu[i, j] = -c * jm[i, j]
        lu[i, i] += 1.0
    if sparse_lu.factor(lu, sym, vals):
        return rodas.LU_OK, True
    for i in range(n):
        for j in range(n):
            lu[i, j] = -c * jm[i, j]
        lu[i, i] += 1.0
    return rodas.lu_factor(lu, piv, sp), False


@nb.njit(cache=True, error_model="numpy")
def lu_solve(lu, piv, sp, sym, vals, sparse, b):
    """Solve ``(I - c J) x = b`` in place with the factors of ``form_lu`` (``sparse`` its flag)."""
    if sparse:
        sparse_lu.solve(sym, vals, b)
    else:
        rodas.lu_solve(lu, piv, sp, b)


@nb.njit(cache=True, error_model="numpy")
def solve_system(mid, t_new, y_predict, c, psi, lu, piv, sp, sym, vals, sparse, scale, tol, p,
                 y, d, f, dy, gamrat=1.0):
    """Simplified Newton iteration for the NDF system (SciPy's ``solve_bdf_system``).

    On return ``y`` holds the iterate and ``d`` the total correction ``y - y_predict``.
    Returns ``(converged, n_iter, nonfinite)``; ``n_iter`` is also the number of rhs calls.
    """
    n = y.shape[0]
    for i in range(n):
        y[i] = y_predict[i]
        d[i] = 0.0
    dy_norm_old = -1.0
    converged = False
    nonfinite = False
    k = 0
    for k in range(NEWTON_MAXITER):
        kernels.rhs(mid, t_new, y, p, f)
        fin = True
        for i in range(n):
            if not math.isfinite(f[i]):
                fin = False
        if not fin:
            nonfinite = True
            break
        for i in range(n):
            dy[i] = c * f[i] - psi[i] - d[i]
        lu_solve(lu, piv, sp, sym, vals, sparse, dy)
        if gamrat != 1.0:
            # the LU is of I - c' J with c' = c / gamrat: scale as CVODE (2 / (1 + gamrat))
            w = 2.0 / (1.0 + gamrat)
            for i in range(n):
                dy[i] *= w
        dy_norm = rms_scaled(dy, scale)
        if not math.isfinite(dy_norm):
            nonfinite = True
            break
        if dy_norm_old >= 0.0:
            rate = dy_norm / dy_norm_old if dy_norm_old > 0.0 else math.inf
            if rate >= 1.0 or rate ** (NEWTON_MAXITER - k) / (1.0 - rate) * dy_norm > tol:
                break
        else:
            rate = -1.0
        for i in range(n):
            y[i] += dy[i]
            d[i] += dy[i]
        if dy_norm == 0.0 or (rate >= 0.0 and rate / (1.0 - rate) * dy_norm < tol):
            converged = True
            break
        dy_norm_old = dy_norm
    return converged, k + 1, nonfinite
