r"""Compiled hybrid stochastic simulator of the ``cd7`` reaction network (compartments or clones).

The network is :mod:`cartsim.models.cd7_kernel` unchanged: ``STOICH``, ``propensities``,
``drivers`` and ``continuous_rhs`` are called as they are. This module adds how time
advances.

One realisation
---------------
Time runs from ``t0`` to ``t1`` in steps that stop exactly at every dose event and output
time, of at most ``dt_max``, at most ``5 / lambda_max`` (the fastest continuous clearance:
stability of the explicit scheme) and small enough that no continuous state changes by
more than ``continuous_rtol`` of itself (plus an absolute scale). Each step ``[t, t+h]``
is Strang-split:

1. continuous states ``c`` (drug PK, cytokines, homeostatic cytokine, myeloid
   compartments) advance ``h/2`` by classical Runge-Kutta 4 with the cell counts frozen;
2. cell counts advance ``h`` with ``c`` frozen (below);
3. ``c`` advances the second ``h/2`` with the new cell counts.

Cell counts (whole numbers) advance by the modified tau-leaping of Cao, Gillespie &
Petzold (2005 J Chem Phys 122:054104; 2006 J Chem Phys 124:044109):

* a reaction that changes a population of fewer than ``nsw`` cells is *critical* and
  fires exactly (Gillespie's direct method); the others leap. A small population fed by a
  large one therefore crosses ``nsw`` by exact firings (at most ``nsw`` of them) and is
  never seen stale by the exact reactions of its own cells;
* the leap ``tau1`` is the CGP bound over every species ``i`` that leaping reactions
  change:
  :math:`\tau_1 = \min_i \min\left(\frac{\max(\epsilon x_i/g_i, 1)}{|\mu_i|},
  \frac{\max(\epsilon x_i/g_i, 1)^2}{\sigma_i^2}\right)` with
  :math:`\mu_i = \sum_j S_{ji} a_j`, :math:`\sigma^2_i = \sum_j S_{ji}^2 a_j` over leaping
  reactions and :math:`g_i = 2` for blasts and extramedullary cells (second-order crowding
  death), 1 otherwise;
* critical reactions fire by Gillespie's direct method inside ``[0, tau1]`` with their
  per-capita rates frozen at the step start (their propensities follow the counts); the
  step ends at a firing once it has moved an aggregate population by
  ``max(epsilon x/g, 1)`` cells (below 1/epsilon cells that is the first firing, as in
  Cao et al.; a first-order reaction's per-capita rate is exact within the step anyway,
  only its dependence on other populations is frozen, as in a leap; for clones of a large
  CAR-T population many clone-level firings share one step). ``method="exact"`` ends
  every step at its first firing (Gillespie's direct method throughout);
* over the step's length ``tau`` the leaping reactions fire Poisson(a_j(x_mid) tau) times
  with propensities at the estimated midpoint :math:`x_{mid} = x + (\tau/2)\mu`
  (Gillespie 2001 J Chem Phys 115:1716: the bias of the mean drops from O(tau) to
  O(tau^2); a test measures the order);
* a step that would make any population negative is rejected and retried with
  :math:`\tau_1/2` (no negative populations, ever).

The cost per day is set by the relative rates, not the counts: a leap moves every large
population by at most ``epsilon`` of itself, so 1e6 and 1e12 cells cost the same; Poisson
counts with a mean above ``langevin`` are drawn from the normal approximation (chemical
Langevin regime).

Clones (``engine=agent``)
-------------------------
CAR-T cells (effector, memory, exhausted) are held per clone ``k`` (counts ``n_k``), the
other species as compartments. Per-capita rates of the CAR-T reactions come from the
network's propensities at the aggregate counts, ``q_r = a_r / x_{src(r)}``; clone ``k``
fires reaction ``r`` at ``q_r m_{kr} n_{k,src(r)}`` with multipliers for clone-specific
residual CD7 (fratricide ``r_k / \bar r``, where the network sees the population mean
:math:`\bar r = \sum_k r_k n_k / \sum_k n_k`) and exhaustion level ``e_k`` (expansion
``1/(1+e_k)``, effector -> exhausted ``1+e_k``; ``de_k/dt = gain S_ag E_k/n_k``: the
clone's effector share is what is chronically stimulated). With both off,
``m = 1`` and the clones partition the compartment model exactly (a multi-type branching
process split by lineage), which a test checks. The compartment engine is the one-clone
case of the same code.

Events and rules follow :mod:`cartsim.solvers.driver`: events at one time apply in table
order before the outputs at that time (right-continuous); ``ADD_STATE`` on a cell species
adds a whole number with the given mean (stochastic rounding; CAR-T cells split over the
clones by a multinomial draw with equal shares), ``MUL_STATE`` thins by a binomial draw
(factor <= 1); a rule fires at the end of the first step where its state is above the
threshold (within one step of the crossing) or right after an event/rule that puts it
above. Conditional events (``ev_cond = 1``, the HSCT) apply only if marrow blasts /
(blasts + normal marrow cells) is below the patient's ``hsct_limit`` when their time comes.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from cartsim.codes import MAX_STEPS, NONFINITE, SUCCESS
from cartsim.models import cd7_kernel as K
from cartsim.models.base import ADD_STATE
from cartsim.solvers.cache import refresh_cache as _refresh_cache
from cartsim.stochastic import rng
from cartsim.stochastic.actions import _apply, _events_at, _fire_rules, _record, _sync_car
from cartsim.stochastic.network import (
    G_ORDER,
    N_CAR_REAC,
    N_DIV,
    NCAR,
    NCELL,
    NCONT,
    NREAC,
    R_EXPAND,
    R_FRAT0,
    R_FRAT1,
    R_TO_EXH,
    SRC,
    STATUS_NAMES,
    STOICH,
    _c_step,
    _lambda_max,
    _rk4,
)

__all__ = ["N_DIV", "STATUS_NAMES", "run_batch", "run_one"]


@nb.njit(cache=True, error_model="numpy")
def _rbar(cn, cr, fallback):
    num = 0.0
    den = 0.0
    for k in range(cn.shape[0]):
        tot = cn[k, 0] + cn[k, 1] + cn[k, 2]
        num += cr[k] * tot
        den += tot
    return num / den if den > 0.0 else fallback


@nb.njit(cache=True, error_model="numpy")
def _mult(r, k, cr, rbar, cex, clone_cd7, exhaustion):
    """Clone ``k``'s multiplier of the per-capita rate of CAR-T reaction ``r``."""
    m = 1.0
    if exhaustion:
        if r == R_EXPAND:
            m = 1.0 / (1.0 + cex[k])
        elif r == R_TO_EXH:
            m = 1.0 + cex[k]
    if clone_cd7 and r >= R_FRAT0 and r <= R_FRAT1 and rbar > 0.0:
        m *= cr[k] / rbar
    return m


