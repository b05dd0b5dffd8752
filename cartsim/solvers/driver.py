r"""Integration driver: one patient (``integrate``) or a parallel batch (``integrate_batch``).

The driver owns everything around the single steps of ``rodas``, ``dopri`` and
``bdf``: step-size control, scheduled events, state-triggered rules, dense output onto
``t_eval``, failure handling and statistics. Everything is compiled with Numba
(``cache=True``); no Python object is touched and nothing is allocated inside
the step loop (work arrays are allocated once per patient). This module holds the
entry points and the conventions below; the parts live beside it:

============================  ==========================================================
``cartsim.solvers.codes``     method codes (status codes: ``cartsim.codes``)
``cartsim.solvers.events``    event and rule actions, segments, rule crossings
``cartsim.solvers.output``    dense output onto ``t_eval``, held and NaN rows
``cartsim.solvers.control``   step-size control, ``HINIT``, DP5's stiffness test
``cartsim.solvers.onestep``   the one-step loop: Rodas4 and DP5 (adaptive or fixed)
``cartsim.solvers.multistep`` the BDF loop: BDF/NDF and DP5 -> BDF
``cartsim.solvers.cache``     the stale-cache guard (``guard_cache``, called explicitly)
============================  ==========================================================

The compiled functions do not check the Numba cache against edits of the model
kernels: call ``cartsim.solvers.cache.guard_cache()`` once before the first
``integrate``/``integrate_batch`` of a process (``solve_batch`` does).

Conventions
-----------
* States are in *solver coordinates*: ``log_mask[i]`` marks states held as
  ``y_i = ln(x_i)``; the model handles the transform inside its right-hand side.
  The driver needs ``log_mask`` only for events (``ADD_STATE`` adds in linear
  units) and rule thresholds (given in linear units).
* Output is right-continuous: a row of ``t_eval`` equal to an event time (or a
  rule firing time) reports the state *after* the event. Rows before ``t0`` or
  after ``t1`` are NaN; rows after a failure are NaN.
* Scheduled events (``ev_*``, sorted by time, ties kept in array order) outside
  ``[t0, t1]`` are ignored. The integration stops exactly at every event time,
  applies all events of that time in array order, then restarts (right-hand
  side and Jacobian recomputed; the step-size guess is the controller's last
  proposal, unclipped by the event). An event at ``t0`` is applied before the
  first step, one at ``t1`` before the last output.
* Event and rule kinds: ``ADD_STATE`` (0) adds ``val`` to state ``idx`` in linear
  units (for a log state ``y = ln(exp(y) + val)``, floored at ``ln(1e-30)`` when
  the linear result would be <= 0); ``SET_PARAM`` (1) ``p[idx] = val``;
  ``ADD_PARAM`` (2) ``p[idx] += val``; ``MUL_STATE`` (3) multiplies state ``idx`` by
  ``val >= 0`` in linear units (``y += ln(val)`` for a log state, floored at ``ln(1e-30)``;
  a log-kill such as transplant conditioning). Actions work on a private copy of ``p``.
* Rules: rule ``j`` fires once, the first time state ``rule_idx[j]`` exceeds
  ``rule_thr[j]`` (linear units; strict ``>``). It is tested (a) at ``t0`` after the
  events at ``t0``, and after every event or rule action ("already above" fires
  at that instant), and (b) over every accepted step by the sign change of
  ``g = y_i - thr`` (``thr`` mapped to ``ln(thr)`` for a log state). A sign change
  is located on the dense output by the Illinois method to a few ulps of ``t``
  (``|dt| <= max(1e-12 h, 4 eps |t|)``), the step is truncated there (the state is
  the dense output just after the crossing), outputs before it are written,
  the action ``(rule_kind, rule_tgt, rule_val)`` is applied, ``rule_time[j]`` is
  recorded, and the integration restarts. If several rules cross in one step,
  the earliest fires first; the others are then re-tested from there. A rule
  that goes above and back below within one step is missed (as with any
  event location on accepted steps).
* Step-size control is Hairer's: the scaled RMS norm
  ``err = sqrt(mean((e_i / (atol_i + rtol max(|y0_i|, |y1_i|)))^2))``, accept when
  ``err <= 1``. Rodas4: ``h_new = h / clip(err^(1/4) / 0.9, 1/6, 5)`` with
  Gustafsson's predictive (PI) correction after the second accepted step of a
  segment (as ``RODAS``); DP5: Lund-stabilised PI control
  ``fac = err^0.17 / err_old^0.04`` with ``h_new = h / clip(fac / 0.9, 1/10, 5)``
  (as ``DOPRI5``). After a rejection the next accepted step may not grow.
  The initial step (``h0 <= 0``) is Hairer's heuristic ``HINIT``.
* Dense output between step ends has order 3 (Rodas4) or 4 (DP5) and is not
  error-controlled. For stiff components that track a slow forcing (quasi-steady
  states) the step ends are very accurate at any ``h``, so steps can grow long
  and the interpolation error between them grows like ``h^3..h^4``; cap ``hmax``
  at about the output spacing where intermediate values of such states matter.
* ``METHOD_BDF`` (4): variable-order BDF/NDF (``cartsim.solvers.bdf``, SciPy's
  ``BDF`` algorithm) run by ``cartsim.solvers.multistep`` under the same event, rule, output
  and status conventions; its step/order control and error norm are SciPy's
  (``atol_i + rtol |y_i|``), it restarts at order 1 after every event or rule
  action, and its dense output is the step's interpolating polynomial.
* Fixed-step mode (``method = METHOD_RODAS4_FIXED`` (2) or ``METHOD_DP5_FIXED`` (3),
  i.e. the adaptive code plus ``FIXED_STEP``; for convergence studies): every
  step has size ``h0`` (> 0 required, else the adaptive mode is used),
  shortened only to land on events and ``t1`` (a final piece up to ``1.01 h0`` is
  taken in one step), and accepted whatever its error estimate.

Failure statuses: ``MAX_STEPS`` (attempted steps, accepted or rejected,
exceed ``max_steps``); ``STEP_UNDERFLOW`` (the step would fall below
``1e-14 max(|t|, |t1 - t0|)``); ``NONFINITE`` (a non-finite right-hand side at an
accepted point or Jacobian, a non-finite state after an event, or non-finite
trial steps that shrinking ``h`` below the underflow limit could not cure);
``SINGULAR`` (``I/(h gamma) - J`` exactly singular in 5 consecutive attempts,
halving ``h`` in between). On failure the remaining output rows are NaN and the
status is returned; nothing is raised.

References
----------
E. Hairer, S. P. Norsett, G. Wanner, *Solving Ordinary Differential Equations I*,
2nd ed., Springer 1993, Sect. II.4 (step-size control, ``HINIT``), II.6 (dense output).

E. Hairer, G. Wanner, *Solving Ordinary Differential Equations II*, 2nd ed.,
Springer 1996, Sect. IV.7-IV.8 (Rosenbrock methods, predictive step control).
"""

