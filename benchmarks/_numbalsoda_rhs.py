"""numbalsoda comparison for the benchmark (benchmark-only; numbalsoda is not a cartsim dependency).

* :func:`make_cfunc` wraps the compiled ``cd7`` right-hand side ``rhs(t, y, p, dydt)`` in a
  ``numbalsoda.lsoda_sig`` cfunc ``f(t, u, du, data)``.
* numbalsoda's ``lsoda`` takes one scalar ``atol``; cartsim's tolerances are per state.
  The wrapper therefore integrates scaled states ``u_i = y_i / s_i`` with
  ``s_i = atol_i / ATOL_REF`` and calls LSODA with ``atol = ATOL_REF``: LSODA's error
  weights ``rtol |u_i| + ATOL_REF`` are then exactly ``(rtol |y_i| + atol_i) / s_i``, i.e.
  the same per-state tolerances as cartsim and the SciPy reference.
* ``data`` (one private copy per patient) holds ``[p (n_p), s (n), y scratch (n), dydt
  scratch (n)]`` so the cfunc allocates nothing of its own.
* :func:`solve_batch_lsoda` integrates patients segment by segment between dose events from
  Numba (``prange`` over patients), applying events exactly like
  ``cartsim.solvers.reference.solve_reference`` (log-aware add to a state, set/add to a
  parameter slot; right-continuous output at event times).

numbalsoda calls a ctypes function, so these kernels cannot be cached on disk: they compile in
every process (reported separately from the warm timings).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import carray, cfunc
from numbalsoda import lsoda, lsoda_sig

ATOL_REF = 1e-8


def make_cfunc(rhs, n: int, n_p: int):
    """Return the numbalsoda cfunc around ``rhs`` for ``n`` states and ``n_p`` parameters."""
    n_data = n_p + 3 * n

    @cfunc(lsoda_sig)
    def f(t, u, du, d):
        z = carray(u, (n,))
        dz = carray(du, (n,))
        dd = carray(d, (n_data,))
        p = dd[:n_p]
        s = dd[n_p:n_p + n]
        y = dd[n_p + n:n_p + 2 * n]
        dy = dd[n_p + 2 * n:]
        for i in range(n):
            y[i] = z[i] * s[i]
        rhs(t, y, p, dy)
        for i in range(n):
            dz[i] = dy[i] / s[i]

    return f


@nb.njit
def _apply(kind, idx, val, y, data, log_mask):
    if kind == 0:
        if log_mask[idx]:
            y[idx] = np.log(max(np.exp(y[idx]) + val, 1e-30))
        else:
            y[idx] += val
    elif kind == 1:
        data[idx] = val
    else:
        data[idx] += val


@nb.njit
def solve_one_lsoda(funcptr, y0, data, t_eval, t0, ev_t, ev_kind, ev_idx, ev_val, ne,
                    log_mask, rtol, mxstep, out):
    """One patient; ``data`` is modified (events); ``out[nt, n]`` receives solver coordinates.

    Returns True on success (NaN rows from a failure on).
    """
    n = y0.shape[0]
    n_p = data.shape[0] - 3 * n
    s = data[n_p:n_p + n]
    nt = t_eval.shape[0]
    t_end = t_eval[nt - 1]
    y = y0.copy()
    z = np.empty(n)
    out[:, :] = np.nan
    t_cur = t0
    k = 0
    j = 0
    while j < nt and t_eval[j] < t0:
        j += 1
    while True:
        while k < ne and ev_t[k] <= t_cur:
            if ev_t[k] >= t0:
                _apply(ev_kind[k], ev_idx[k], ev_val[k], y, data, log_mask)
            k += 1
        while j < nt and t_eval[j] == t_cur:  # right-continuous: state after the events
            out[j, :] = y
            j += 1
        if t_cur >= t_end:
            return True
        seg_end = t_end
        if k < ne and ev_t[k] < t_end:
            seg_end = ev_t[k]
        m = j
        while m < nt and t_eval[m] < seg_end:
            m += 1
        te = np.empty(m - j + 2)
        te[0] = t_cur
        for q in range(j, m):
            te[q - j + 1] = t_eval[q]
        te[m - j + 1] = seg_end
        for i in range(n):
            z[i] = y[i] / s[i]
        usol, ok = lsoda(funcptr, z, te, data, rtol, ATOL_REF, mxstep)
        if not ok:
            return False
        for q in range(j, m):
            for i in range(n):
                out[q, i] = usol[q - j + 1, i] * s[i]
        for i in range(n):
            y[i] = usol[m - j + 1, i] * s[i]
        j = m
        t_cur = seg_end


@nb.njit(parallel=True)
def solve_batch_lsoda(funcptr, Y0, DATA, t_eval, t0, EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N,
                      log_mask, rtol, mxstep, OUT, OK):
    """``prange`` over patients of :func:`solve_one_lsoda` (``DATA`` rows are modified)."""
    for i in nb.prange(Y0.shape[0]):
        OK[i] = solve_one_lsoda(funcptr, Y0[i], DATA[i], t_eval, t0, EV_T[i], EV_KIND[i],
                                EV_IDX[i], EV_VAL[i], EV_N[i], log_mask, rtol, mxstep, OUT[i])


def pack(problems, atol, n_p):
    """Stack problems into the padded arrays :func:`solve_batch_lsoda` takes.

    Returns ``(Y0, DATA, EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N)``; ``DATA`` rows are
    ``[p, s, scratch, scratch]`` with ``s = atol / ATOL_REF``.
    """
    npat = len(problems)
    n = problems[0].y0.size
    ne_max = max(1, max(len(pr.events) for pr in problems))
    Y0 = np.stack([pr.y0 for pr in problems]).astype(np.float64)
    DATA = np.zeros((npat, n_p + 3 * n))
    EV_T = np.zeros((npat, ne_max))
    EV_KIND = np.zeros((npat, ne_max), np.int64)
    EV_IDX = np.zeros((npat, ne_max), np.int64)
    EV_VAL = np.zeros((npat, ne_max))
    EV_N = np.zeros(npat, np.int64)
    s = np.asarray(atol, dtype=np.float64) / ATOL_REF
    for i, pr in enumerate(problems):
        DATA[i, :n_p] = pr.p
        DATA[i, n_p:n_p + n] = s
        ev = sorted(pr.events, key=lambda e: e[0])  # stable: ties keep table order
        EV_N[i] = len(ev)
        for q, (t, kind, idx, val) in enumerate(ev):
            EV_T[i, q], EV_KIND[i, q], EV_IDX[i, q], EV_VAL[i, q] = t, kind, idx, val
    return Y0, DATA, EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N