@nb.njit(cache=True, error_model="numpy", inline="always")
def _crit_global(r, x, nsw):
    """A non-CAR-T reaction is critical (exact) if any species it changes is below ``nsw``."""
    for i in range(NCAR, NCELL):
        if STOICH[r, i] != 0 and x[i] < nsw:
            return True
    return False


@nb.njit(cache=True, error_model="numpy", inline="always")
def _crit_clone(r, k, cn, nsw):
    """Clone ``k``'s CAR-T reaction ``r`` is critical if any count it changes is below ``nsw``."""
    for i in range(NCAR):
        if STOICH[r, i] != 0 and cn[k, i] < nsw:
            return True
    return False


@nb.njit(cache=True, error_model="numpy")
def _clone_props(k, cn, nsw, q, cr, rbar, cex, clone_cd7, exhaustion, cprop):
    """Critical propensities of clone ``k`` (per-capita rates ``q`` frozen); returns their sum."""
    tot = 0.0
    for r in range(N_CAR_REAC):
        v = 0.0
        n = cn[k, SRC[r]]
        if n > 0.0 and q[r] > 0.0 and _crit_clone(r, k, cn, nsw):
            v = q[r] * _mult(r, k, cr, rbar, cex, clone_cd7, exhaustion) * n
        cprop[k, r] = v
        tot += v
    return tot


