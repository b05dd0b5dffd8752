"""Dose events, state-triggered rules and outputs of one stochastic realisation (compiled).

Semantics follow :mod:`cartsim.solvers.driver` (see :mod:`cartsim.stochastic.kernel`):
``ADD_STATE`` on a cell species adds a whole number with the given mean (CAR-T cells split
over the clones by a multinomial draw), ``MUL_STATE`` thins counts binomially, parameter
actions act on the realisation's private parameter vector.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from cartsim.models import cd7_kernel as K
from cartsim.models.base import ADD_PARAM, ADD_STATE, MUL_STATE, SET_PARAM
from cartsim.stochastic import rng
from cartsim.stochastic.network import NCAR, NCELL, NCONT


@nb.njit(cache=True, error_model="numpy")
def _sync_car(x, cn):
    for i in range(NCAR):
        tot = 0.0
        for k in range(cn.shape[0]):
            tot += cn[k, i]
        x[i] = tot


@nb.njit(cache=True, error_model="numpy")
def _apply(kind, idx, val, x, c, p, cn, st):
    """One event/rule action on counts ``x`` (clones ``cn``), continuous ``c`` and ``p``."""
    if kind == SET_PARAM:
        p[idx] = val
    elif kind == ADD_PARAM:
        p[idx] += val
    elif idx >= NCELL:
        j = idx - NCELL
        if kind == ADD_STATE:
            c[j] += val
        elif kind == MUL_STATE:
            c[j] *= val
    elif kind == ADD_STATE:
        if idx < NCAR:
            nk = cn.shape[0]
            left = rng.stochastic_round(st, val) if val >= 0.0 else 0.0
            for k in range(nk):
                if val >= 0.0:
                    # multinomial split of the whole-number dose: clones evenly in law
                    share = rng.binomial(st, left, 1.0 / (nk - k))
                    cn[k, idx] += share
                    left -= share
                else:
                    tot = x[idx]
                    frac = min(1.0, -val / tot) if tot > 0.0 else 1.0
                    cn[k, idx] -= rng.binomial(st, cn[k, idx], frac)
            _sync_car(x, cn)
        elif val >= 0.0:
            x[idx] += rng.stochastic_round(st, val)
        else:
            x[idx] = max(0.0, x[idx] - rng.stochastic_round(st, -val))
    elif kind == MUL_STATE:
        if idx < NCAR:
            for k in range(cn.shape[0]):
                cn[k, idx] = _scale(st, cn[k, idx], val)
            _sync_car(x, cn)
        else:
            x[idx] = _scale(st, x[idx], val)


@nb.njit(cache=True, error_model="numpy")
def _scale(st, n, f):
    if f <= 1.0:
        return rng.binomial(st, n, f)
    return rng.stochastic_round(st, n * f)


@nb.njit(cache=True, error_model="numpy")
def _value(idx, x, c):
    return x[idx] if idx < NCELL else c[idx - NCELL]


@nb.njit(cache=True, error_model="numpy")
def _fire_rules(t, x, c, p, cn, st, rule_idx, rule_thr, rule_kind, rule_tgt, rule_val, nrule,
                fired, rule_time):
    again = True
    while again:
        again = False
        for j in range(nrule):
            if not fired[j] and _value(rule_idx[j], x, c) > rule_thr[j]:
                fired[j] = True
                rule_time[j] = t
                _apply(rule_kind[j], rule_tgt[j], rule_val[j], x, c, p, cn, st)
                again = True


@nb.njit(cache=True, error_model="numpy")
def _events_at(t, iev, nev, ev_t, ev_kind, ev_idx, ev_val, ev_cond, hsct_limit, x, c, p, cn,
               st):
    """Apply every event at ``t``; returns (next index, HSCT time or NaN)."""
    hsct = np.nan
    decided = False
    eligible = False
    while iev < nev and ev_t[iev] == t:
        if ev_cond[iev] != 0 and not decided:
            blasts = x[K.S_B7] + x[K.S_B0]
            eligible = blasts / (blasts + p[K.P_NMARROW]) < hsct_limit
            decided = True
            if eligible:
                hsct = t
        if ev_cond[iev] == 0 or eligible:
            _apply(ev_kind[iev], ev_idx[iev], ev_val[iev], x, c, p, cn, st)
        iev += 1
    return iev, hsct


@nb.njit(cache=True, error_model="numpy")
def _diversity(cn, out):
    """Clones alive, Shannon index (nats), inverse Simpson index, largest clone's share."""
    tot = 0.0
    alive = 0.0
    big = 0.0
    for k in range(cn.shape[0]):
        nk = cn[k, 0] + cn[k, 1] + cn[k, 2]
        tot += nk
        if nk > 0.0:
            alive += 1.0
        big = max(big, nk)
    out[0] = alive
    if tot <= 0.0:
        out[1] = 0.0
        out[2] = 0.0
        out[3] = 0.0
        return
    h = 0.0
    simpson = 0.0
    for k in range(cn.shape[0]):
        f = (cn[k, 0] + cn[k, 1] + cn[k, 2]) / tot
        if f > 0.0:
            h -= f * math.log(f)
            simpson += f * f
    out[1] = h
    out[2] = 1.0 / simpson
    out[3] = big / tot


@nb.njit(cache=True, error_model="numpy")
def _record(y_out, div_out, size_out, iout, x, c, cn):
    for i in range(NCELL):
        y_out[iout, i] = x[i]
    for j in range(NCONT):
        y_out[iout, NCELL + j] = c[j]
    _diversity(cn, div_out[iout])
    if size_out.shape[0] == y_out.shape[0]:  # clone sizes over time requested
        for k in range(cn.shape[0]):
            size_out[iout, k] = cn[k, 0] + cn[k, 1] + cn[k, 2]
