"""The ``cd7`` reaction network as the stochastic engine sees it, and its continuous part.

Layout constants derived once from :mod:`cartsim.models.cd7_kernel` (reaction sources,
the CAR-T block of reactions, crowding orders) and the compiled Runge-Kutta 4 step of the
continuous states (drug PK, cytokines, homeostatic cytokine, myeloid compartments) with
its step-size control (see :mod:`cartsim.stochastic.kernel`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from cartsim.codes import MAX_STEPS, NONFINITE, SUCCESS
from cartsim.codes import STATUS_NAMES as ALL_STATUS_NAMES
from cartsim.models import cd7_kernel as K

NCELL = K.N_CELL
NCONT = K.N_STATE - K.N_CELL
NREAC = K.N_REACTION
NCAR = 3
"""CAR-T species (effector, memory, exhausted) are the first three cell species."""
STOICH = K.STOICH

STATUS_NAMES = {c: ALL_STATUS_NAMES[c] for c in (SUCCESS, MAX_STEPS, NONFINITE)}
"""The statuses the stochastic engine returns (codes and names: ``cartsim.codes``)."""

N_DIV = 4
"""Diversity outputs per time: clones alive, Shannon index, inverse Simpson, top-clone share."""


def _sources() -> np.ndarray:
    src = np.empty(NREAC, dtype=np.int64)
    for r in range(NREAC):
        neg = np.flatnonzero(STOICH[r] < 0)
        pos = np.flatnonzero(STOICH[r] > 0)
        src[r] = neg[0] if neg.size else pos[0]
    return src


SRC = _sources()
"""Source species of each reaction: the consumed species, or the dividing one for births."""
N_CAR_REAC = int(np.max(np.flatnonzero((STOICH[:, :NCAR] != 0).any(axis=1)))) + 1
"""CAR-T reactions are 0 .. N_CAR_REAC-1 and touch only CAR-T species (checked below)."""
if (STOICH[:N_CAR_REAC, NCAR:] != 0).any() or (STOICH[N_CAR_REAC:, :NCAR] != 0).any():
    raise RuntimeError("cd7 network layout changed: CAR-T reactions must come first and "
                       "touch only the CAR-T species (cartsim.stochastic.network)")
R_EXPAND = K.REACTION_NAMES.index("car_expansion")
R_TO_EXH = K.REACTION_NAMES.index("car_eff_to_exh")
R_FRAT0 = K.REACTION_NAMES.index("car_eff_fratricide")
R_FRAT1 = K.REACTION_NAMES.index("car_exh_fratricide")
G_ORDER = np.ones(NCELL)
G_ORDER[[K.S_B7, K.S_B0, K.S_L]] = 2.0


@nb.njit(cache=True, error_model="numpy")
def _c_deriv(x, c, p, dc):
    drv = K.drivers(x[K.S_E], x[K.S_M], x[K.S_X], x[K.S_B7], x[K.S_L], x[K.S_T7], c, p)
    car = x[K.S_E] + x[K.S_M] + x[K.S_X]
    rho = K._growth_terms(car, c, p, drv[0], drv[3])[0]
    K.continuous_rhs(x[K.S_E], car, rho, x[K.S_T7] + x[K.S_T0] + car, c, p, drv, dc)


@nb.njit(cache=True, error_model="numpy")
def _rk4(x, c, p, h, k1, k2, k3, k4, tmp):
    """Classical Runge-Kutta 4 step of the continuous states with cells ``x`` frozen."""
    n = c.shape[0]
    _c_deriv(x, c, p, k1)
    for i in range(n):
        tmp[i] = c[i] + 0.5 * h * k1[i]
    _c_deriv(x, tmp, p, k2)
    for i in range(n):
        tmp[i] = c[i] + 0.5 * h * k2[i]
    _c_deriv(x, tmp, p, k3)
    for i in range(n):
        tmp[i] = c[i] + h * k3[i]
    _c_deriv(x, tmp, p, k4)
    for i in range(n):
        c[i] += h / 6.0 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i])


@nb.njit(cache=True, error_model="numpy")
def _lambda_max(p):
    """Fastest first-order rate of the continuous states (1/day): clearance of cytokines,
    drugs, homeostatic cytokine, macrophage activation and myeloid transit."""
    lam = max(p[K.P_K_IFNG], p[K.P_K_TNFA], p[K.P_K_A], p[K.P_K_IL6], p[K.P_K_IL10],
              p[K.P_K_H], p[K.P_K_TOCI], p[K.P_K_DEX], 2.0 / p[K.P_MTT_MY])
    lam = max(lam, (p[K.D_CL] + p[K.D_Q2] + p[K.D_Q3]) / p[K.D_V1], p[K.D_Q2] / p[K.D_V2],
              p[K.D_Q3] / p[K.D_V3], p[K.D_CYCL] / p[K.D_CYV])
    return lam


@nb.njit(cache=True, error_model="numpy")
def _c_step(x, c, p, cscale, crtol, hmax, k1):
    """Step of the continuous states: relative change <= ``crtol`` (with absolute scales
    ``cscale``; inf excludes a state), at most ``hmax``."""
    _c_deriv(x, c, p, k1)
    h = hmax
    for j in range(c.shape[0]):
        d = abs(k1[j])
        if d > 0.0 and cscale[j] < np.inf:
            h = min(h, crtol * (abs(c[j]) + cscale[j]) / d)
    return h