@nb.njit(cache=True, error_model="numpy")
def _crit_props(xs, cns, nsw, a, q, cr, rbar, cex, clone_cd7, exhaustion, gprop, cprop, csum):
    """Propensities of the critical reactions at the step start; returns their total.

    Criticality is decided at the step start (``xs``, ``cns``) and kept for the step."""
    tot = 0.0
    for r in range(N_CAR_REAC, NREAC):
        v = a[r] if (a[r] > 0.0 and _crit_global(r, xs, nsw)) else 0.0
        gprop[r] = v
        tot += v
    for k in range(cns.shape[0]):
        csum[k] = _clone_props(k, cns, nsw, q, cr, rbar, cex, clone_cd7, exhaustion, cprop)
        tot += csum[k]
    return tot


@nb.njit(cache=True, error_model="numpy")
def _fire_critical(u, x, cn, cdiv, xs, cns, nsw, a, q, cr, rbar, cex, clone_cd7, exhaustion, gprop,
                   cprop, csum, cum, eps):
    """Fire the critical reaction that ``u`` (uniform on [0, total)) selects and update the
    critical propensities it changes (per-capita rates frozen). Returns True when an
    aggregate population has moved by ``max(eps x/g, 1)`` in this step (end the step)."""
    nk = cn.shape[0]
    rg = -1
    for r in range(N_CAR_REAC, NREAC):
        if gprop[r] > 0.0:
            rg = r
            u -= gprop[r]
            if u < 0.0:
                break
    if u < 0.0:
        for i in range(NCAR, NCELL):
            v = STOICH[rg, i]
            if v != 0:
                x[i] += v
                cum[i] += abs(v)
        # first-order propensities: per-capita rate x new source count
        for r in range(N_CAR_REAC, NREAC):
            if a[r] > 0.0 and _crit_global(r, xs, nsw):
                src = SRC[r]
                gprop[r] = a[r] / xs[src] * x[src] if xs[src] > 0.0 else 0.0
    else:
        kk = -1
        for k in range(nk):
            if csum[k] > 0.0:
                kk = k
                u -= csum[k]
                if u < 0.0:
                    break
        if kk < 0:
            if rg < 0:
                return True
            # rounding left u >= 0 with no clone candidate: fire the last global one
            for i in range(NCAR, NCELL):
                x[i] += STOICH[rg, i]
                cum[i] += abs(STOICH[rg, i])
            return True
        u += csum[kk]
        rr = -1
        for r in range(N_CAR_REAC):
            if cprop[kk, r] > 0.0:
                rr = r
                u -= cprop[kk, r]
                if u < 0.0:
                    break
        for i in range(NCAR):
            v = STOICH[rr, i]
            if v != 0:
                cn[kk, i] += v
                x[i] += v
                cum[i] += abs(v)
        if rr == R_EXPAND:
            cdiv[kk] += 1.0
        # the clone's critical set stays as decided at the step start; rates follow counts
        tot = 0.0
        for r in range(N_CAR_REAC):
            if _crit_clone(r, kk, cns, nsw):  # the critical set is the step start's
                n = cn[kk, SRC[r]]
                v = q[r] * _mult(r, kk, cr, rbar, cex, clone_cd7, exhaustion) * n if n > 0.0 \
                    else 0.0
                cprop[kk, r] = v
                tot += v
        csum[kk] = tot
    for i in range(NCELL):
        if cum[i] > 0.0 and cum[i] >= max(eps * xs[i] / G_ORDER[i], 1.0):
            return True
    return False