import numba as nb
import numpy as np

from cartsim.solvers.cache import refresh_cache, sources_hash
from cartsim.solvers.codes import (
    ADD_PARAM,
    ADD_STATE,
    FIXED_STEP,
    MAX_STEPS,
    METHOD_BDF,
    METHOD_DP5,
    METHOD_DP5_BDF,
    METHOD_DP5_FIXED,
    METHOD_RODAS4,
    METHOD_RODAS4_FIXED,
    MUL_STATE,
    NONFINITE,
    SET_PARAM,
    SINGULAR,
    STEP_UNDERFLOW,
    SUCCESS,
)
from cartsim.solvers.control import NONSTIFF_RESET, STIFF_HLAMB, STIFF_SWITCH
from cartsim.solvers.events import LOG_FLOOR, apply_action
from cartsim.solvers.multistep import integrate_multistep
from cartsim.solvers.onestep import integrate_onestep
from cartsim.solvers.output import dense_eval

__all__ = [
    "ADD_PARAM", "ADD_STATE", "FIXED_STEP", "LOG_FLOOR", "MAX_STEPS", "METHOD_BDF", "METHOD_DP5",
    "METHOD_DP5_BDF", "METHOD_DP5_FIXED", "METHOD_RODAS4", "METHOD_RODAS4_FIXED", "MUL_STATE",
    "NONFINITE", "NONSTIFF_RESET", "SET_PARAM", "SINGULAR", "STEP_UNDERFLOW", "STIFF_HLAMB",
    "STIFF_SWITCH", "SUCCESS", "apply_action", "dense_eval", "integrate", "integrate_batch",
    "refresh_cache", "sources_hash",
]


