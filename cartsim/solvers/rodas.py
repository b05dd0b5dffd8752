r"""Rodas4: a 6-stage, L-stable, stiffly accurate Rosenbrock method of order 4(3).

One step from :math:`(t_0, y_0)` with step :math:`h` solves, for
:math:`i = 1..6`, the linear systems (transformed form without matrix-vector
products, Hairer & Wanner 1996, Sect. IV.7, eq. (7.25))

.. math::

    \Big(\frac{1}{h\gamma} I - J\Big) u_i
        = f\Big(t_0 + \alpha_i h,\; y_0 + \sum_{j<i} a_{ij} u_j\Big)
          + \sum_{j<i} \frac{c_{ij}}{h} u_j + \gamma_i h \frac{\partial f}{\partial t}(t_0, y_0),

with :math:`J = \partial f / \partial y (t_0, y_0)` and :math:`\gamma = 1/4`. The method is
stiffly accurate: :math:`y_1 = y_0 + \sum_{j\le5} a_{6j} u_j + u_6` where the fifth and
sixth internal stages coincide with the embedded (order 3) and the main (order 4)
solutions, so the local error estimate is simply :math:`u_6`. Only one LU
factorisation of :math:`W = I/(h\gamma) - J` is needed per step and reused for all six
stages (and recomputed with the same :math:`J` after a rejected step).

Continuous extension (order 3, Hairer & Wanner 1996, Sect. IV.7, "dense output"):

.. math::

    u(t_0 + \theta h) = (1-\theta) y_0 + \theta\big(y_1 + (1-\theta)(d_1 + \theta d_2)\big),
    \qquad d_1 = \sum_j h_{2j} u_j,\quad d_2 = \sum_j h_{3j} u_j .

The coefficients are those of ``RODAS`` (method choice ``METH = 1``, "Rodas4") by
E. Hairer and G. Wanner, listed in their Fortran code ``rodas.f``; they were
checked here against independent transcriptions and by the empirical
convergence tests in ``tests/solvers``.

Jacobians are analytic (``kernels.jac``) when the model has one, else forward
differences with per-column increments
:math:`\delta_j = \sqrt{\varepsilon}\max(|y_j|, 10^{-5})` (made exactly representable
by :math:`\delta_j \leftarrow (y_j + \delta_j) - y_j`). For non-autonomous models
:math:`\partial f/\partial t` is taken by central differences with
:math:`\delta_t = \varepsilon^{1/3} \max(|t|, 1)`.

References
----------
E. Hairer, G. Wanner, *Solving Ordinary Differential Equations II. Stiff and
Differential-Algebraic Problems*, 2nd ed., Springer 1996, Sect. IV.7.
"""

import math

import numba as nb
import numpy as np

from cartsim.models import kernels

# ------------------------------------------------------------------ Rodas4 coefficients (rodas.f)
GAMMA = 0.25
C2 = 0.386
C3 = 0.21
C4 = 0.63
D1 = 0.25
D2 = -0.1043
D3 = 0.1035
D4 = -0.3620000000000023e-01
A21 = 0.1544000000000000e01
A31 = 0.9466785280815826
A32 = 0.2557011698983284
A41 = 0.3314825187068521e01
A42 = 0.2896124015972201e01
A43 = 0.9986419139977817
A51 = 0.1221224509226641e01
A52 = 0.6019134481288629e01
A53 = 0.1253708332932087e02
A54 = -0.6878860361058950
CC21 = -0.5668800000000000e01
CC31 = -0.2430093356833875e01
CC32 = -0.2063599157091915
CC41 = -0.1073529058151375
CC42 = -0.9594562251023355e01
CC43 = -0.2047028614809616e02
CC51 = 0.7496443313967647e01
CC52 = -0.1024680431464352e02
CC53 = -0.3399990352819905e02
CC54 = 0.1170890893206160e02
CC61 = 0.8083246795921522e01
CC62 = -0.7981132988064893e01
CC63 = -0.3152159432874371e02
CC64 = 0.1631930543123136e02
CC65 = -0.6058818238834054e01
H21 = 0.1012623508344586e02
H22 = -0.7487995877610167e01
H23 = -0.3480091861555747e02
H24 = -0.7992771707568823e01
H25 = 0.1025137723295662e01
H31 = -0.6762803392801253
H32 = 0.6087714651680015e01
H33 = 0.1643084320892478e02
H34 = 0.2476722511418386e02
H35 = -0.6594389125716872e01