@nb.njit(cache=True, error_model="numpy")
def _cells(s, s_end, x, c, p, cn, cdiv, cex, cr, clone_cd7, exhaustion, gain, st, eps, nsw,
           langevin, max_steps, a, q, mu, sig, muc, sigc, xs, cns, cdivs, xm, am, qm, cm,
           gprop, cprop, csum, cum, counters):
    """Advance the cell counts from ``s`` to ``s_end`` with continuous states ``c`` frozen.

    Returns a status code. ``counters``: steps, exact firings, rejected leaps.
    """
    nk = cn.shape[0]
    resid0 = p[K.D_RESID]
    # all-exact (method="exact"): end every step at its first firing (true direct method)
    eps_crit = 0.0 if nsw >= 1e299 else eps
    while s < s_end:
        if counters[0] + counters[1] >= max_steps:
            return MAX_STEPS
        counters[0] += 1
        rbar = resid0
        if clone_cd7:
            rbar = _rbar(cn, cr, resid0)
            p[K.D_RESID] = rbar
        K.propensities(x, c, p, a)
        for r in range(N_CAR_REAC):
            xsrc = x[SRC[r]]
            q[r] = a[r] / xsrc if xsrc > 0.0 else 0.0
        a0c = 0.0
        for i in range(NCELL):
            mu[i] = 0.0
            sig[i] = 0.0
        for r in range(N_CAR_REAC, NREAC):
            ar = a[r]
            if not ar > 0.0:
                continue
            if _crit_global(r, x, nsw):
                a0c += ar
            else:
                for i in range(NCAR, NCELL):
                    v = STOICH[r, i]
                    if v != 0:
                        mu[i] += v * ar
                        sig[i] += v * v * ar
        for k in range(nk):
            for i in range(NCAR):
                muc[k, i] = 0.0
                sigc[k, i] = 0.0
            for r in range(N_CAR_REAC):
                n = cn[k, SRC[r]]
                if n <= 0.0 or q[r] <= 0.0:
                    continue
                akr = q[r] * _mult(r, k, cr, rbar, cex, clone_cd7, exhaustion) * n
                if _crit_clone(r, k, cn, nsw):
                    a0c += akr
                else:
                    for i in range(NCAR):
                        v = STOICH[r, i]
                        if v != 0:
                            muc[k, i] += v * akr
                            sigc[k, i] += v * v * akr
        # Cao-Gillespie-Petzold bound over every species that leaping reactions change
        remaining = s_end - s
        tau1 = remaining
        for i in range(NCAR, NCELL):
            if mu[i] != 0.0 or sig[i] > 0.0:
                bnd = max(eps * x[i] / G_ORDER[i], 1.0)
                if mu[i] != 0.0:
                    tau1 = min(tau1, bnd / abs(mu[i]))
                if sig[i] > 0.0:
                    tau1 = min(tau1, bnd * bnd / sig[i])
        for k in range(nk):
            for i in range(NCAR):
                if muc[k, i] != 0.0 or sigc[k, i] > 0.0:
                    bnd = max(eps * cn[k, i], 1.0)
                    if muc[k, i] != 0.0:
                        tau1 = min(tau1, bnd / abs(muc[k, i]))
                    if sigc[k, i] > 0.0:
                        tau1 = min(tau1, bnd * bnd / sigc[k, i])
        if not (tau1 > 0.0 and a0c < np.inf and math.isfinite(a0c)):
            return NONFINITE
        s_ag = 0.0
        if exhaustion:
            s_ag = K.drivers(x[K.S_E], x[K.S_M], x[K.S_X], x[K.S_B7], x[K.S_L], x[K.S_T7],
                             c, p)[0]
        for i in range(NCELL):
            xs[i] = x[i]
        for k in range(nk):
            cdivs[k] = cdiv[k]
            for i in range(NCAR):
                cns[k, i] = cn[k, i]
        while True:
            # 1. critical reactions by Gillespie's direct method on [0, tau1] with per-capita
            #    rates frozen; the step ends early once a critical firing has moved an
            #    aggregate population by max(eps x/g, 1) (for a compartment: after one firing)
            tau = tau1
            a0l = _crit_props(xs, cns, nsw, a, q, cr, rbar, cex, clone_cd7, exhaustion, gprop,
                              cprop, csum)
            for i in range(NCELL):
                cum[i] = 0.0
            t_loc = 0.0
            while a0l > 0.0:
                if counters[0] + counters[1] >= max_steps:
                    return MAX_STEPS
                dt = rng.exponential(st) / a0l
                if t_loc + dt > tau1:
                    break
                t_loc += dt
                counters[1] += 1
                stop = _fire_critical(rng.uniform(st) * a0l, x, cn, cdiv, xs, cns, nsw, a, q, cr,
                                      rbar, cex, clone_cd7, exhaustion, gprop, cprop, csum,
                                      cum, eps_crit)
                a0l = 0.0
                for r in range(N_CAR_REAC, NREAC):
                    a0l += gprop[r]
                for k in range(nk):
                    a0l += csum[k]
                if stop:
                    tau = t_loc
                    break
            # 2. estimated-midpoint leap (Gillespie 2001 J Chem Phys 115:1716) of the others:
            #    propensities at x + (tau/2) * drift remove the O(tau) bias of the mean
            for i in range(NCAR, NCELL):
                xm[i] = max(0.0, xs[i] + 0.5 * tau * mu[i]) if xs[i] >= nsw else xs[i]
            for i in range(NCAR):
                xm[i] = 0.0
            for k in range(nk):
                for i in range(NCAR):
                    v = cns[k, i]
                    if v >= nsw:
                        v = max(0.0, v + 0.5 * tau * muc[k, i])
                    cm[k, i] = v
                    xm[i] += v
            K.propensities(xm, c, p, am)
            for r in range(N_CAR_REAC):
                xsrc = xm[SRC[r]]
                qm[r] = am[r] / xsrc if xsrc > 0.0 else 0.0
            for r in range(N_CAR_REAC, NREAC):
                if a[r] > 0.0 and not _crit_global(r, xs, nsw):
                    kk = rng.poisson(st, am[r] * tau, langevin)
                    if kk > 0.0:
                        for i in range(NCAR, NCELL):
                            x[i] += STOICH[r, i] * kk
            for k in range(nk):
                for r in range(N_CAR_REAC):
                    n = cns[k, SRC[r]]
                    if n <= 0.0 or q[r] <= 0.0 or _crit_clone(r, k, cns, nsw):
                        continue
                    akr = qm[r] * _mult(r, k, cr, rbar, cex, clone_cd7, exhaustion) * cm[k, SRC[r]]
                    kk = rng.poisson(st, akr * tau, langevin)
                    if kk > 0.0:
                        for i in range(NCAR):
                            cn[k, i] += STOICH[r, i] * kk
                        if r == R_EXPAND:
                            cdiv[k] += kk
            _sync_car(x, cn)
            ok = True
            for i in range(NCELL):
                if x[i] < 0.0:
                    ok = False
            for k in range(nk):
                for i in range(NCAR):
                    if cn[k, i] < 0.0:
                        ok = False
            if ok:
                break
            counters[2] += 1
            for i in range(NCELL):
                x[i] = xs[i]
            for k in range(nk):
                cdiv[k] = cdivs[k]
                for i in range(NCAR):
                    cn[k, i] = cns[k, i]
            tau1 *= 0.5
        if exhaustion:
            for k in range(nk):
                tot = cn[k, 0] + cn[k, 1] + cn[k, 2]
                if tot > 0.0:
                    cex[k] += gain * s_ag * tau * cn[k, 0] / tot
        if tau >= remaining:
            s = s_end
        else:
            s += tau
    p[K.D_RESID] = resid0
    return SUCCESS


