"""Helpers for the solver tests: a thin Python wrapper around ``driver.integrate``."""

import numpy as np
import pytest

from cartsim.solvers import driver
from cartsim.solvers.cache import guard_cache

RODAS = driver.METHOD_RODAS4
DP5 = driver.METHOD_DP5


def run_integrate(mid, method, y0, p, t_eval, t0, t1, events=(), rules=(), log_mask=None,
                  rtol=1e-8, atol=1e-10, h0=0.0, hmax=0.0, max_steps=200_000):
    """Call the compiled ``integrate`` with lists; returns (status, y_out, stats, rule_time).

    ``events``: iterable of (t, kind, idx, val), assumed sorted; ``rules``: iterable of
    (idx, thr, kind, tgt, val).
    """
    y0 = np.array(y0, dtype=np.float64).reshape(-1)
    p = np.array(p, dtype=np.float64).reshape(-1)
    n = y0.shape[0]
    te = np.array(t_eval, dtype=np.float64).reshape(-1)
    ev = list(events)
    ev_t = np.array([e[0] for e in ev], dtype=np.float64)
    ev_kind = np.array([e[1] for e in ev], dtype=np.int64)
    ev_idx = np.array([e[2] for e in ev], dtype=np.int64)
    ev_val = np.array([e[3] for e in ev], dtype=np.float64)
    rl = list(rules)
    r_idx = np.array([r[0] for r in rl], dtype=np.int64)
    r_thr = np.array([r[1] for r in rl], dtype=np.float64)
    r_kind = np.array([r[2] for r in rl], dtype=np.int64)
    r_tgt = np.array([r[3] for r in rl], dtype=np.int64)
    r_val = np.array([r[4] for r in rl], dtype=np.float64)
    lm = np.zeros(n, np.bool_) if log_mask is None else np.array(log_mask, dtype=np.bool_)
    at = np.array(np.broadcast_to(np.asarray(atol, dtype=np.float64), (n,)))
    y_out = np.empty((te.shape[0], n))
    stats = np.zeros(4, np.int64)
    rule_time = np.empty(len(rl))
    guard_cache()  # as solve_batch does before its first compiled call
    status = driver.integrate(np.int64(mid), np.int64(method), y0, p, te, float(t0), float(t1),
                              ev_t, ev_kind, ev_idx, ev_val,
                              r_idx, r_thr, r_kind, r_tgt, r_val,
                              lm, float(rtol), at, float(h0), float(hmax), np.int64(max_steps),
                              y_out, stats, rule_time)
    return status, y_out, stats, rule_time


@pytest.fixture
def integ():
    """The ``run_integrate`` helper."""
    return run_integrate
