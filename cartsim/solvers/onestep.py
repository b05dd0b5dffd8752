"""The one-step loop: Rodas4 and DP5 (adaptive or fixed-step) with events and rules.

``integrate_onestep`` is ``cartsim.solvers.driver.integrate`` for ``METHOD_RODAS4``,
``METHOD_DP5`` and their ``FIXED_STEP`` variants: it runs segment by segment (from
``t0`` or an event to the next event or ``t1``), attempts steps of ``rodas.rodas_step``
or ``dopri.dp5_step``, controls them (``cartsim.solvers.control``), locates and fires
rules and applies events (``cartsim.solvers.events``) and writes the dense output
(``cartsim.solvers.output``). Conventions and statuses: ``cartsim.solvers.driver``.
"""

import math

import numba as nb
import numpy as np

from cartsim.models import kernels
from cartsim.solvers import control, dopri, rodas
from cartsim.solvers.codes import FIXED_STEP, METHOD_RODAS4, NONFINITE, SINGULAR, SUCCESS
from cartsim.solvers.events import (
    all_finite,
    all_finite_2d,
    any_crossing,
    fire_crossing,
    first_crossing,
    land,
    segment_end,
    skip_to,
    start,
)
from cartsim.solvers.output import RK, dense_until, finish, hold, rk_dense


@nb.njit(cache=True, error_model="numpy")
def integrate_onestep(mid, method, y0, p, t_eval, t0, t1,
                      ev_t, ev_kind, ev_idx, ev_val,
                      rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
                      log_mask, rtol, atol, h0, hmax, max_steps,
                      y_out, stats, rule_time):
    """``integrate`` for Rodas4 and DP5 (``method`` 0..3); same arguments and result."""
    n = y0.shape[0]
    rodas_m = (method % FIXED_STEP) == METHOD_RODAS4
    fixed_step = method >= FIXED_STEP and h0 > 0.0
    order = rodas.ORDER if rodas_m else dopri.ORDER
    ev = (ev_t, ev_kind, ev_idx, ev_val)
    nr = rule_idx.shape[0]
    y = y0.copy()
    pp = p.copy()
    fired = np.zeros(nr, np.bool_)
    thr_s = np.empty(nr)
    rl = (rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time)
    iout, iev, status = start(y, pp, t0, t1, t_eval, ev, rule_thr, rl, log_mask, y_out)

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
    # the right-hand side at the step's start: f0 for Rodas4, the first stage for DP5 (FSAL)
    fstart = f0 if rodas_m else kst[0]
    autonomous = kernels.is_autonomous(mid)

    naccept = 0
    nreject = 0
    nfev = 0
    njev = 0
    nsteps = 0

    t = t0
    span = abs(t1 - t0)
    hmax_eff = hmax if hmax > 0.0 else max(span, 1e-300)

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
        tseg, hmin = segment_end(t, t1, iev, ev_t, span)
        if tseg - t <= hmin:
            # negligible remaining segment: jump to it without a step
            t = tseg
            iev, iout, nchg, ok = skip_to(t, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out)
            if nchg > 0:
                f_ok = False
                jac_ok = False
                restart = True
                if h > 0.0:
                    h_prop = h
            if not ok:
                status = NONFINITE
                break
            continue

        if not f_ok:
            kernels.rhs(mid, t, y, pp, fstart)
            nfev += 1
            if not all_finite(fstart):
                status = NONFINITE
                break
            f_ok = True
        if restart:
            if first:
                if h0 > 0.0:
                    h = h0
                else:
                    h = control.hinit(mid, t, y, pp, fstart, atol, rtol, order, hmax_eff,
                                      ytmp, dy)
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
        h, last, status = control.next_step(t, hfull, tseg, hmin, nsteps, max_steps)
        if status != SUCCESS:
            break
        nsteps += 1

        # ---------------------------------------------------------------- attempt a step
        if rodas_m:
            if not jac_ok:
                nfev += rodas.rodas_jacobian(mid, t, y, pp, f0, jm, fx, ytmp, dy, autonomous)
                njev += 1
                if not (all_finite(fx) and all_finite_2d(jm)):
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

        if not (fixed_step or err <= 1.0):
            # ------------------------------------------------------------ rejected
            nreject += 1
            h = control.rodas_reject(err, h) if rodas_m else control.dp5_reject(err, h)
            reject = True
            continue

        # ---------------------------------------------------------------- accepted
        naccept += 1
        if fixed_step:
            hnew = h0
        elif rodas_m:
            hnew, hacc, erracc = control.rodas_accept(err, h, nacc_seg, hacc, erracc)
        else:
            hnew, facold = control.dp5_accept(err, h, facold)
        hnew, tn, hp = control.step_ends(t, h, hnew, hfull, tseg, last, reject)
        reject = False
        nacc_seg += 1

        # state-triggered rules: earliest sign change over this step
        crossed = any_crossing(y, ynew, rule_idx, thr_s, fired)
        if crossed:
            rk_dense(rodas_m, y, ynew, h, kst, dense)
            theta_c, jc = first_crossing(dense, RK, t, t + h, h, y, ynew, rl)
            t, iout, iev, ok = fire_crossing(dense, RK, theta_c, jc, t, h, tn, tseg, y, ynew,
                                             pp, log_mask, t_eval, iout, y_out, iev, ev, rl)
            f_ok = False
            jac_ok = False
            restart = True
            h_prop = hp
            h = hnew
            if not ok:
                status = NONFINITE
                break
            continue

        # dense output onto t_eval strictly inside the step
        if iout < t_eval.shape[0] and t_eval[iout] < tn:
            rk_dense(rodas_m, y, ynew, h, kst, dense)
            iout = dense_until(dense, RK, t, tn, h, tn, t_eval, iout, y_out)
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
        if not last:
            iout = hold(y_out, iout, t_eval, t, y, True)
            continue
        iev, iout, nchg, ok = land(t, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out)
        if nchg > 0:
            f_ok = False
            jac_ok = False
            restart = True
        if not ok:
            status = NONFINITE
            break

    finish(y_out, iout, stats, naccept, nreject, nfev, njev)
    return status
