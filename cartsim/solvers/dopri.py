r"""Dormand-Prince 5(4): explicit Runge-Kutta pair with FSAL and 4th-order dense output.

Seven stages, the last evaluated at the new solution (first-same-as-last), so a
step costs six right-hand-side calls. The order-5 solution is propagated (local
extrapolation); the difference to the embedded order-4 solution,
:math:`\mathrm{err} = h\sum_i e_i k_i`, drives step-size control.

Dense output: the continuous extension of order 4 due to Shampine (1986) in the
form used by Hairer's ``DOPRI5`` (``CONTD5``),

.. math::

    u(t_0 + \theta h) = r_0 + \theta\big(r_1 + (1-\theta)(r_2 + \theta(r_3 + (1-\theta) r_4))\big),

with :math:`r_0 = y_0`, :math:`r_1 = y_1 - y_0`, :math:`r_2 = h k_1 - r_1`,
:math:`r_3 = r_1 - h k_7 - r_2`, :math:`r_4 = h \sum_i d_i k_i`.

References
----------
J. R. Dormand, P. J. Prince, A family of embedded Runge-Kutta formulae,
J. Comput. Appl. Math. 6 (1980) 19-26.

L. F. Shampine, Some practical Runge-Kutta formulas, Math. Comp. 46 (1986) 135-150.

E. Hairer, S. P. Norsett, G. Wanner, *Solving Ordinary Differential Equations I.
Nonstiff Problems*, 2nd ed., Springer 1993, Sect. II.4-II.6 (step-size control,
dense output, code ``DOPRI5``).
"""

import math

import numba as nb
import numpy as np

from cartsim.models import kernels

C2 = 0.2
C3 = 0.3
C4 = 0.8
C5 = 8.0 / 9.0
A21 = 0.2
A31 = 3.0 / 40.0
A32 = 9.0 / 40.0
A41 = 44.0 / 45.0
A42 = -56.0 / 15.0
A43 = 32.0 / 9.0
A51 = 19372.0 / 6561.0
A52 = -25360.0 / 2187.0
A53 = 64448.0 / 6561.0
A54 = -212.0 / 729.0
A61 = 9017.0 / 3168.0
A62 = -355.0 / 33.0
A63 = 46732.0 / 5247.0
A64 = 49.0 / 176.0
A65 = -5103.0 / 18656.0
A71 = 35.0 / 384.0
A73 = 500.0 / 1113.0
A74 = 125.0 / 192.0
A75 = -2187.0 / 6784.0
A76 = 11.0 / 84.0
E1 = 71.0 / 57600.0
E3 = -71.0 / 16695.0
E4 = 71.0 / 1920.0
E5 = -17253.0 / 339200.0
E6 = 22.0 / 525.0
E7 = -1.0 / 40.0
DD1 = -12715105075.0 / 11282082432.0
DD3 = 87487479700.0 / 32700410799.0
DD4 = -10690763975.0 / 1880347072.0
DD5 = 701980252875.0 / 199316789632.0
DD6 = -1453857185.0 / 822651844.0
DD7 = 69997945.0 / 29380423.0

ORDER = 5
"""Order of the propagated solution (the embedded one has order 4)."""


@nb.njit(cache=True, error_model="numpy")
def dp5_step(mid, t, h, y, p, k, ynew, ytmp, atol, rtol):
    """Attempt one Dormand-Prince 5(4) step of size ``h`` from ``(t, y)``.

    Parameters
    ----------
    mid : int
        Model id (``cartsim.models.kernels``).
    t, h : float
        Start of the step and step size (> 0).
    y, p : float64[n], float64[n_p]
        State at ``t`` and parameters.
    k : float64[7, n]
        Stage derivatives; row 0 must hold ``f(t, y)`` on entry (FSAL); on exit row 6
        holds ``f(t + h, ynew)``.
    ynew, ytmp : float64[n]
        Output: the order-5 solution at ``t + h``; work vector.
    atol : float64[n]
        Absolute tolerances.
    rtol : float
        Relative tolerance.

    Returns
    -------
    float
        Scaled RMS error ``sqrt(mean((err_i / (atol_i + rtol max(|y_i|, |ynew_i|)))^2))``,
        NaN when any value is not finite.
    """
    n = y.shape[0]
    k1 = k[0]
    k2 = k[1]
    k3 = k[2]
    k4 = k[3]
    k5 = k[4]
    k6 = k[5]
    k7 = k[6]
    for i in range(n):
        ytmp[i] = y[i] + h * A21 * k1[i]
    kernels.rhs(mid, t + C2 * h, ytmp, p, k2)
    for i in range(n):
        ytmp[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i])
    kernels.rhs(mid, t + C3 * h, ytmp, p, k3)
    for i in range(n):
        ytmp[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i])
    kernels.rhs(mid, t + C4 * h, ytmp, p, k4)
    for i in range(n):
        ytmp[i] = y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
    kernels.rhs(mid, t + C5 * h, ytmp, p, k5)
    for i in range(n):
        ytmp[i] = y[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i]
                              + A65 * k5[i])
    kernels.rhs(mid, t + h, ytmp, p, k6)
    for i in range(n):
        ynew[i] = y[i] + h * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i]
                              + A76 * k6[i])
    kernels.rhs(mid, t + h, ynew, p, k7)
    err = 0.0
    for i in range(n):
        e = h * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i])
        sk = atol[i] + rtol * max(abs(y[i]), abs(ynew[i]))
        e /= sk
        err += e * e
    err = math.sqrt(err / n)
    if not math.isfinite(err):
        return np.nan
    for i in range(n):
        if not math.isfinite(k7[i]):
            return np.nan
    return err


@nb.njit(cache=True, error_model="numpy")
def dp5_dense(y0, y1, h, k, dense):
    """Fill the dense-output rows ``r0..r4`` (see the module docstring) of the last step."""
    n = y0.shape[0]
    for i in range(n):
        r1 = y1[i] - y0[i]
        r2 = h * k[0, i] - r1
        dense[0, i] = y0[i]
        dense[1, i] = r1
        dense[2, i] = r2
        dense[3, i] = r1 - h * k[6, i] - r2
        dense[4, i] = h * (DD1 * k[0, i] + DD3 * k[2, i] + DD4 * k[3, i] + DD5 * k[4, i]
                           + DD6 * k[5, i] + DD7 * k[6, i])
