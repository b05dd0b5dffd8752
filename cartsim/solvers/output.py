r"""Output rows of the step loops: dense output of the last step onto ``t_eval``.

A loop keeps ``iout``, the first row of ``t_eval`` not yet written; every helper
writes rows from there and returns the new ``iout``. Output is right-continuous
(a row at an event time holds the state after it, see ``cartsim.solvers.driver``).

The dense output of one step is held in one array ``dense`` with an ``order``:

* ``order == RK`` (0): the Rodas4 (order 3) or DP5 (order 4) continuous extension,
  ``dense[0:5]`` (``rk_dense`` fills it), read with ``dense_eval`` at
  ``theta = (t - t_old) / h``;
* ``order >= 1``: BDF's difference array ``D`` of that order for the step ending at
  ``t_new`` (``cartsim.solvers.bdf.dense_eval``).
"""

import numba as nb
import numpy as np

from cartsim.solvers import bdf, dopri, rodas

RK = 0
"""``order`` of a one-step (Rodas4/DP5) continuous extension."""


@nb.njit(cache=True, error_model="numpy")
def dense_eval(dense, theta, out):
    r"""Evaluate the dense output of the last step at ``theta = (t - t_old) / h`` into ``out``.

    :math:`u(\theta) = r_0 + \theta(r_1 + (1-\theta)(r_2 + \theta(r_3 + (1-\theta) r_4)))`,
    the common form of the Rodas4 (order 3) and DP5 (order 4) continuous extensions.
    """
    th1 = 1.0 - theta
    for i in range(out.shape[0]):
        out[i] = dense[0, i] + theta * (dense[1, i] + th1 * (
            dense[2, i] + theta * (dense[3, i] + th1 * dense[4, i])))


@nb.njit(cache=True, error_model="numpy")
def dense_comp(dense, theta, i):
    """Component ``i`` of ``dense_eval(dense, theta)``."""
    th1 = 1.0 - theta
    return dense[0, i] + theta * (dense[1, i] + th1 * (
        dense[2, i] + theta * (dense[3, i] + th1 * dense[4, i])))


@nb.njit(cache=True, error_model="numpy")
def rk_dense(rodas_m, y, ynew, h, kst, dense):
    """Fill ``dense`` with the continuous extension of the Rodas4 (``rodas_m``) or DP5 step."""
    if rodas_m:
        rodas.rodas_dense(y, ynew, kst, dense)
    else:
        dopri.dp5_dense(y, ynew, h, kst, dense)


@nb.njit(cache=True, error_model="numpy")
def dense_comp_at(dense, order, t_a, t_new, h, theta, i):
    """Component ``i`` of the step's dense output at ``t_a + theta h`` (``theta`` in [0, 1]).

    ``t_a`` is the step's start as the caller's root search sees it, ``t_new`` its end
    (used by BDF only).
    """
    if order == RK:
        return dense_comp(dense, theta, i)
    return bdf.dense_comp(dense, order, t_new, h, t_a + theta * h, i)


@nb.njit(cache=True, error_model="numpy")
def dense_until(dense, order, t, t_new, h, t_end, t_eval, iout, y_out):
    """Write the dense output of the step ``[t, t_new]`` at every pending ``t_eval < t_end``."""
    nt = t_eval.shape[0]
    if order == RK:
        while iout < nt and t_eval[iout] < t_end:
            dense_eval(dense, (t_eval[iout] - t) / h, y_out[iout])
            iout += 1
    else:
        while iout < nt and t_eval[iout] < t_end:
            bdf.dense_eval(dense, order, t_new, h, t_eval[iout], y_out[iout])
            iout += 1
    return iout


@nb.njit(cache=True, error_model="numpy")
def hold(y_out, iout, t_eval, t, y, inclusive):
    """Write the current state ``y`` to every pending output before ``t`` (or at it)."""
    nt = t_eval.shape[0]
    n = y.shape[0]
    while iout < nt and (t_eval[iout] < t or (inclusive and t_eval[iout] == t)):
        for i in range(n):
            y_out[iout, i] = y[i]
        iout += 1
    return iout


@nb.njit(cache=True, error_model="numpy")
def finish(y_out, iout, stats, naccept, nreject, nfev, njev):
    """End of an integration: NaN rows after the last written one, the counters to ``stats``."""
    n = y_out.shape[1]
    while iout < y_out.shape[0]:
        for i in range(n):
            y_out[iout, i] = np.nan
        iout += 1
    stats[0] = naccept
    stats[1] = nreject
    stats[2] = nfev
    stats[3] = njev
