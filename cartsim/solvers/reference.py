"""Reference integration with SciPy, for cross-checking the compiled solvers.

Integrates a model's compiled right-hand side with
``scipy.integrate.solve_ivp`` segment by segment between dose events, applying
events exactly as the compiled driver does (add to a state, log-aware; set or
add to a parameter slot). Slow (Python loop), exact to the requested
tolerance: the independent truth for tests and benchmarks. State-triggered
rules are not supported here.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from cartsim.models.base import ADD_PARAM, ADD_STATE, SET_PARAM  # the one definition


def apply_event(y: np.ndarray, p: np.ndarray, kind: int, idx: int, val: float,
                log_mask: np.ndarray) -> None:
    """Apply one event in place (same semantics as the compiled driver)."""
    if kind == ADD_STATE:
        if log_mask[idx]:
            y[idx] = np.log(max(np.exp(y[idx]) + val, 1e-30))
        else:
            y[idx] += val
    elif kind == SET_PARAM:
        p[idx] = val
    elif kind == ADD_PARAM:
        p[idx] += val
    else:
        raise ValueError(f"unknown event kind {kind}")


def solve_reference(rhs, y0, p, t_eval, t0, events, log_mask, *, method="Radau",
                    rtol=1e-10, atol=1e-12, jac=None):
    """Integrate ``rhs(t, y, p, dydt)`` from ``t0`` through ``t_eval`` across ``events``.

    Parameters
    ----------
    rhs : compiled right-hand side ``rhs(t, y, p, dydt)``.
    y0, p : initial state (solver coordinates) and parameter vector.
    t_eval : sorted output times (>= t0). The state reported at an event time is
        the state after the event (right-continuous), as in the compiled driver.
    events : iterable of ``(t, kind, idx, val)``.
    log_mask : which states are ln-transformed.
    jac : optional ``jac(t, y, p, J)``; by default central differences for implicit methods.

    Returns
    -------
    ndarray (len(t_eval), n) in solver coordinates.
    """
    y = np.array(y0, dtype=float)
    p = np.array(p, dtype=float)
    t_eval = np.asarray(t_eval, dtype=float)
    events = sorted(events, key=lambda e: e[0])
    out = np.full((t_eval.size, y.size), np.nan)
    n = y.size

    def f(t, yy):
        d = np.empty(n)
        rhs(t, yy, p, d)
        return d

    def jf(t, yy):
        J = np.empty((n, n))
        if jac is not None:
            jac(t, yy, p, J)
            return J
        # central differences: robust where SciPy's adaptive num_jac is not (columns of
        # exactly-zero derivatives, e.g. an absent population held at its floor)
        for j in range(n):
            h = 1e-6 * max(abs(yy[j]), 1.0)
            yp = yy.copy()
            ym = yy.copy()
            yp[j] += h
            ym[j] -= h
            J[:, j] = (f(t, yp) - f(t, ym)) / (2.0 * h)
        return J

    ev_times = sorted({e[0] for e in events if e[0] >= t0})
    bounds = [t0] + [t for t in ev_times if t > t0] + [max(t_eval[-1], t0)]
    t_cur = t0
    k = 0
    for seg_end in bounds[1:] + [None]:
        # apply all events at the current time
        while k < len(events) and events[k][0] <= t_cur:
            if events[k][0] >= t0:
                _, kind, idx, val = events[k]
                apply_event(y, p, kind, idx, val, log_mask)
            k += 1
        if seg_end is None:
            mask = t_eval == t_cur
            out[mask] = y
            break
        mask = (t_eval >= t_cur) & (t_eval < seg_end)
        if seg_end > t_cur:
            kw = {"jac": jf} if method in ("Radau", "BDF", "LSODA") else {}
            te = np.append(t_eval[mask], seg_end)
            sol = solve_ivp(f, (t_cur, seg_end), y, method=method, rtol=rtol, atol=atol,
                            t_eval=te, **kw)
            if not sol.success:
                raise RuntimeError(f"reference solve failed on [{t_cur}, {seg_end}]: "
                                   f"{sol.message}")
            out[mask] = sol.y[:, :-1].T
            y = sol.y[:, -1].copy()
        t_cur = seg_end
    return out

