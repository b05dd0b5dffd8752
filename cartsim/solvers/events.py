r"""Scheduled events and state-triggered rules of the step loops (Rodas4/DP5 and BDF alike).

The semantics are stated once in ``cartsim.solvers.driver``. Both step loops hand the
tables around as two tuples (Numba passes them by value, unpacking is free):

* ``ev = (ev_t, ev_kind, ev_idx, ev_val)``: the scheduled events, sorted by time;
  ``iev`` is the first one not applied yet;
* ``rl = (rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time)``: the
  rules, with ``thr_s`` the thresholds in solver coordinates (``start``), ``fired`` and
  ``rule_time`` written as rules fire.

A loop calls ``start`` once, ``segment_end`` before every step, ``skip_to`` for a
negligible remaining segment, ``any_crossing`` after every accepted step and
``first_crossing`` / ``fire_crossing`` when a rule's state crossed its threshold in it,
``land`` when a step ends a segment. The helpers called on every step take single
arrays, not the tuples: a first version that passed the tuples on every step (and called
``land`` after every step) ran the loops 13-23% slower (median wall time over 8 alternating
runs of each tree, issue 15).
"""

import math

import numba as nb
import numpy as np

from cartsim.solvers import bdf
from cartsim.solvers.codes import (
    ADD_PARAM,
    ADD_STATE,
    MUL_STATE,
    NONFINITE,
    SET_PARAM,
    SUCCESS,
)
from cartsim.solvers.output import RK, dense_comp_at, dense_eval, dense_until, hold

LOG_FLOOR = 1e-30
"""Linear value a log state is floored at when an ``ADD_STATE`` would make it <= 0."""

_EPS = 2.220446049250313e-16


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
def all_finite(v):
    """True when every entry of the vector ``v`` is finite."""
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@nb.njit(cache=True, error_model="numpy")
def all_finite_2d(a):
    """True when every entry of the matrix ``a`` is finite."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not math.isfinite(a[i, j]):
                return False
    return True


@nb.njit(cache=True, error_model="numpy")
def apply_events_at(t, iev, ev, y, p, log_mask):
    """Apply all events with ``ev_t == t`` from position ``iev`` on; return the new position."""
    ev_t, ev_kind, ev_idx, ev_val = ev
    while iev < ev_t.shape[0] and ev_t[iev] == t:
        apply_action(ev_kind[iev], ev_idx[iev], ev_val[iev], y, p, log_mask)
        iev += 1
    return iev


@nb.njit(cache=True, error_model="numpy")
def fire_rules_above(t, y, p, log_mask, rl):
    """Fire (in index order, repeatedly) every unfired rule whose state is above threshold now."""
    rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time = rl
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
def start(y, pp, t0, t1, t_eval, ev, rule_thr, rl, log_mask, y_out):
    """Start of an integration, shared by every method.

    ``y``, ``pp``: the loop's own copies of ``y0`` and ``p`` (events act on them);
    ``rl``'s ``thr_s``, ``fired`` and ``rule_time`` are filled here: the rule thresholds
    in solver coordinates, nothing fired. Then NaN rows for outputs before ``t0``, skip
    the events before ``t0``, apply the events and rules at ``t0``, write the outputs at
    ``t0``. Returns ``(iout, iev, status)``.
    """
    rule_idx, thr_s, _, _, _, fired, rule_time = rl
    n = y.shape[0]
    nt = t_eval.shape[0]
    ev_t = ev[0]
    for j in range(rule_idx.shape[0]):
        rule_time[j] = np.nan
        fired[j] = False
        if log_mask[rule_idx[j]]:
            thr_s[j] = math.log(rule_thr[j]) if rule_thr[j] > 0.0 else -np.inf
        else:
            thr_s[j] = rule_thr[j]

    iout = 0
    while iout < nt and t_eval[iout] < t0:
        for i in range(n):
            y_out[iout, i] = np.nan
        iout += 1
    iev = 0
    while iev < ev_t.shape[0] and ev_t[iev] < t0:
        iev += 1
    if t0 <= t1:
        iev = apply_events_at(t0, iev, ev, y, pp, log_mask)
    fire_rules_above(t0, y, pp, log_mask, rl)
    if not all_finite(y):
        return iout, iev, NONFINITE
    while iout < nt and t_eval[iout] <= t0 and t0 <= t1:
        for i in range(n):
            y_out[iout, i] = y[i]
        iout += 1
    return iout, iev, SUCCESS


@nb.njit(cache=True, error_model="numpy")
def segment_end(t, t1, iev, ev_t, span):
    """``(tseg, hmin)``: the end of the current segment (the next event time or ``t1``)
    and the underflow limit ``1e-14 max(|t|, |t1 - t0|)`` of a step from ``t``."""
    tseg = t1
    if iev < ev_t.shape[0] and ev_t[iev] < tseg:
        tseg = ev_t[iev]
    return tseg, 1e-14 * max(abs(t), span)


@nb.njit(cache=True, error_model="numpy")
def land(t, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out):
    """Arrival at a segment end ``t``: apply the events there, fire the rules already above
    threshold, write the outputs at ``t``. (Inside a segment a step ends with ``hold``.)

    Returns ``(iev, iout, nchg, ok)``: ``nchg > 0`` when events or rules acted (the
    integration must restart), ``ok`` False when the state became non-finite (outputs
    then not written).
    """
    first = iev
    iev = apply_events_at(t, iev, ev, y, pp, log_mask)
    nchg = iev - first
    nchg += fire_rules_above(t, y, pp, log_mask, rl)
    if nchg > 0 and not all_finite(y):
        return iev, iout, nchg, False
    iout = hold(y_out, iout, t_eval, t, y, True)
    return iev, iout, nchg, True


@nb.njit(cache=True, error_model="numpy")
def skip_to(tseg, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out):
    """Jump without a step over a negligible remaining segment to its end ``tseg``:
    outputs before it hold the state, then ``land`` there. Returns ``land``'s tuple."""
    iout = hold(y_out, iout, t_eval, tseg, y, False)
    return land(tseg, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out)