ORDER = 4
"""Order of the main solution (the embedded one has order 3)."""

# LU status codes
LU_OK = 0
LU_SINGULAR = 1
LU_NONFINITE = 2

_SQRT_EPS = math.sqrt(2.220446049250313e-16)
_CBRT_EPS = 2.220446049250313e-16 ** (1.0 / 3.0)


@nb.njit(cache=True, error_model="numpy")
def lu_factor(a, piv, sp):
    """In-place LU factorisation with partial (row) pivoting, ``P A = L U``.

    Parameters
    ----------
    a : float64[n, n]
        Matrix, overwritten by the factors: ``L`` strictly below the diagonal (unit
        diagonal implied), ``U`` strictly above it, and the *reciprocal* ``1 / U[k, k]``
        on the diagonal (so that the solves multiply instead of divide).
    piv : int64[n]
        Output: at elimination step ``k`` rows ``k`` and ``piv[k]`` were swapped.
    sp : int64[n, 2 n + 2]
        Output: sparsity of the factors for ``lu_solve``. Row ``i`` lists the columns
        of the non-zeros of ``L[i, :i]`` in ``sp[i, :sp[i, 2n]]`` and of ``U[i, i+1:]`` in
        ``sp[i, n:n + sp[i, 2n+1]]``.

    Returns
    -------
    int
        ``LU_OK``; ``LU_SINGULAR`` when a pivot column is exactly zero;
        ``LU_NONFINITE`` when a pivot is NaN or infinite.

    Notes
    -----
    Dense right-looking elimination that skips zero multipliers and updates only
    over the non-zeros of the pivot row (recorded once the row is final; the
    factors are bitwise those of the dense loop, since only exact zeros are
    skipped); the triangular solves then run over the recorded non-zeros only.
    On the 23-state ``cd7`` Jacobian this halves the cost of a factorisation. For the
    sparse Jacobians of compartment models (``n`` ~ 15-25, 15-30 % non-zeros) the six solves of a
    Rodas4 step cost about half of dense ones; for dense matrices this costs a few
    percent. (A column-oriented variant and a fast-math variant were not faster:
    at this size loop overhead, not flops, dominates.)
    """
    n = a.shape[0]
    n2 = 2 * n
    for k in range(n):
        p = k
        amax = abs(a[k, k])
        for i in range(k + 1, n):
            v = abs(a[i, k])
            if v > amax:
                amax = v
                p = i
        piv[k] = p
        if not math.isfinite(amax):
            return LU_NONFINITE
        if amax == 0.0:
            return LU_SINGULAR
        if p != k:
            for j in range(n):
                tmp = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = tmp
        inv = 1.0 / a[k, k]
        # row k of U is final now: record its non-zeros and update over them only
        nu = 0
        for j in range(k + 1, n):
            if a[k, j] != 0.0:
                sp[k, n + nu] = j
                nu += 1
        sp[k, n2 + 1] = nu
        for i in range(k + 1, n):
            lik = a[i, k] * inv
            a[i, k] = lik
            if lik != 0.0:
                for q in range(nu):
                    j = sp[k, n + q]
                    a[i, j] -= lik * a[k, j]
        a[k, k] = inv
    for i in range(n):
        nl = 0
        for j in range(i):
            if a[i, j] != 0.0:
                sp[i, nl] = j
                nl += 1
        sp[i, n2] = nl
    return LU_OK


