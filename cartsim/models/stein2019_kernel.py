"""Compiled right-hand side and Jacobian of the Stein et al. 2019 CAR-T kinetics model.

Stein AM et al. Tisagenlecleucel model-based cellular kinetic analysis of
chimeric antigen receptor-T cells. CPT Pharmacometrics Syst Pharmacol 2019;
8(5):285-295.

States (linear, copies per ug genomic DNA)::

    y[0] = E   expanding / effector transgene level
    y[1] = M   memory transgene level

Equations, with the phase flag ``ph`` in {0, 1} held in the parameter vector::

    dE/dt = [(1 - ph) * g - ph * alpha] * E
    dM/dt = ph * (k * E - beta * M)

    g   = rho * (1 + toci * (Ftoci - 1)) * (1 + ster * (Fster - 1))
    rho = ln(foldx) / Tmax,   k = FB * (alpha - beta)

so that ``ph = 0`` is the expansion phase (dE/dt = rho E, dM/dt = 0) and
``ph = 1`` the contraction/persistence phase (dE/dt = -alpha E,
dM/dt = k E - beta M). The switch at t_inf + Tmax is a scheduled solver event
(SET_PARAM of ``P_PHASE``), never a branch on ``t``: the right-hand side is
autonomous and smooth between events. ``toci`` and ``ster`` are 0/1 flags set by
events at the first scheduled tocilizumab / corticosteroid dose.

Parameter vector layout (``p``, float64[N_P]): the ``STEIN2019`` parameter set in
order (slots 0..7), then derived slots (8..12) filled by
``cartsim.models.stein2019.fill_derived``.
"""

import numba as nb

# --- model parameters (order of cartsim.parameters.stein2019.STEIN2019) ---
P_FOLDX = 0
"""foldx (-): fold expansion Cmax / E(0)."""
P_TMAX = 1
"""Tmax (day): time from infusion to the peak."""
P_CMAX = 2
"""Cmax (copies/ug): peak level."""
P_ALPHA = 3
"""alpha (1/day): effector contraction rate."""
P_FB = 4
"""FB (-): fraction of the peak entering the memory pool."""
P_BETA = 5
"""beta (1/day): memory decline rate."""
P_FTOCI = 6
"""Ftoci (-): multiplier of rho under tocilizumab."""
P_FSTER = 7
"""Fster (-): multiplier of rho under corticosteroids."""
N_BASE = 8
"""Number of parameter-set slots."""

# --- derived / scenario slots ---
P_RHO = 8
"""rho = ln(foldx) / Tmax (1/day): expansion rate."""
P_K = 9
"""k = FB * (alpha - beta) (1/day): effector -> memory transfer rate."""
P_PHASE = 10
"""Phase flag: 0 expansion (t < t_inf + Tmax), 1 contraction; set by an event."""
P_TOCI = 11
"""Tocilizumab flag: 1 from the first scheduled dose on (multiplies rho by Ftoci)."""
P_STER = 12
"""Corticosteroid flag: 1 from the first scheduled dose on (multiplies rho by Fster)."""
N_P = 13
"""Length of the kernel parameter vector."""

N_STATES = 2
I_E = 0
I_M = 1


@nb.njit(cache=True, error_model="numpy")
def _rates(p):
    """Return (E self-rate, E -> M rate, M self-rate) for the current phase and flags."""
    ph = p[P_PHASE]
    g = p[P_RHO] * (1.0 + p[P_TOCI] * (p[P_FTOCI] - 1.0)) * (1.0 + p[P_STER] * (p[P_FSTER] - 1.0))
    a_ee = (1.0 - ph) * g - ph * p[P_ALPHA]
    a_me = ph * p[P_K]
    a_mm = -ph * p[P_BETA]
    return a_ee, a_me, a_mm


@nb.njit(cache=True, error_model="numpy")
def rhs(t, y, p, dydt):
    """Right-hand side ``dydt = f(y; p)`` (autonomous; ``t`` unused).

    Parameters
    ----------
    t : float
        Time (day); unused, kept for the kernel contract.
    y : float64[2]
        Linear states (E, M) in copies/ug.
    p : float64[N_P]
        Parameter vector (layout in the module docstring).
    dydt : float64[2]
        Output, filled in place.
    """
    a_ee, a_me, a_mm = _rates(p)
    dydt[I_E] = a_ee * y[I_E]
    dydt[I_M] = a_me * y[I_E] + a_mm * y[I_M]


@nb.njit(cache=True, error_model="numpy")
def jac(t, y, p, J):
    """Analytic Jacobian ``J[i, j] = d f_i / d y_j`` (the system is linear in y).

    ``J = [[(1 - ph) g - ph alpha, 0], [ph k, -ph beta]]``; fills the full 2 x 2 matrix.
    """
    a_ee, a_me, a_mm = _rates(p)
    J[I_E, I_E] = a_ee
    J[I_E, I_M] = 0.0
    J[I_M, I_E] = a_me
    J[I_M, I_M] = a_mm