@nb.njit(cache=True, error_model="numpy")
def any_crossing(y, ynew, rule_idx, thr_s, fired):
    """True when some unfired rule's ``g = y_i - thr`` goes from ``<= 0`` to ``> 0``."""
    for j in range(rule_idx.shape[0]):
        if not fired[j]:
            ii = rule_idx[j]
            if y[ii] - thr_s[j] <= 0.0 and ynew[ii] - thr_s[j] > 0.0:
                return True
    return False


@nb.njit(cache=True, error_model="numpy")
def locate(dense, order, t_a, t_b, h, i, thr, g0, g1):
    """Illinois root of component ``i`` of the step's dense output minus ``thr`` on
    ``theta`` in [0, 1] with ``g0 <= 0 < g1``; the step runs from ``t_a`` to ``t_b``.

    Returns the right end of the final bracket (where ``g > 0``), to a few ulps of ``t``
    (``|dt| <= max(1e-12 h, 4 eps |t|)``).
    """
    a = 0.0
    b = 1.0
    ga = g0
    gb = g1
    tol = max(1e-12, 4.0 * _EPS * max(abs(t_a), abs(t_b)) / h)
    side = 0
    for _ in range(200):
        if b - a <= tol:
            break
        c = (a * gb - b * ga) / (gb - ga)
        if not (c > a and c < b):
            c = 0.5 * (a + b)
        gc = dense_comp_at(dense, order, t_a, t_b, h, c, i) - thr
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
def first_crossing(dense, order, t_a, t_b, h, y, ynew, rl):
    """Earliest sign change of an unfired rule over the step from ``t_a`` to ``t_b``
    (``dense`` filled). Returns ``(theta_c, jc)``: the crossing as a fraction of the
    step (2 when none) and the rule index (-1 when none)."""
    rule_idx, thr_s, _, _, _, fired, _ = rl
    theta_c = 2.0
    jc = -1
    for j in range(rule_idx.shape[0]):
        if not fired[j]:
            ii = rule_idx[j]
            g0 = y[ii] - thr_s[j]
            g1 = ynew[ii] - thr_s[j]
            if g0 <= 0.0 and g1 > 0.0:
                th = locate(dense, order, t_a, t_b, h, ii, thr_s[j], g0, g1)
                if th < theta_c:
                    theta_c = th
                    jc = j
    return theta_c, jc


@nb.njit(cache=True, error_model="numpy")
def fire_crossing(dense, order, theta_c, jc, t, h, tn, tseg, y, ynew, pp, log_mask, t_eval,
                  iout, y_out, iev, ev, rl):
    """Truncate the accepted step ``[t, tn]`` at rule ``jc``'s crossing and act there.

    Writes the outputs before the crossing from ``dense``, sets ``y`` to the state
    there, fires the rule, applies the events due at that time and every rule then
    above threshold, and writes the outputs at it. Returns ``(t, iout, iev, ok)``
    with ``ok`` False when the state became non-finite (outputs then not written).
    """
    rule_kind, rule_tgt, rule_val, fired, rule_time = rl[2], rl[3], rl[4], rl[5], rl[6]
    tc = t + theta_c * h if theta_c < 1.0 else tn
    if tc > tn:
        tc = tn
    iout = dense_until(dense, order, t, tn, h, tc, t_eval, iout, y_out)
    if theta_c < 1.0:
        if order == RK:
            dense_eval(dense, theta_c, y)
        else:
            bdf.dense_eval(dense, order, tn, h, tc, y)
    else:
        for i in range(y.shape[0]):
            y[i] = ynew[i]
    fired[jc] = True
    rule_time[jc] = tc
    apply_action(rule_kind[jc], rule_tgt[jc], rule_val[jc], y, pp, log_mask)
    if tc == tseg:
        iev = apply_events_at(tc, iev, ev, y, pp, log_mask)
    fire_rules_above(tc, y, pp, log_mask, rl)
    if not all_finite(y):
        return tc, iout, iev, False
    iout = hold(y_out, iout, t_eval, tc, y, True)
    return tc, iout, iev, True