@nb.njit(cache=True, error_model="numpy")
def run_one(x0, c0, p0, t_eval, t0, t1, ev_t, ev_kind, ev_idx, ev_val, ev_cond, nev,
            hsct_limit, rule_idx, rule_thr, rule_kind, rule_tgt, rule_val, nrule, st,
            fopt, iopt, cscale, y_out, div_out, size_out, rule_time, counters, cl_out):
    """Simulate one realisation; returns ``(status, hsct_day)`` (NaN: no transplant).

    ``fopt = [epsilon, nsw, langevin, dt_max, cd7_log_sd, exhaustion_gain, continuous_rtol]``;
    ``cscale`` the absolute scales of the continuous states' step control;
    ``iopt = [max_steps, n_clones, clone_cd7, exhaustion]``. ``y_out[nt, N_STATE]`` gets
    counts and continuous states (linear units), ``div_out[nt, N_DIV]`` clonal diversity,
    ``size_out[nt, n_clones]`` clone sizes at the outputs (only if its first dim is ``nt``),
    ``cl_out[n_clones, 4]`` the final clone size (cells), divisions, exhaustion level and
    residual CD7. ``st`` is this realisation's xoshiro state (advanced in place).
    """
    eps, nsw, langevin, dt_max, cd7_sd, gain = fopt[0], fopt[1], fopt[2], fopt[3], fopt[4], \
        fopt[5]
    crtol = fopt[6]
    max_steps = iopt[0]
    nk = iopt[1]
    clone_cd7 = iopt[2] != 0
    exhaustion = iopt[3] != 0
    nt = t_eval.shape[0]
    p = p0.copy()
    x = np.zeros(NCELL)
    c = c0.copy()
    cn = np.zeros((nk, NCAR))
    cdiv = np.zeros(nk)
    cex = np.zeros(nk)
    cr = np.empty(nk)
    for k in range(nk):
        if clone_cd7:
            z = rng.normal(st)
            cr[k] = min(1.0, p[K.D_RESID] * math.exp(cd7_sd * z - 0.5 * cd7_sd * cd7_sd))
        else:
            cr[k] = p[K.D_RESID]
    for i in range(NCELL):
        if i < NCAR:
            _apply(ADD_STATE, i, x0[i], x, c, p, cn, st)
        else:
            x[i] = rng.stochastic_round(st, x0[i])
    # work arrays
    a = np.zeros(NREAC)
    q = np.zeros(N_CAR_REAC)
    mu = np.zeros(NCELL)
    sig = np.zeros(NCELL)
    muc = np.zeros((nk, NCAR))
    sigc = np.zeros((nk, NCAR))
    xs = np.zeros(NCELL)
    cns = np.zeros((nk, NCAR))
    cdivs = np.zeros(nk)
    xm = np.zeros(NCELL)
    am = np.zeros(NREAC)
    qm = np.zeros(N_CAR_REAC)
    cm = np.zeros((nk, NCAR))
    gprop = np.zeros(NREAC)
    cprop = np.zeros((nk, N_CAR_REAC))
    csum = np.zeros(nk)
    cum = np.zeros(NCELL)
    k1 = np.zeros(NCONT)
    k2 = np.zeros(NCONT)
    k3 = np.zeros(NCONT)
    k4 = np.zeros(NCONT)
    tmp = np.zeros(NCONT)
    fired = np.zeros(max(nrule, 1), dtype=np.bool_)
    for j in range(nrule):
        rule_time[j] = np.nan
    hsct_day = np.nan

    iout = 0
    while iout < nt and t_eval[iout] < t0:
        for i in range(y_out.shape[1]):
            y_out[iout, i] = np.nan
        iout += 1
    iev = 0
    while iev < nev and ev_t[iev] < t0:
        iev += 1
    iev, hs = _events_at(t0, iev, nev, ev_t, ev_kind, ev_idx, ev_val, ev_cond, hsct_limit,
                         x, c, p, cn, st)
    if hs == hs:
        hsct_day = hs
    _fire_rules(t0, x, c, p, cn, st, rule_idx, rule_thr, rule_kind, rule_tgt, rule_val, nrule,
                fired, rule_time)
    while iout < nt and t_eval[iout] <= t0:
        _record(y_out, div_out, size_out, iout, x, c, cn)
        iout += 1
    t = t0
    status = SUCCESS
    # explicit RK4 on half steps is stable for (h/2) lambda < 2.78; 5/lambda keeps z = 2.5
    h_stab = 5.0 / _lambda_max(p) if _lambda_max(p) > 0.0 else np.inf
    while t < t1:
        t_stop = t1
        if iev < nev and ev_t[iev] < t_stop:
            t_stop = ev_t[iev]
        if iout < nt and t_eval[iout] < t_stop:
            t_stop = t_eval[iout]
        h = t_stop - t
        t_new = t_stop
        h_c = max(_c_step(x, c, p, cscale, crtol, min(dt_max, h_stab), k1), 1e-7)
        if h > h_c:
            h = h_c
            t_new = t + h
        _rk4(x, c, p, 0.5 * h, k1, k2, k3, k4, tmp)
        status = _cells(t, t_new, x, c, p, cn, cdiv, cex, cr, clone_cd7, exhaustion, gain, st,
                        eps, nsw, langevin, max_steps, a, q, mu, sig, muc, sigc, xs, cns, cdivs,
                        xm, am, qm, cm, gprop, cprop, csum, cum, counters)
        if status != SUCCESS:
            break
        _rk4(x, c, p, 0.5 * h, k1, k2, k3, k4, tmp)
        for j in range(NCONT):
            if not math.isfinite(c[j]):
                status = NONFINITE
        if status != SUCCESS:
            break
        t = t_new
        _fire_rules(t, x, c, p, cn, st, rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
                    nrule, fired, rule_time)
        if iev < nev and ev_t[iev] == t:
            iev, hs = _events_at(t, iev, nev, ev_t, ev_kind, ev_idx, ev_val, ev_cond,
                                 hsct_limit, x, c, p, cn, st)
            if hs == hs:
                hsct_day = hs
            _fire_rules(t, x, c, p, cn, st, rule_idx, rule_thr, rule_kind, rule_tgt, rule_val,
                        nrule, fired, rule_time)
        while iout < nt and t_eval[iout] <= t:
            _record(y_out, div_out, size_out, iout, x, c, cn)
            iout += 1
    while iout < nt:
        for i in range(y_out.shape[1]):
            y_out[iout, i] = np.nan
        for i in range(div_out.shape[1]):
            div_out[iout, i] = np.nan
        if size_out.shape[0] == nt:
            for k in range(nk):
                size_out[iout, k] = np.nan
        iout += 1
    for k in range(nk):
        cl_out[k, 0] = cn[k, 0] + cn[k, 1] + cn[k, 2]
        cl_out[k, 1] = cdiv[k]
        cl_out[k, 2] = cex[k]
        cl_out[k, 3] = cr[k]
    return status, hsct_day


