"""The BDF loop: variable-order BDF/NDF, and DP5 -> BDF, with events and rules.

``integrate_multistep`` is ``cartsim.solvers.driver.integrate`` for ``METHOD_BDF`` and
``METHOD_DP5_BDF`` (``auto``). It shares segments, events, rules and output with the
one-step loop (``cartsim.solvers.events``, ``cartsim.solvers.output``) and DP5's step
control with it (``cartsim.solvers.control``); the BDF step and order control are
SciPy's (``cartsim.solvers.bdf``).
"""

import math

import numba as nb
import numpy as np

from cartsim.models import kernels
from cartsim.solvers import bdf, control, dopri, rodas, sparse_lu
from cartsim.solvers.codes import MAX_STEPS, NONFINITE, SINGULAR, STEP_UNDERFLOW, SUCCESS
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
def integrate_multistep(mid, y0, p, t_eval, t0, t1,
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
    test of ``DOPRI5`` (``control.stiffness_test``): ``h |lambda|`` above
    ``STIFF_HLAMB`` on ``STIFF_SWITCH`` accepted steps (without ``NONSTIFF_RESET``
    ordinary ones between) means stiffness starts to hold the step back; the segment
    then goes on with BDF from order 1, as after a restart. (LSODA switches Adams to
    BDF for the same reason.) On ``cd7`` lymphodepletion (days -5..0) is non-stiff and
    cheap for DP5, while the months after infusion are stiff.
    """
    n = y0.shape[0]
    mo = bdf.MAX_ORDER
    ev = (ev_t, ev_kind, ev_idx, ev_val)
    nr = rule_idx.shape[0]
    y = y0.copy()
    pp = p.copy()
    fired = np.zeros(nr, np.bool_)
    thr_s = np.empty(nr)
    rl = (rule_idx, thr_s, rule_kind, rule_tgt, rule_val, fired, rule_time)
    iout, iev, status = start(y, pp, t0, t1, t_eval, ev, rule_thr, rl, log_mask, y_out)

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
    sym, lu_vals = sparse_lu.workspace(n)
    lu_sparse = False
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

    t = t0
    span = abs(t1 - t0)
    hmax_eff = hmax if hmax > 0.0 else max(span, 1e-300)

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
        tseg, hmin = segment_end(t, t1, iev, ev_t, span)
        if tseg - t <= hmin:
            # negligible remaining segment: jump to it without a step
            t = tseg
            iev, iout, nchg, ok = skip_to(t, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out)
            if nchg > 0:
                restart = True
            if not ok:
                status = NONFINITE
                break
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
                if not all_finite(k0):
                    status = NONFINITE
                    break
                if first and h0 > 0.0:
                    h_dp = h0
                elif first or stiff:
                    h_dp = control.hinit(mid, t, y, pp, k0, atol, rtol, dopri.ORDER, hmax_eff,
                                         ytmp, dy)
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
            h, last, status = control.next_step(t, hfull, tseg, hmin, nsteps, max_steps)
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
                h_dp = control.dp5_reject(err, h)
                reject = True
                continue
            naccept += 1
            hnew, facold = control.dp5_accept(err, h, facold)
            hnew, tn, hp = control.step_ends(t, h, hnew, hfull, tseg, last, reject)
            reject = False
            iasti, nonsti = control.stiffness_test(h, kst, ynew, ytmp, iasti, nonsti)

            if any_crossing(y, ynew, rule_idx, thr_s, fired):
                rk_dense(False, y, ynew, h, kst, dense)
                theta_c, jc = first_crossing(dense, RK, t, t + h, h, y, ynew, rl)
                t, iout, iev, ok = fire_crossing(dense, RK, theta_c, jc, t, h, tn, tseg, y,
                                                 ynew, pp, log_mask, t_eval, iout, y_out, iev,
                                                 ev, rl)
                restart = True
                h_prop = hp
                if not ok:
                    status = NONFINITE
                    break
                continue
            if iout < t_eval.shape[0] and t_eval[iout] < tn:
                rk_dense(False, y, ynew, h, kst, dense)
                iout = dense_until(dense, RK, t, tn, h, tn, t_eval, iout, y_out)
            for i in range(n):
                y[i] = ynew[i]
                kst[0, i] = kst[6, i]
            t = tn
            h_dp = hnew
            h_prop = hp
            if not last:
                if iasti >= control.STIFF_SWITCH:
                    stiff = True
                    bdf_init = True
                iout = hold(y_out, iout, t_eval, t, y, True)
                continue
            iev, iout, nchg, ok = land(t, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out)
            if nchg > 0:
                restart = True
            if not ok:
                status = NONFINITE
                break
            continue

        if bdf_init:
            # (re)start at order 1: the history is invalid across a discontinuity
            kernels.rhs(mid, t, y, pp, fv)
            nfev += 1
            if not all_finite(fv):
                status = NONFINITE
                break
            if first and h0 > 0.0:
                h_abs = h0
            else:
                h_abs = control.hinit(mid, t, y, pp, fv, atol, rtol, 2, hmax_eff, ytmp, dy)
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
            if not all_finite_2d(jm):
                status = NONFINITE
                break
            sparse_lu.analyse(jm, sym)
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

            # rows of D outermost: contiguous, vectorisable loops (same sums, same order)
            for i in range(n):
                ypred[i] = 0.0 + D[0, i]
                psi[i] = 0.0
            for j in range(1, order + 1):
                gj = gam[j]
                for i in range(n):
                    ypred[i] += D[j, i]
                    psi[i] += D[j, i] * gj
            ao = alp[order]
            for i in range(n):
                scale[i] = atol[i] + rtol * abs(ypred[i])
                psi[i] = psi[i] / ao
            c = h / alp[order]
            if lu_ok and abs(c / c_lu - 1.0) > bdf.LU_REUSE:
                lu_ok = False

            converged = False
            nonfin = False
            lu_info = rodas.LU_OK
            jac_bad = False
            while not converged:
                if not lu_ok:
                    lu_info, lu_sparse = bdf.form_lu(jm, c, lu, piv, sp, sym, lu_vals)
                    nlu += 1
                    if lu_info != rodas.LU_OK:
                        break
                    lu_ok = True
                    c_lu = c
                converged, n_iter, nonfin = bdf.solve_system(mid, t_new, ypred, c, psi, lu,
                                                             piv, sp, sym, lu_vals, lu_sparse,
                                                             scale, ntol, pp, ynew, dv, fv,
                                                             dy, c / c_lu)
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
                    if not all_finite_2d(jm):
                        jac_bad = True
                        break
                    sparse_lu.analyse(jm, sym)
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

        # state-triggered rules: earliest sign change over this step (BDF's polynomial)
        if any_crossing(y, ynew, rule_idx, thr_s, fired):
            theta_c, jc = first_crossing(D, order, t_new - h, t_new, h, y, ynew, rl)
            t, iout, iev, ok = fire_crossing(D, order, theta_c, jc, t, h, t_new, tseg, y, ynew,
                                             pp, log_mask, t_eval, iout, y_out, iev, ev, rl)
            restart = True
            if not ok:
                status = NONFINITE
                break
            continue

        # dense output onto t_eval strictly inside the step
        if iout < t_eval.shape[0] and t_eval[iout] < t_new:
            iout = dense_until(D, order, t, t_new, h, t_new, t_eval, iout, y_out)
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
            fm = control.order_factor(em, order)
            fc = control.order_factor(err_norm, order + 1)
            fp = control.order_factor(ep, order + 2)
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

        if not last:
            iout = hold(y_out, iout, t_eval, t, y, True)
            continue
        iev, iout, nchg, ok = land(t, iev, ev, y, pp, log_mask, rl, t_eval, iout, y_out)
        if nchg > 0:
            restart = True
        if not ok:
            status = NONFINITE
            break

    finish(y_out, iout, stats, naccept, nreject, nfev, njev)
    if stats.shape[0] > 4:
        stats[4] = nlu
    return status
