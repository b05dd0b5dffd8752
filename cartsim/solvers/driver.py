r"""Integration driver: one patient (``integrate``) or a parallel batch (``integrate_batch``).

The driver owns everything around the single steps of ``rodas`` and ``dopri``:
step-size control, scheduled events, state-triggered rules, dense output onto
``t_eval``, failure handling and statistics. Everything is compiled with Numba
(``cache=True``); no Python object is touched and nothing is allocated inside
the step loop (work arrays are allocated once per patient).

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
  ``BDF`` algorithm) run by ``_integrate_bdf`` under the same event, rule, output
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

import ast
import hashlib
import importlib.util
import math
import os
import sys

import numba as nb
import numpy as np
from numba.core.dispatcher import Dispatcher

from cartsim.models import kernels
from cartsim.models.base import ADD_PARAM, ADD_STATE, MUL_STATE, SET_PARAM
from cartsim.solvers import bdf, dopri, rodas

# status codes
SUCCESS = 0
MAX_STEPS = 1
STEP_UNDERFLOW = 2
NONFINITE = 3
SINGULAR = 4

# methods
METHOD_RODAS4 = 0
METHOD_DP5 = 1
FIXED_STEP = 2
"""Added to a method code: fixed step ``h0``, no error control (convergence studies)."""
METHOD_RODAS4_FIXED = METHOD_RODAS4 + FIXED_STEP
METHOD_DP5_FIXED = METHOD_DP5 + FIXED_STEP
METHOD_BDF = 4
"""Variable-order BDF/NDF with Jacobian and LU reuse (``cartsim.solvers.bdf``); adaptive only."""
METHOD_DP5_BDF = 5
"""DP5 with stiffness detection, switching to BDF where the problem is stiff (adaptive only)."""

STIFF_HLAMB = 0.8
"""A DP5 step with ``h |lambda| >`` this (estimated as in Hairer's ``DOPRI5``) counts towards
the switch to BDF. ``DOPRI5`` flags only steps at the stability boundary (3.25), but DP5's
error estimate already holds the step back from ``h |lambda| ~ 1``, where BDF steps are
several times longer: on ``cd7`` switching at 0.8 after 5 steps halves the steps of days
0..365 against 3.25 after 15 (``benchmarks/run.py``), while the non-stiff lymphodepletion
segments (``h |lambda|`` mostly below 0.6) stay with DP5."""
STIFF_SWITCH = 5
"""Steps above ``STIFF_HLAMB`` (without ``NONSTIFF_RESET`` consecutive ones below) before the
switch to BDF."""
NONSTIFF_RESET = 6

# event / rule kinds: one definition, where the models that emit them live (issue 15)

LOG_FLOOR = 1e-30
"""Linear value a log state is floored at when an ``ADD_STATE`` would make it <= 0."""

_EPS = 2.220446049250313e-16
_SAFE = 0.9
# bounds on fac = h / h_new. Rodas (as RODAS): 0.2 <= h_new / h <= 6
_R_FACMIN = 1.0 / 6.0
_R_FACMAX = 5.0
# DP5 (as DOPRI5): 0.2 <= h_new / h <= 10
_D_FACMIN = 0.1
_D_FACMAX = 5.0
_D_BETA = 0.04
_D_EXPO = 0.2 - 0.04 * 0.75


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
def apply_action(kind, idx, val, y, p, log_mask):
    """Apply one event/rule action (``ADD_STATE``, ``SET_PARAM``, ``ADD_PARAM``, ``MUL_STATE``)."""
    if kind == ADD_STATE:
        if log_mask[idx]:
            yi = y[idx]
            if val >= 0.0:
                if val > 0.0:
                    lv = math.log(val)
                    hi = max(yi, lv)
                    y[idx] = hi + math.log1p(math.exp(-abs(yi - lv)))
            else:
                x = val * math.exp(-yi)
                if x <= -1.0:
                    y[idx] = math.log(LOG_FLOOR)
                else:
                    y[idx] = yi + math.log1p(x)
        else:
            y[idx] += val
    elif kind == SET_PARAM:
        p[idx] = val
    elif kind == ADD_PARAM:
        p[idx] += val
    elif kind == MUL_STATE:
        if log_mask[idx]:
            if val > LOG_FLOOR:
                y[idx] = max(y[idx] + math.log(val), math.log(LOG_FLOOR))
            else:
                y[idx] = math.log(LOG_FLOOR)
        else:
            y[idx] *= val


@nb.njit(cache=True, error_model="numpy")
def _fire_rules_above(t, y, p, log_mask, rule_idx, thr_s, rule_kind, rule_tgt, rule_val,
                      fired, rule_time):
    """Fire (in index order, repeatedly) every unfired rule whose state is above threshold now."""
    nfired = 0
    again = True
    while again:
        again = False
        for j in range(rule_idx.shape[0]):
            if not fired[j] and y[rule_idx[j]] - thr_s[j] > 0.0:
                fired[j] = True
                rule_time[j] = t
                apply_action(rule_kind[j], rule_tgt[j], rule_val[j], y, p, log_mask)
                nfired += 1
                again = True
    return nfired


@nb.njit(cache=True, error_model="numpy")
def _locate(dense, i, thr, g0, g1, t, h):
    """Illinois root of ``dense_comp(theta, i) - thr`` on [0, 1] with ``g0 <= 0 < g1``.

    Returns the right end of the final bracket (where ``g > 0``).
    """
    a = 0.0
    b = 1.0
    ga = g0
    gb = g1
    tol = max(1e-12, 4.0 * _EPS * max(abs(t), abs(t + h)) / h)
    side = 0
    for _ in range(200):
        if b - a <= tol:
            break
        c = (a * gb - b * ga) / (gb - ga)
        if not (c > a and c < b):
            c = 0.5 * (a + b)
        gc = dense_comp(dense, c, i) - thr
        if gc > 0.0:
            b = c
            gb = gc
            if side == 1:
                ga *= 0.5
            side = 1
        else:
            a = c
            ga = gc
            if side == -1:
                gb *= 0.5
            side = -1
    return b


@nb.njit(cache=True, error_model="numpy")
def _next_step(t, h, tseg, hmin, nsteps, max_steps):
    """A step of ``h`` from ``t``, landing on the segment end ``tseg`` when within ``1.01 h``.

    Returns ``(h, last, status)``: ``status`` is ``STEP_UNDERFLOW`` below ``hmin``,
    ``MAX_STEPS`` when ``nsteps`` attempts are used up, else ``SUCCESS``.
    """
    last = False
    if t + 1.01 * h >= tseg:
        h = tseg - t
        last = True
    if h < hmin:
        return h, last, STEP_UNDERFLOW
    if nsteps >= max_steps:
        return h, last, MAX_STEPS
    return h, last, SUCCESS


@nb.njit(cache=True, error_model="numpy")
def _dp5_accept_factor(err, facold):
    """``DOPRI5``'s Lund-stabilised PI control after an accepted step: ``(h / h_new, facold)``."""
    fac = err ** _D_EXPO / facold ** _D_BETA
    return max(_D_FACMIN, min(_D_FACMAX, fac / _SAFE)), max(err, 1e-4)


@nb.njit(cache=True, error_model="numpy")
def _dp5_reject_factor(err):
    """``h / h_new`` after a rejected DP5 step (``err > 1``)."""
    return min(_D_FACMAX, err ** _D_EXPO / _SAFE)


@nb.njit(cache=True, error_model="numpy")
def _dense_until(dense, t, h, t_end, t_eval, iout, y_out):
    """Write the dense output of the step ``[t, t + h]`` at every pending ``t_eval < t_end``."""
    nt = t_eval.shape[0]
    while iout < nt and t_eval[iout] < t_end:
        dense_eval(dense, (t_eval[iout] - t) / h, y_out[iout])
        iout += 1
    return iout


@nb.njit(cache=True, error_model="numpy")
def _first_crossing(rodas_m, y, ynew, h, kst, dense, fired, rule_idx, thr_s, t):
    """Earliest sign change of an unfired rule over a Rodas4/DP5 step ``[t, t + h]``.

    Fills ``dense`` (the step's continuous extension) when some rule crosses.
    Returns ``(theta_c, jc, dense_ok)``: the crossing as a fraction of the step
    (2 when none), the rule index (-1 when none) and whether ``dense`` was filled.
    """
    dense_ok = False
    theta_c = 2.0
    jc = -1
    for j in range(rule_idx.shape[0]):
        if not fired[j]:
            ii = rule_idx[j]
            g0 = y[ii] - thr_s[j]
            g1 = ynew[ii] - thr_s[j]
            if g0 <= 0.0 and g1 > 0.0:
                if not dense_ok:
                    if rodas_m:
                        rodas.rodas_dense(y, ynew, kst, dense)
                    else:
                        dopri.dp5_dense(y, ynew, h, kst, dense)
                    dense_ok = True
                th = _locate(dense, ii, thr_s[j], g0, g1, t, h)
                if th < theta_c:
                    theta_c = th
                    jc = j
    return theta_c, jc, dense_ok


@nb.njit(cache=True, error_model="numpy")
def _fire_crossing(dense, theta_c, jc, t, h, tn, tseg, y, ynew, pp, log_mask, t_eval, iout,
                   y_out, iev, ev_t, ev_kind, ev_idx, ev_val,
                   rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time):
    """Truncate a Rodas4/DP5 step at rule ``jc``'s crossing and act there.

    Writes the outputs before the crossing from ``dense``, sets ``y`` to the state
    there, fires the rule, applies the events due at that time and every rule then
    above threshold, and writes the outputs at it. Returns ``(t, iout, iev, ok)``
    with ``ok`` False when the state became non-finite (outputs then not written).
    """
    tc = t + theta_c * h if theta_c < 1.0 else tn
    if tc > tn:
        tc = tn
    iout = _dense_until(dense, t, h, tc, t_eval, iout, y_out)
    if theta_c < 1.0:
        dense_eval(dense, theta_c, y)
    else:
        for i in range(y.shape[0]):
            y[i] = ynew[i]
    fired[jc] = True
    rule_time[jc] = tc
    apply_action(rule_kind[jc], rule_tgt[jc], rule_val[jc], y, pp, log_mask)
    if tc == tseg:
        iev = _apply_events_at(tc, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask)
    _fire_rules_above(tc, y, pp, log_mask, rule_idx, thr_s, rule_kind, rule_tgt, rule_val,
                      fired, rule_time)
    if not _all_finite(y):
        return tc, iout, iev, False
    iout = _hold(y_out, iout, t_eval, tc, y, True)
    return tc, iout, iev, True


@nb.njit(cache=True, error_model="numpy")
def _hinit(mid, t, y, p, f0, atol, rtol, order, hmax_eff, y1, f1):
    """Hairer's initial step-size heuristic (``HINIT`` of ``DOPRI5``); one rhs call."""
    n = y.shape[0]
    dnf = 0.0
    dny = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        dnf += (f0[i] / sk) ** 2
        dny += (y[i] / sk) ** 2
    if dnf <= 1e-10 or dny <= 1e-10:
        h = 1e-6
    else:
        h = math.sqrt(dny / dnf) * 0.01
    h = min(h, hmax_eff)
    for i in range(n):
        y1[i] = y[i] + h * f0[i]
    kernels.rhs(mid, t + h, y1, p, f1)
    der2 = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        der2 += ((f1[i] - f0[i]) / sk) ** 2
    der2 = math.sqrt(der2) / h
    der12 = max(abs(der2), math.sqrt(dnf))
    if not math.isfinite(der12):
        return min(h * 1e-3, hmax_eff)
    if der12 <= 1e-15:
        h1 = max(1e-6, h * 1e-3)
    else:
        h1 = (0.01 / der12) ** (1.0 / order)
    return min(100.0 * h, h1, hmax_eff)


@nb.njit(cache=True, error_model="numpy")
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@nb.njit(cache=True, error_model="numpy")
def _apply_events_at(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, p, log_mask):
    """Apply all events with ``ev_t == t`` from position ``iev`` on; return the new position."""
    while iev < ev_t.shape[0] and ev_t[iev] == t:
        apply_action(ev_kind[iev], ev_idx[iev], ev_val[iev], y, p, log_mask)
        iev += 1
    return iev


@nb.njit(cache=True, error_model="numpy")
def _arrive(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask,
            rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time):
    """Apply the events at ``t`` and fire the rules already above threshold.

    Returns ``(iev, nchg)``: the next event index and how many events/rules acted
    (``nchg > 0`` means the integration must restart).
    """
    first = iev
    iev = _apply_events_at(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask)
    nchg = iev - first
    nchg += _fire_rules_above(t, y, pp, log_mask, rule_idx, thr_s, rule_kind, rule_tgt,
                              rule_val, fired, rule_time)
    return iev, nchg


@nb.njit(cache=True, error_model="numpy")
def _hold(y_out, iout, t_eval, t, y, inclusive):
    """Write the current state ``y`` to every pending output before ``t`` (or at it)."""
    nt = t_eval.shape[0]
    n = y.shape[0]
    while iout < nt and (t_eval[iout] < t or (inclusive and t_eval[iout] == t)):
        for i in range(n):
            y_out[iout, i] = y[i]
        iout += 1
    return iout


@nb.njit(cache=True, error_model="numpy")
def _begin(t0, t1, t_eval, y, pp, log_mask, ev_t, ev_kind, ev_idx, ev_val,
           rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time, y_out):
    """Start of an integration, shared by every method.

    NaN rows for outputs before ``t0``, skip events before ``t0``, apply the events
    and rules at ``t0``, write the outputs at ``t0``. Returns ``(iout, iev, status)``.
    """
    n = y.shape[0]
    nt = t_eval.shape[0]
    nev = ev_t.shape[0]
    iout = 0
    while iout < nt and t_eval[iout] < t0:
        for i in range(n):
            y_out[iout, i] = np.nan
        iout += 1
    iev = 0
    while iev < nev and ev_t[iev] < t0:
        iev += 1
    if t0 <= t1:
        iev = _apply_events_at(t0, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask)
    _fire_rules_above(t0, y, pp, log_mask, rule_idx, thr_s, rule_kind, rule_tgt, rule_val,
                      fired, rule_time)
    if not _all_finite(y):
        return iout, iev, NONFINITE
    while iout < nt and t_eval[iout] <= t0 and t0 <= t1:
        for i in range(n):
            y_out[iout, i] = y[i]
        iout += 1
    return iout, iev, SUCCESS


@nb.njit(cache=True, error_model="numpy")
def _locate_bdf(D, order, t_new, h, i, thr, g0, g1):
    """``_locate`` on the BDF interpolating polynomial of the step ``[t_new - h, t_new]``."""
    t = t_new - h
    a = 0.0
    b = 1.0
    ga = g0
    gb = g1
    tol = max(1e-12, 4.0 * _EPS * max(abs(t), abs(t_new)) / h)
    side = 0
    for _ in range(200):
        if b - a <= tol:
            break
        c = (a * gb - b * ga) / (gb - ga)
        if not (c > a and c < b):
            c = 0.5 * (a + b)
        gc = bdf.dense_comp(D, order, t_new, h, t + c * h, i) - thr
        if gc > 0.0:
            b = c
            gb = gc
            if side == 1:
                ga *= 0.5
            side = 1
        else:
            a = c
            ga = gc
            if side == -1:
                gb *= 0.5
            side = -1
    return b


@nb.njit(cache=True, error_model="numpy")
def _all_finite_2d(a):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not math.isfinite(a[i, j]):
                return False
    return True


@nb.njit(cache=True, error_model="numpy")
def _integrate_bdf(mid, y0, p, t_eval, t0, t1,
                   ev_t, ev_kind, ev_idx, ev_val,
                   rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
                   log_mask, rtol, atol, h0, hmax, max_steps,
                   y_out, stats, rule_time, auto):
    """``integrate`` for ``METHOD_BDF`` and ``METHOD_DP5_BDF`` (``auto``): NDF/BDF.

    Same arguments, outputs, statuses and event/rule/output conventions as
    ``integrate``. Step and order control are SciPy's ``BDF`` (with CVODE's LU reuse
    and step-increase threshold, see ``cartsim.solvers.bdf``); the method restarts at
    order 1 after every event or rule action: right-hand side, Jacobian and initial
    step recomputed (``HINIT`` with exponent 1/2, as SciPy's ``select_initial_step``
    for order 1; at least ``100 hmin``; ``h0 > 0`` is used for the first start only).
    ``stats[3]`` counts Jacobian evaluations; when ``stats`` has a fifth entry it
    receives the number of LU factorisations.

    With ``auto`` (``METHOD_DP5_BDF``) every segment (the start, and after every event
    or rule action) begins with Dormand-Prince 5(4) steps under ``integrate``'s DP5
    step control (no Jacobian, no linear algebra), watched by Hairer's stiffness
    test of ``DOPRI5``: ``h |lambda|``, estimated from the two last stages (both at
    ``t + h``) as ``h ||f(y7) - f(y6)|| / ||y7 - y6||``, above ``STIFF_HLAMB`` on
    ``STIFF_SWITCH`` accepted steps (without ``NONSTIFF_RESET`` ordinary ones between)
    means stiffness starts to hold the step back; the segment then goes on with BDF
    from order 1, as after a restart. (LSODA switches Adams to BDF for the
    same reason.) On ``cd7`` lymphodepletion (days -5..0) is non-stiff and cheap for
    DP5, while the months after infusion are stiff.
    """
    n = y0.shape[0]
    nt = t_eval.shape[0]
    nev = ev_t.shape[0]
    nr = rule_idx.shape[0]
    mo = bdf.MAX_ORDER

    y = y0.copy()
    pp = p.copy()
    for j in range(nr):
        rule_time[j] = np.nan
    fired = np.zeros(nr, np.bool_)
    thr_s = np.empty(nr)
    for j in range(nr):
        if log_mask[rule_idx[j]]:
            thr_s[j] = math.log(rule_thr[j]) if rule_thr[j] > 0.0 else -np.inf
        else:
            thr_s[j] = rule_thr[j]

    D = np.zeros((mo + 3, n))
    Dtmp = np.empty((mo + 1, n))
    Rw = np.empty((mo + 1, mo + 1))
    Uw = np.empty((mo + 1, mo + 1))
    RUw = np.empty((mo + 1, mo + 1))
    ypred = np.empty(n)
    psi = np.empty(n)
    ynew = np.empty(n)
    dv = np.empty(n)
    fv = np.empty(n)
    dy = np.empty(n)
    scale = np.empty(n)
    ytmp = np.empty(n)
    ftmp = np.empty(n)
    ftmp2 = np.empty(n)
    jm = np.empty((n, n))
    lu = np.empty((n, n))
    piv = np.empty(n, np.int64)
    sp = np.empty((n, 2 * n + 2), np.int64)
    kst = np.empty((7, n))
    dense = np.empty((5, n))
    gam = bdf.GAMMA
    alp = bdf.ALPHA
    ecst = bdf.ERROR_CONST
    ntol = bdf.newton_tol(rtol)

    naccept = 0
    nreject = 0
    nfev = 0
    njev = 0
    nlu = 0
    nsteps = 0
    status = SUCCESS

    t = t0
    span = abs(t1 - t0)
    hmax_eff = hmax if hmax > 0.0 else max(span, 1e-300)
    iout, iev, status = _begin(t0, t1, t_eval, y, pp, log_mask, ev_t, ev_kind, ev_idx, ev_val,
                               rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired,
                               rule_time, y_out)

    h_abs = 0.0
    order = 1
    n_equal = 0
    first = True
    restart = True
    lu_ok = False
    c_lu = 1.0
    jac_fresh = False
    nsing = 0
    # DP5 phase (auto): stiff is False until the stiffness test switches to BDF
    stiff = not auto
    bdf_init = False
    h_dp = 0.0
    h_prop = 0.0
    facold = 1e-4
    reject = False
    iasti = 0
    nonsti = 0

    while status == SUCCESS and t < t1:
        tseg = t1
        if iev < nev and ev_t[iev] < tseg:
            tseg = ev_t[iev]
        hmin = 1e-14 * max(abs(t), span)

        if tseg - t <= hmin:
            # negligible remaining segment: jump to it without a step
            iout = _hold(y_out, iout, t_eval, tseg, y, False)
            t = tseg
            iev, nchg = _arrive(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask,
                                 rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired,
                                 rule_time)
            if nchg > 0:
                restart = True
                if not _all_finite(y):
                    status = NONFINITE
                    break
            iout = _hold(y_out, iout, t_eval, t, y, True)
            continue

        if restart:
            restart = False
            if not auto:
                bdf_init = True
            else:
                # every segment starts non-stiff: DP5 until the stiffness test says otherwise
                k0 = kst[0]
                kernels.rhs(mid, t, y, pp, k0)
                nfev += 1
                if not _all_finite(k0):
                    status = NONFINITE
                    break
                if first and h0 > 0.0:
                    h_dp = h0
                elif first or stiff:
                    h_dp = _hinit(mid, t, y, pp, k0, atol, rtol, dopri.ORDER, hmax_eff, ytmp,
                                  dy)
                    nfev += 1
                else:
                    h_dp = h_prop
                first = False
                stiff = False
                facold = 1e-4
                reject = False
                iasti = 0
                nonsti = 0

        if not stiff:
            # ------------------------------------------------------------ one DP5 attempt
            hfull = min(h_dp, hmax_eff)
            h, last, status = _next_step(t, hfull, tseg, hmin, nsteps, max_steps)
            if status != SUCCESS:
                break
            nsteps += 1
            err = dopri.dp5_step(mid, t, h, y, pp, kst, ynew, ytmp, atol, rtol)
            nfev += 6
            if not math.isfinite(err):
                nreject += 1
                h_dp = 0.25 * h
                reject = True
                if h_dp < hmin:
                    status = NONFINITE
                    break
                continue
            if err > 1.0:
                nreject += 1
                h_dp = h / _dp5_reject_factor(err)
                reject = True
                continue
            naccept += 1
            fac, facold = _dp5_accept_factor(err, facold)
            hnew = h / fac
            if reject and hnew > h:
                hnew = h
            reject = False
            tn = tseg if last else t + h
            hp = max(hnew, hfull) if last else hnew
            # stiffness test (DOPRI5): stages 6 (ytmp, k6) and 7 (ynew, k7) are both at t + h
            stnum = 0.0
            stden = 0.0
            for i in range(n):
                d1 = kst[6, i] - kst[5, i]
                d2 = ynew[i] - ytmp[i]
                stnum += d1 * d1
                stden += d2 * d2
            if stden > 0.0 and h * h * stnum > STIFF_HLAMB * STIFF_HLAMB * stden:
                nonsti = 0
                iasti += 1
            else:
                nonsti += 1
                if nonsti >= NONSTIFF_RESET:
                    iasti = 0

            theta_c, jc, dense_ok = _first_crossing(False, y, ynew, h, kst, dense, fired,
                                                    rule_idx, thr_s, t)
            if jc >= 0:
                t, iout, iev, fin = _fire_crossing(
                    dense, theta_c, jc, t, h, tn, tseg, y, ynew, pp, log_mask, t_eval, iout,
                    y_out, iev, ev_t, ev_kind, ev_idx, ev_val,
                    rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time)
                restart = True
                h_prop = hp
                if not fin:
                    status = NONFINITE
                    break
                continue
            if iout < nt and t_eval[iout] < tn:
                if not dense_ok:
                    dopri.dp5_dense(y, ynew, h, kst, dense)
                iout = _dense_until(dense, t, h, tn, t_eval, iout, y_out)
            for i in range(n):
                y[i] = ynew[i]
                kst[0, i] = kst[6, i]
            t = tn
            h_dp = hnew
            h_prop = hp
            if last:
                iev, nchg = _arrive(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask,
                                     rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired,
                                     rule_time)
                if nchg > 0:
                    restart = True
                    if not _all_finite(y):
                        status = NONFINITE
                        break
            elif iasti >= STIFF_SWITCH:
                stiff = True
                bdf_init = True
            iout = _hold(y_out, iout, t_eval, t, y, True)
            continue

        if bdf_init:
            # (re)start at order 1: the history is invalid across a discontinuity
            kernels.rhs(mid, t, y, pp, fv)
            nfev += 1
            if not _all_finite(fv):
                status = NONFINITE
                break
            if first and h0 > 0.0:
                h_abs = h0
            else:
                h_abs = _hinit(mid, t, y, pp, fv, atol, rtol, 2, hmax_eff, ytmp, dy)
                nfev += 1
            first = False
            # an order-1 HINIT can fall below the underflow limit on long spans
            h_abs = min(max(h_abs, 100.0 * hmin), hmax_eff)
            for i in range(n):
                D[0, i] = y[i]
                D[1, i] = fv[i] * h_abs
            order = 1
            n_equal = 0
            nfev += bdf.jacobian(mid, t, y, pp, jm, ftmp, ytmp, ftmp2)
            njev += 1
            if not _all_finite_2d(jm):
                status = NONFINITE
                break
            jac_fresh = True
            lu_ok = False
            bdf_init = False

        if h_abs > hmax_eff:
            bdf.change_D(D, order, hmax_eff / h_abs, Rw, Uw, RUw, Dtmp)
            h_abs = hmax_eff
            n_equal = 0

        # ---------------------------------------------------------------- one accepted step
        current_jac = jac_fresh
        nonfin_fail = False
        accepted = False
        last = False
        h = h_abs
        t_new = t
        n_iter = 1
        err_norm = 0.0
        while True:
            if h_abs < hmin:
                status = NONFINITE if nonfin_fail else STEP_UNDERFLOW
                break
            if nsteps >= max_steps:
                status = MAX_STEPS
                break
            nsteps += 1
            last = False
            if t + 1.01 * h_abs >= tseg:
                hn = tseg - t
                bdf.change_D(D, order, hn / h_abs, Rw, Uw, RUw, Dtmp)
                h_abs = hn
                n_equal = 0
                last = True
            t_new = tseg if last else t + h_abs
            h = t_new - t

            for i in range(n):
                s = 0.0
                for j in range(order + 1):
                    s += D[j, i]
                ypred[i] = s
                scale[i] = atol[i] + rtol * abs(s)
                s = 0.0
                for j in range(1, order + 1):
                    s += D[j, i] * gam[j]
                psi[i] = s / alp[order]
            c = h / alp[order]
            if lu_ok and abs(c / c_lu - 1.0) > bdf.LU_REUSE:
                lu_ok = False

            converged = False
            nonfin = False
            lu_info = rodas.LU_OK
            jac_bad = False
            while not converged:
                if not lu_ok:
                    lu_info = bdf.form_lu(jm, c, lu, piv, sp)
                    nlu += 1
                    if lu_info != rodas.LU_OK:
                        break
                    lu_ok = True
                    c_lu = c
                converged, n_iter, nonfin = bdf.solve_system(mid, t_new, ypred, c, psi, lu,
                                                             piv, sp, scale, ntol, pp, ynew,
                                                             dv, fv, dy, c / c_lu)
                nfev += n_iter
                if not converged:
                    if c != c_lu and not nonfin:
                        # the LU of an older step size: refactor before a new Jacobian
                        lu_ok = False
                        continue
                    if current_jac:
                        break
                    nfev += bdf.jacobian(mid, t_new, ypred, pp, jm, ftmp, ytmp, ftmp2)
                    njev += 1
                    lu_ok = False
                    current_jac = True
                    if not _all_finite_2d(jm):
                        jac_bad = True
                        break
            if jac_bad or lu_info == rodas.LU_NONFINITE:
                status = NONFINITE
                break
            if lu_info == rodas.LU_SINGULAR:
                nreject += 1
                nsing += 1
                lu_ok = False
                if nsing >= 5:
                    status = SINGULAR
                    break
                h_abs *= 0.5
                bdf.change_D(D, order, 0.5, Rw, Uw, RUw, Dtmp)
                n_equal = 0
                continue
            nsing = 0
            if not converged:
                nreject += 1
                nonfin_fail = nonfin
                h_abs *= 0.5
                bdf.change_D(D, order, 0.5, Rw, Uw, RUw, Dtmp)
                n_equal = 0
                lu_ok = False
                continue

            for i in range(n):
                scale[i] = atol[i] + rtol * abs(ynew[i])
            err_norm = ecst[order] * bdf.rms_scaled(dv, scale)
            if not math.isfinite(err_norm):
                nreject += 1
                nonfin_fail = True
                h_abs *= 0.5
                bdf.change_D(D, order, 0.5, Rw, Uw, RUw, Dtmp)
                n_equal = 0
                lu_ok = False
                continue
            if err_norm > 1.0:
                nreject += 1
                safety = 0.9 * (2 * bdf.NEWTON_MAXITER + 1) / (2 * bdf.NEWTON_MAXITER + n_iter)
                factor = max(bdf.MIN_FACTOR, safety * err_norm ** (-1.0 / (order + 1)))
                h_abs *= factor
                bdf.change_D(D, order, factor, Rw, Uw, RUw, Dtmp)
                n_equal = 0
                # as SciPy: converged without trouble, so the LU is kept
                continue
            accepted = True
            break
        if not accepted:
            break

        # ---------------------------------------------------------------- accepted
        naccept += 1
        n_equal += 1
        jac_fresh = False
        for i in range(n):
            D[order + 2, i] = dv[i] - D[order + 1, i]
            D[order + 1, i] = dv[i]
        for j in range(order, -1, -1):
            for i in range(n):
                D[j, i] += D[j + 1, i]

        # state-triggered rules: earliest sign change over this step
        theta_c = 2.0
        jc = -1
        for j in range(nr):
            if not fired[j]:
                ii = rule_idx[j]
                g0 = y[ii] - thr_s[j]
                g1 = ynew[ii] - thr_s[j]
                if g0 <= 0.0 and g1 > 0.0:
                    th = _locate_bdf(D, order, t_new, h, ii, thr_s[j], g0, g1)
                    if th < theta_c:
                        theta_c = th
                        jc = j
        if jc >= 0:
            tc = t + theta_c * h if theta_c < 1.0 else t_new
            if tc > t_new:
                tc = t_new
            while iout < nt and t_eval[iout] < tc:
                bdf.dense_eval(D, order, t_new, h, t_eval[iout], y_out[iout])
                iout += 1
            if theta_c < 1.0:
                bdf.dense_eval(D, order, t_new, h, tc, y)
            else:
                for i in range(n):
                    y[i] = ynew[i]
            t = tc
            fired[jc] = True
            rule_time[jc] = tc
            apply_action(rule_kind[jc], rule_tgt[jc], rule_val[jc], y, pp, log_mask)
            if t == tseg:
                iev = _apply_events_at(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask)
            _fire_rules_above(t, y, pp, log_mask, rule_idx, thr_s, rule_kind, rule_tgt,
                              rule_val, fired, rule_time)
            restart = True
            if not _all_finite(y):
                status = NONFINITE
                break
            iout = _hold(y_out, iout, t_eval, t, y, True)
            continue

        # dense output onto t_eval strictly inside the step
        while iout < nt and t_eval[iout] < t_new:
            bdf.dense_eval(D, order, t_new, h, t_eval[iout], y_out[iout])
            iout += 1
        for i in range(n):
            y[i] = ynew[i]
        t = t_new

        # order and step-size selection (SciPy)
        if n_equal >= order + 1:
            if order > 1:
                em = ecst[order - 1] * bdf.rms_scaled(D[order], scale)
            else:
                em = np.inf
            if order < mo:
                ep = ecst[order + 1] * bdf.rms_scaled(D[order + 2], scale)
            else:
                ep = np.inf
            fm = _order_factor(em, order)
            fc = _order_factor(err_norm, order + 1)
            fp = _order_factor(ep, order + 2)
            delta = -1
            fmax = fm
            if fc > fmax:
                delta = 0
                fmax = fc
            if fp > fmax:
                delta = 1
                fmax = fp
            safety = 0.9 * (2 * bdf.NEWTON_MAXITER + 1) / (2 * bdf.NEWTON_MAXITER + n_iter)
            factor = min(bdf.MAX_FACTOR, safety * fmax)
            if delta == 0 and 1.0 <= factor < bdf.MIN_GROWTH:
                # too small a gain to pay for re-interpolation and a new LU (as CVODE)
                n_equal = 0
            else:
                order += delta
                h_abs *= factor
                bdf.change_D(D, order, factor, Rw, Uw, RUw, Dtmp)
                n_equal = 0

        if last:
            iev, nchg = _arrive(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask,
                                 rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired,
                                 rule_time)
            if nchg > 0:
                restart = True
                if not _all_finite(y):
                    status = NONFINITE
                    break
        iout = _hold(y_out, iout, t_eval, t, y, True)

    while iout < nt:
        for i in range(n):
            y_out[iout, i] = np.nan
        iout += 1
    stats[0] = naccept
    stats[1] = nreject
    stats[2] = nfev
    stats[3] = njev
    if stats.shape[0] > 4:
        stats[4] = nlu
    return status


@nb.njit(cache=True, error_model="numpy")
def _order_factor(err, expo):
    """``err ** (-1 / expo)`` with ``0 -> inf`` and ``inf -> 0`` (as NumPy)."""
    if err == 0.0:
        return np.inf
    if not math.isfinite(err):
        return 0.0
    return err ** (-1.0 / expo)


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
        variable-order BDF/NDF (see ``_integrate_bdf``).
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
        return _integrate_bdf(mid, y0, p, t_eval, t0, t1, ev_t, ev_kind, ev_idx, ev_val,
                              rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
                              log_mask, rtol, atol, h0, hmax, max_steps,
                              y_out, stats, rule_time, method == METHOD_DP5_BDF)
    n = y0.shape[0]
    nt = t_eval.shape[0]
    nev = ev_t.shape[0]
    nr = rule_idx.shape[0]
    rodas_m = (method % FIXED_STEP) == METHOD_RODAS4
    fixed_step = method >= FIXED_STEP and h0 > 0.0
    order = rodas.ORDER if rodas_m else dopri.ORDER

    y = y0.copy()
    pp = p.copy()
    for j in range(nr):
        rule_time[j] = np.nan
    fired = np.zeros(nr, np.bool_)
    thr_s = np.empty(nr)
    for j in range(nr):
        if log_mask[rule_idx[j]]:
            thr_s[j] = math.log(rule_thr[j]) if rule_thr[j] > 0.0 else -np.inf
        else:
            thr_s[j] = rule_thr[j]

    ynew = np.empty(n)
    ytmp = np.empty(n)
    dy = np.empty(n)
    f0 = np.empty(n)
    fx = np.zeros(n)
    kst = np.empty((7, n))
    jm = np.empty((n, n))
    lu = np.empty((n, n))
    piv = np.empty(n, np.int64)
    sp = np.empty((n, 2 * n + 2), np.int64)
    dense = np.empty((5, n))
    autonomous = kernels.is_autonomous(mid)

    naccept = 0
    nreject = 0
    nfev = 0
    njev = 0
    nsteps = 0
    status = SUCCESS

    t = t0
    span = abs(t1 - t0)
    hmax_eff = hmax if hmax > 0.0 else max(span, 1e-300)
    iout, iev, status = _begin(t0, t1, t_eval, y, pp, log_mask, ev_t, ev_kind, ev_idx, ev_val,
                               rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired,
                               rule_time, y_out)

    h = 0.0
    h_prop = 0.0
    first = True
    f_ok = False
    jac_ok = False
    restart = True
    reject = False
    facold = 1e-4
    hacc = 0.0
    erracc = 0.0
    nacc_seg = 0
    nsing = 0

    while status == SUCCESS and t < t1:
        tseg = t1
        if iev < nev and ev_t[iev] < tseg:
            tseg = ev_t[iev]
        hmin = 1e-14 * max(abs(t), span)

        if tseg - t <= hmin:
            # negligible remaining segment: jump to it without a step
            iout = _hold(y_out, iout, t_eval, tseg, y, False)
            t = tseg
            iev, nchg = _arrive(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask,
                                 rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired,
                                 rule_time)
            if nchg > 0:
                f_ok = False
                jac_ok = False
                restart = True
                if h > 0.0:
                    h_prop = h
                if not _all_finite(y):
                    status = NONFINITE
                    break
            iout = _hold(y_out, iout, t_eval, t, y, True)
            continue

        if not f_ok:
            if rodas_m:
                kernels.rhs(mid, t, y, pp, f0)
                nfev += 1
                if not _all_finite(f0):
                    status = NONFINITE
                    break
            else:
                k0 = kst[0]
                kernels.rhs(mid, t, y, pp, k0)
                nfev += 1
                if not _all_finite(k0):
                    status = NONFINITE
                    break
            f_ok = True
        if restart:
            if first:
                if h0 > 0.0:
                    h = h0
                else:
                    if rodas_m:
                        h = _hinit(mid, t, y, pp, f0, atol, rtol, order, hmax_eff, ytmp, dy)
                    else:
                        h = _hinit(mid, t, y, pp, kst[0], atol, rtol, order, hmax_eff, ytmp,
                                   dy)
                    nfev += 1
                first = False
            else:
                h = h_prop
            facold = 1e-4
            nacc_seg = 0
            reject = False
            restart = False
        if fixed_step:
            h = h0
        if h > hmax_eff:
            h = hmax_eff
        hfull = h
        h, last, status = _next_step(t, hfull, tseg, hmin, nsteps, max_steps)
        if status != SUCCESS:
            break
        nsteps += 1

        # ---------------------------------------------------------------- attempt a step
        if rodas_m:
            if not jac_ok:
                nfev += rodas.rodas_jacobian(mid, t, y, pp, f0, jm, fx, ytmp, dy, autonomous)
                njev += 1
                jfin = _all_finite(fx)
                for i in range(n):
                    for j in range(n):
                        if not math.isfinite(jm[i, j]):
                            jfin = False
                if not jfin:
                    status = NONFINITE
                    break
                jac_ok = True
            info, err = rodas.rodas_step(mid, t, h, y, pp, f0, jm, fx, autonomous, lu, piv, sp,
                                         kst, ynew, ytmp, dy, atol, rtol)
            if info == rodas.LU_SINGULAR:
                nreject += 1
                nsing += 1
                if nsing >= 5:
                    status = SINGULAR
                    break
                h *= 0.5
                reject = True
                continue
            nsing = 0
            if info == rodas.LU_OK:
                nfev += 5
        else:
            err = dopri.dp5_step(mid, t, h, y, pp, kst, ynew, ytmp, atol, rtol)
            nfev += 6

        if not math.isfinite(err):
            nreject += 1
            h *= 0.25
            reject = True
            if fixed_step or h < hmin:
                status = NONFINITE
                break
            continue

        if fixed_step or err <= 1.0:
            # ------------------------------------------------------------ accepted
            naccept += 1
            if fixed_step:
                hnew = h0
            elif rodas_m:
                fac = max(_R_FACMIN, min(_R_FACMAX, err ** 0.25 / _SAFE))
                if nacc_seg >= 1:
                    facgus = (hacc / h) * (err * err / erracc) ** 0.25 / _SAFE
                    facgus = max(_R_FACMIN, min(_R_FACMAX, facgus))
                    fac = max(fac, facgus)
                hacc = h
                erracc = max(1e-2, err)
                hnew = h / fac
            else:
                fac, facold = _dp5_accept_factor(err, facold)
                hnew = h / fac
            if reject and hnew > h:
                hnew = h
            reject = False
            nacc_seg += 1
            tn = tseg if last else t + h
            hp = max(hnew, hfull) if last else hnew

            # state-triggered rules: earliest sign change over this step
            theta_c, jc, dense_ok = _first_crossing(rodas_m, y, ynew, h, kst, dense, fired,
                                                    rule_idx, thr_s, t)
            if jc >= 0:
                t, iout, iev, fin = _fire_crossing(
                    dense, theta_c, jc, t, h, tn, tseg, y, ynew, pp, log_mask, t_eval, iout,
                    y_out, iev, ev_t, ev_kind, ev_idx, ev_val,
                    rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time)
                f_ok = False
                jac_ok = False
                restart = True
                h_prop = hp
                h = hnew
                if not fin:
                    status = NONFINITE
                    break
                continue

            # dense output onto t_eval strictly inside the step
            if iout < nt and t_eval[iout] < tn:
                if not dense_ok:
                    if rodas_m:
                        rodas.rodas_dense(y, ynew, kst, dense)
                    else:
                        dopri.dp5_dense(y, ynew, h, kst, dense)
                iout = _dense_until(dense, t, h, tn, t_eval, iout, y_out)
            for i in range(n):
                y[i] = ynew[i]
            t = tn
            if rodas_m:
                f_ok = False
                jac_ok = False
            else:
                for i in range(n):
                    kst[0, i] = kst[6, i]
            h = hnew
            h_prop = hp
            if last:
                iev, nchg = _arrive(t, iev, ev_t, ev_kind, ev_idx, ev_val, y, pp, log_mask,
                                     rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired,
                                     rule_time)
                if nchg > 0:
                    f_ok = False
                    jac_ok = False
                    restart = True
                    if not _all_finite(y):
                        status = NONFINITE
                        break
            iout = _hold(y_out, iout, t_eval, t, y, True)
        else:
            # ------------------------------------------------------------ rejected
            nreject += 1
            if rodas_m:
                fac = max(_R_FACMIN, min(_R_FACMAX, err ** 0.25 / _SAFE))
                h = h / fac
            else:
                h = h / _dp5_reject_factor(err)
            reject = True

    while iout < nt:
        for i in range(n):
            y_out[iout, i] = np.nan
        iout += 1
    stats[0] = naccept
    stats[1] = nreject
    stats[2] = nfev
    stats[3] = njev
    return status


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


# ------------------------------------------------------------------------------- cache guard

_STAMP_NAME = "cartsim_kernel_sources.sha256"
_SEEDS = ("cartsim.models.kernels", "cartsim.solvers.driver")


def _dependency_files(seeds=_SEEDS):
    """Source files of ``seeds`` and of every ``cartsim`` module they import, transitively.

    ``from pkg import name`` adds ``pkg.name`` when it is a module, else ``pkg``.
    """
    files = {}
    stack = list(seeds)
    while stack:
        name = stack.pop()
        if name in files:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        files[name] = spec.origin
        with open(spec.origin, "rb") as fh:
            tree = ast.parse(fh.read())
        package = name if spec.submodule_search_locations else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                stack.extend(a.name for a in node.names if a.name.startswith("cartsim"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    mod = f"{base}.{node.module}" if node.module else base
                else:
                    mod = node.module or ""
                if not mod.startswith("cartsim"):
                    continue
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    try:
                        is_mod = importlib.util.find_spec(sub) is not None
                    except (ImportError, ValueError, AttributeError):
                        is_mod = False
                    stack.append(sub if is_mod else mod)
    return files


def sources_hash(seeds=_SEEDS):
    """SHA-256 over the sources of all compiled kernels and solvers (see ``refresh_cache``)."""
    digest = hashlib.sha256()
    for name, path in sorted(_dependency_files(seeds).items()):
        digest.update(name.encode())
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def refresh_cache(force=False, seeds=_SEEDS, stamp_name=_STAMP_NAME):
    """Drop Numba caches made stale by edits in *other* files than the cached function's.

    Numba invalidates a cached function only when its own source file changes;
    the solvers inline the model kernels, so an edit of e.g. ``cd7_kernel.py``
    would otherwise keep serving the old compiled model. This hashes the sources
    of ``cartsim.models.kernels``, ``cartsim.solvers.driver`` and every ``cartsim``
    module they import (transitively) and, when the hash differs from the stamp
    stored beside the cache (or ``force``), flushes the cache index of every jitted
    function in those modules. Called once at import of this module; it compiles
    nothing. Returns True when caches were flushed. ``seeds`` and ``stamp_name`` let
    another group of compiled modules (the stochastic engine) guard its own cache.
    """
    try:
        stamp_dir = integrate._cache.cache_path
        stamp = os.path.join(stamp_dir, stamp_name)
        current = sources_hash(seeds)
        try:
            with open(stamp) as fh:
                previous = fh.read().strip()
        except OSError:
            previous = None
        if previous == current and not force:
            return False
        for name in _dependency_files(seeds):
            mod = sys.modules.get(name)
            if mod is None:
                continue
            for obj in list(vars(mod).values()):
                cache = getattr(obj, "_cache", None)
                if isinstance(obj, Dispatcher) and cache is not None:
                    if getattr(obj, "py_func", None) is not None and \
                            obj.py_func.__module__ == name:
                        cache.flush()
        os.makedirs(stamp_dir, exist_ok=True)
        tmp = f"{stamp}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(current + "\n")
        os.replace(tmp, stamp)
        return True
    except (OSError, AttributeError, SyntaxError):
        return False


refresh_cache()