@nb.njit(cache=True, parallel=True, error_model="numpy")
def run_batch(pat_of, X0, C0, P, t_eval, t0, t1, EV_T, EV_KIND, EV_IDX, EV_VAL, EV_COND, EV_N,
              HSCT_LIMIT, RULE_IDX, RULE_THR, RULE_KIND, RULE_TGT, RULE_VAL, RULE_N, STATES,
              fopt, iopt, CSCALE, Y_OUT, DIV_OUT, SIZE_OUT, RULE_TIME, COUNTERS, CL_OUT, STATUS,
              HSCT_DAY):
    """All realisations in parallel (``prange``); run ``j`` simulates patient ``pat_of[j]``
    with its own xoshiro state ``STATES[j]``, so results do not depend on the thread count."""
    for j in nb.prange(pat_of.shape[0]):
        i = pat_of[j]
        st = STATES[j].copy()
        status, hs = run_one(X0[i], C0[i], P[i], t_eval, t0, t1, EV_T[i], EV_KIND[i],
                             EV_IDX[i], EV_VAL[i], EV_COND[i], EV_N[i], HSCT_LIMIT[i],
                             RULE_IDX[i], RULE_THR[i], RULE_KIND[i], RULE_TGT[i], RULE_VAL[i],
                             RULE_N[i], st, fopt, iopt, CSCALE, Y_OUT[j], DIV_OUT[j], SIZE_OUT[j],
                             RULE_TIME[j],
                             COUNTERS[j], CL_OUT[j])
        STATUS[j] = status
        HSCT_DAY[j] = hs


# Numba invalidates a cached function only when its own file changes; this engine inlines
# the cd7 network (cartsim.models.cd7_kernel), so an edit there would keep serving stale
# machine code (wrong reaction layout). Flush when any source it depends on changed.
_refresh_cache(seeds=("cartsim.stochastic.kernel",),
               stamp_name="cartsim_stochastic_sources.sha256")
