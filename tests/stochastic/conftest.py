"""Shared helpers: the cd7 network reduced to textbook processes by its parameters."""

from __future__ import annotations

import numpy as np
import pytest

from cartsim.models import cd7_kernel as K
from cartsim.models import get_model
from cartsim.scenario import Scenario

SLOW_RATES = (K.P_K_IFNG, K.P_K_TNFA, K.P_K_A, K.P_K_IL6, K.P_K_IL10, K.P_K_TOCI, K.P_K_DEX)


def quiet_network():
    """(x0, c0, p) of the default patient with every process switched off.

    No drug on board, homeostatic cytokine frozen (k_h = 0), no killing, no CAR-T
    expansion or differentiation, no blast growth, no normal-T turnover; continuous
    clearances slowed to 1e-3/day so that only the reaction steps set the step size.
    A test then switches on the few reactions of the process it checks.
    """
    pr = get_model("cd7").build(Scenario())
    p = pr.p.copy()
    for i in (K.P_RHO_MAX, K.P_K_EM0, K.P_K_EM, K.P_K_ME, K.P_K_EX, K.P_DELTA_E, K.P_DELTA_M,
              K.P_DELTA_X, K.P_K_KILL, K.P_K_SW, K.P_R_T, K.P_K_H, K.D_RB, K.D_RESID,
              K.D_RATE_FLU, K.D_RATE_CY):
        p[i] = 0.0
    for i in SLOW_RATES:
        p[i] = 1e-3
    p[K.P_MTT_MY] = 2e3
    for i in (K.D_CL, K.D_Q2, K.D_Q3, K.D_CYCL):
        p[i] = 1e-3
    x0 = np.zeros(K.N_CELL)
    c0 = pr.y0[K.N_CELL:].copy()
    return x0, c0, p


@pytest.fixture
def quiet():
    return quiet_network()