@nb.njit(cache=True, error_model="numpy")
def integrate(mid, method, y0, p, t_eval, t0, t1,
              ev_t, ev_kind, ev_idx, ev_val,
              rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
              log_mask, rtol, atol, h0, hmax, max_steps,
              y_out, stats, rule_time):
    """Integrate one patient from ``t0`` to ``t1`` with events and rules; never raises.

    Parameters
    ----------
    mid : int
        Model id (``cartsim.models.kernels``).
    method : int
        ``METHOD_RODAS4`` (0) or ``METHOD_DP5`` (1); add ``FIXED_STEP`` (2) for
        fixed steps of size ``h0`` without error control. ``METHOD_BDF`` (4):
        variable-order BDF/NDF, ``METHOD_DP5_BDF`` (5): DP5 -> BDF
        (see ``cartsim.solvers.multistep``).
    y0 : float64[n]
        Initial state in solver coordinates (not modified).
    p : float64[n_p]
        Parameters; copied, events act on the copy.
    t_eval : float64[nt]
        Sorted output times (may include ``t0`` and ``t1``).
    t0, t1 : float
        Integration interval, ``t1 >= t0``.
    ev_t, ev_kind, ev_idx, ev_val : float64[k], int64[k], int64[k], float64[k]
        Scheduled events, sorted by time (see the module docstring).
    rule_idx, rule_thr, rule_kind, rule_tgt, rule_val : arrays of length r
        State-triggered rules (int64, float64, int64, int64, float64): state index,
        threshold (linear units), action kind, action target index and value.
    log_mask : bool[n]
        States held as ln(x).
    rtol : float
        Relative tolerance.
    atol : float64[n]
        Absolute tolerances (solver coordinates).
    h0 : float
        Initial step; <= 0 selects it automatically.
    hmax : float
        Largest step; <= 0 means ``|t1 - t0|``.
    max_steps : int
        Maximum number of attempted steps.
    y_out : float64[nt, n]
        Output: states at ``t_eval`` (solver coordinates), NaN outside ``[t0, t1]`` and
        after a failure.
    stats : int64[4]
        Output: accepted steps, rejected steps, rhs calls, Jacobian evaluations.
    rule_time : float64[r]
        Output: firing time of each rule, NaN if it never fired.

    Returns
    -------
    int
        ``SUCCESS``, ``MAX_STEPS``, ``STEP_UNDERFLOW``, ``NONFINITE`` or ``SINGULAR``.
    """
    if method == METHOD_BDF or method == METHOD_DP5_BDF:
        return integrate_multistep(mid, y0, p, t_eval, t0, t1, ev_t, ev_kind, ev_idx, ev_val,
                                   rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
                                   log_mask, rtol, atol, h0, hmax, max_steps,
                                   y_out, stats, rule_time, method == METHOD_DP5_BDF)
    return integrate_onestep(mid, method, y0, p, t_eval, t0, t1, ev_t, ev_kind, ev_idx, ev_val,
                             rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
                             log_mask, rtol, atol, h0, hmax, max_steps,
                             y_out, stats, rule_time)


@nb.njit(cache=True, error_model="numpy", parallel=True, nogil=True)
def integrate_batch(mid, method, Y0, P, t_eval, t0, t1,
                    EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N,
                    RULE_IDX, RULE_THR, RULE_KIND, RULE_TGT, RULE_VAL, RULE_N,
                    log_mask, rtol, atol, h0, hmax, max_steps,
                    Y_OUT, STATUS, STATS, RULE_TIME):
    """Integrate ``npat`` patients in parallel (``prange``); one ``integrate`` call each.

    Per-patient tables are the rows of the 2-D arrays, of which the first
    ``EV_N[i]`` events and ``RULE_N[i]`` rules are used. ``Y_OUT[npat, nt, n]``,
    ``STATUS[npat]``, ``STATS[npat, 4]``, ``RULE_TIME[npat, rmax]`` receive the
    results (``RULE_TIME`` beyond ``RULE_N[i]`` is NaN). Patients are independent,
    so results are bitwise identical for any number of threads (and loop chunking).
    The GIL is released: Python threads run while a batch integrates.
    """
    npat = Y0.shape[0]
    for i in nb.prange(npat):
        ne = EV_N[i]
        nr = RULE_N[i]
        for j in range(nr, RULE_TIME.shape[1]):
            RULE_TIME[i, j] = np.nan
        STATUS[i] = integrate(
            mid, method, Y0[i], P[i], t_eval, t0, t1,
            EV_T[i][:ne], EV_KIND[i][:ne], EV_IDX[i][:ne], EV_VAL[i][:ne],
            RULE_IDX[i][:nr], RULE_THR[i][:nr], RULE_KIND[i][:nr], RULE_TGT[i][:nr],
            RULE_VAL[i][:nr],
            log_mask, rtol, atol, h0, hmax, max_steps,
            Y_OUT[i], STATS[i], RULE_TIME[i][:nr])