@nb.njit(cache=True, error_model="numpy")
def lu_solve(a, piv, sp, b):
    """Solve ``A x = b`` in place (``b`` becomes ``x``) from the output of ``lu_factor``."""
    n = a.shape[0]
    n2 = 2 * n
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(1, n):
        s = b[i]
        for q in range(sp[i, n2]):
            j = sp[i, q]
            s -= a[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for q in range(sp[i, n2 + 1]):
            j = sp[i, n + q]
            s -= a[i, j] * b[j]
        b[i] = s * a[i, i]


@nb.njit(cache=True, error_model="numpy")
def fd_jacobian(mid, t, y, p, f0, jm, ywork, fwork):
    """Forward-difference Jacobian ``jm[:, j] = (f(t, y + d_j e_j) - f0) / d_j``.

    ``d_j = sqrt(eps) * max(|y_j|, 1e-5)``, rounded so that ``y_j + d_j`` is exact.
    ``f0 = f(t, y)`` must be supplied. Returns the number of right-hand-side calls.
    """
    n = y.shape[0]
    for i in range(n):
        ywork[i] = y[i]
    for j in range(n):
        yj = y[j]
        d = _SQRT_EPS * max(abs(yj), 1e-5)
        ywork[j] = yj + d
        d = ywork[j] - yj
        kernels.rhs(mid, t, ywork, p, fwork)
        inv = 1.0 / d
        for i in range(n):
            jm[i, j] = (fwork[i] - f0[i]) * inv
        ywork[j] = yj
    return n


@nb.njit(cache=True, error_model="numpy")
def fd_dfdt(mid, t, y, p, fx, fwork):
    """Central-difference ``fx = df/dt (t, y)``; returns the number of right-hand-side calls."""
    n = y.shape[0]
    d = _CBRT_EPS * max(abs(t), 1.0)
    tp = t + d
    tm = t - d
    kernels.rhs(mid, tp, y, p, fx)
    kernels.rhs(mid, tm, y, p, fwork)
    inv = 1.0 / (tp - tm)
    for i in range(n):
        fx[i] = (fx[i] - fwork[i]) * inv
    return 2


@nb.njit(cache=True, error_model="numpy")
def rodas_jacobian(mid, t, y, p, f0, jm, fx, ywork, fwork, autonomous):
    """Fill ``jm = df/dy`` (analytic or finite differences) and, if not autonomous, ``fx = df/dt``.

    Returns the number of right-hand-side calls spent (0 for an analytic Jacobian
    of an autonomous model).
    """
    nfev = 0
    if kernels.has_jac(mid):
        kernels.jac(mid, t, y, p, jm)
    else:
        nfev += fd_jacobian(mid, t, y, p, f0, jm, ywork, fwork)
    if not autonomous:
        nfev += fd_dfdt(mid, t, y, p, fx, fwork)
    return nfev


@nb.njit(cache=True, error_model="numpy")
def rodas_step(mid, t, h, y, p, f0, jm, fx, autonomous, lu, piv, sp, k, ynew, ytmp, dy, atol,
               rtol):
    """Attempt one Rodas4 step of size ``h`` from ``(t, y)``.

    Parameters
    ----------
    mid : int
        Model id (``cartsim.models.kernels``).
    t, h : float
        Start of the step and step size (> 0).
    y, p : float64[n], float64[n_p]
        State at ``t`` (solver coordinates) and parameters.
    f0 : float64[n]
        ``f(t, y)``.
    jm : float64[n, n]
        ``df/dy (t, y)``; unchanged.
    fx : float64[n]
        ``df/dt (t, y)``; used only when ``autonomous`` is False.
    lu, piv, sp : float64[n, n], int64[n], int64[n, 2 n + 2]
        Work: LU factors of ``W = I / (h gamma) - J`` (see ``lu_factor``).
    k : float64[>=6, n]
        Output: stage vectors ``u_1..u_6`` in rows 0..5 (rows 0..4 feed the dense output).
    ynew, ytmp, dy : float64[n]
        Output: the order-4 solution at ``t + h``; work vectors.
    atol : float64[n]
        Absolute tolerances.
    rtol : float
        Relative tolerance.

    Returns
    -------
    (int, float)
        LU status (``LU_OK`` or the failure code; no stage is computed then) and the
        scaled RMS error norm ``sqrt(mean((u_6 / (atol + rtol max(|y|, |ynew|)))^2))``,
        NaN if any value was not finite.
    """
    n = y.shape[0]
    fac = 1.0 / (h * GAMMA)
    for i in range(n):
        for j in range(n):
            lu[i, j] = -jm[i, j]
        lu[i, i] += fac
    info = lu_factor(lu, piv, sp)
    if info != LU_OK:
        return info, np.nan

    hc21 = CC21 / h
    hc31 = CC31 / h
    hc32 = CC32 / h
    hc41 = CC41 / h
    hc42 = CC42 / h
    hc43 = CC43 / h
    hc51 = CC51 / h
    hc52 = CC52 / h
    hc53 = CC53 / h
    hc54 = CC54 / h
    hc61 = CC61 / h
    hc62 = CC62 / h
    hc63 = CC63 / h
    hc64 = CC64 / h
    hc65 = CC65 / h
    k1 = k[0]
    k2 = k[1]
    k3 = k[2]
    k4 = k[3]
    k5 = k[4]
    k6 = k[5]

    # stage 1
    if autonomous:
        for i in range(n):
            k1[i] = f0[i]
    else:
        hd1 = h * D1
        for i in range(n):
            k1[i] = f0[i] + hd1 * fx[i]
    lu_solve(lu, piv, sp, k1)

    # stage 2
    for i in range(n):
        ytmp[i] = y[i] + A21 * k1[i]
    kernels.rhs(mid, t + C2 * h, ytmp, p, dy)
    if autonomous:
        for i in range(n):
            k2[i] = dy[i] + hc21 * k1[i]
    else:
        hd2 = h * D2
        for i in range(n):
            k2[i] = dy[i] + hc21 * k1[i] + hd2 * fx[i]
    lu_solve(lu, piv, sp, k2)

    # stage 3
    for i in range(n):
        ytmp[i] = y[i] + A31 * k1[i] + A32 * k2[i]
    kernels.rhs(mid, t + C3 * h, ytmp, p, dy)
    if autonomous:
        for i in range(n):
            k3[i] = dy[i] + hc31 * k1[i] + hc32 * k2[i]
    else:
        hd3 = h * D3
        for i in range(n):
            k3[i] = dy[i] + hc31 * k1[i] + hc32 * k2[i] + hd3 * fx[i]
    lu_solve(lu, piv, sp, k3)

    # stage 4
    for i in range(n):
        ytmp[i] = y[i] + A41 * k1[i] + A42 * k2[i] + A43 * k3[i]
    kernels.rhs(mid, t + C4 * h, ytmp, p, dy)
    if autonomous:
        for i in range(n):
            k4[i] = dy[i] + hc41 * k1[i] + hc42 * k2[i] + hc43 * k3[i]
    else:
        hd4 = h * D4
        for i in range(n):
            k4[i] = dy[i] + hc41 * k1[i] + hc42 * k2[i] + hc43 * k3[i] + hd4 * fx[i]
    lu_solve(lu, piv, sp, k4)

    # stage 5 (alpha_5 = 1, gamma_5 = 0)
    for i in range(n):
        ytmp[i] = y[i] + A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]
    kernels.rhs(mid, t + h, ytmp, p, dy)
    for i in range(n):
        k5[i] = dy[i] + hc51 * k1[i] + hc52 * k2[i] + hc53 * k3[i] + hc54 * k4[i]
    lu_solve(lu, piv, sp, k5)

    # stage 6: embedded solution ytmp + u_5, main solution ytmp + u_5 + u_6
    for i in range(n):
        ytmp[i] += k5[i]
    kernels.rhs(mid, t + h, ytmp, p, dy)
    for i in range(n):
        k6[i] = dy[i] + hc61 * k1[i] + hc62 * k2[i] + hc63 * k3[i] + hc64 * k4[i] + hc65 * k5[i]
    lu_solve(lu, piv, sp, k6)

    err = 0.0
    for i in range(n):
        yn = ytmp[i] + k6[i]
        ynew[i] = yn
        sk = atol[i] + rtol * max(abs(y[i]), abs(yn))
        e = k6[i] / sk
        err += e * e
    err = math.sqrt(err / n)
    if not math.isfinite(err):
        return LU_OK, np.nan
    return LU_OK, err


@nb.njit(cache=True, error_model="numpy")
def rodas_dense(y0, y1, k, dense):
    r"""Fill the dense-output coefficients of the last Rodas4 step.

    ``dense`` rows ``r0..r4`` use the common form evaluated by
    ``cartsim.solvers.driver.dense_eval``:
    :math:`u(\theta) = r_0 + \theta(r_1 + (1-\theta)(r_2 + \theta(r_3 + (1-\theta) r_4)))`;
    for Rodas4 :math:`r_0 = y_0`, :math:`r_1 = y_1 - y_0`, :math:`r_2 = \sum_j h_{2j} u_j`,
    :math:`r_3 = \sum_j h_{3j} u_j`, :math:`r_4 = 0`.
    """
    n = y0.shape[0]
    for i in range(n):
        dense[0, i] = y0[i]
        dense[1, i] = y1[i] - y0[i]
        dense[2, i] = (H21 * k[0, i] + H22 * k[1, i] + H23 * k[2, i] + H24 * k[3, i]
                       + H25 * k[4, i])
        dense[3, i] = (H31 * k[0, i] + H32 * k[1, i] + H33 * k[2, i] + H34 * k[3, i]
                       + H35 * k[4, i])
        dense[4, i] = 0.0
