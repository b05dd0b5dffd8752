"""Dispatch of compiled model kernels by integer model id.

Numba cannot cache a function that receives another jitted function as an
argument (it recompiles in every process), so the solvers never take the
right-hand side as an argument. They take an integer ``mid`` and call the
functions of this module, which branch on it (``if``/``elif``) to the model's
own kernels. Every branch is compiled into each caller once and cached.

Kernel contract for every model (``y``, ``dydt`` float64[n] in solver
coordinates, ``p`` float64[n_p], ``J`` float64[n, n])::

    rhs(t, y, p, dydt)    # writes dy/dt
    jac(t, y, p, J)       # writes d(dy/dt)/dy (only where has_jac(mid))

Log-transformed states (``y = ln(cells)``) are handled inside the model's
right-hand side; the solvers only see solver coordinates.

``cd7`` uses the analytic Jacobian of ``cartsim.models.cd7_jacobian`` when that
module exists (``CD7_HAS_JAC``), else the solver's finite differences.

Adding a model: give it an id here, add a branch to ``rhs`` (and to ``jac``,
``has_jac`` and ``is_autonomous`` where they apply). An unknown id makes ``rhs``
return NaN derivatives, which the solver reports as a non-finite failure.

Cache note: Numba's cache is invalidated only by a change of the file that
defines the cached function, not of the files it calls into. Edits to model
kernels therefore do not invalidate the cached dispatchers and solvers by
themselves; ``cartsim.solvers.cache`` checks a hash of all kernel and solver
sources and drops the stale caches when it changes (see
``cartsim.solvers.cache.refresh_cache``).
"""

import numba as nb
import numpy as np

from cartsim.models import testproblems as _tp
from cartsim.models.cd7_kernel import rhs as _cd7_rhs
from cartsim.models.stein2019_kernel import jac as _stein_jac
from cartsim.models.stein2019_kernel import rhs as _stein_rhs

try:  # analytic cd7 Jacobian, written beside the kernel; finite differences without it
    from cartsim.models.cd7_jacobian import jac as _cd7_jac

    CD7_HAS_JAC = True
except ImportError:  # pragma: no cover - depends on the models package state
    CD7_HAS_JAC = False

    @nb.njit(cache=True, error_model="numpy")
    def _cd7_jac(t, y, p, J):
        for i in range(J.shape[0]):
            for j in range(J.shape[1]):
                J[i, j] = np.nan

MODEL_CD7 = 0
MODEL_STEIN2019 = 1
MODEL_TEST_DECAY = 10
MODEL_TEST_PROTHERO = 11
MODEL_TEST_LOGISTIC = 12
MODEL_TEST_LOGLOGISTIC = 13
MODEL_TEST_ROBERTSON = 14
MODEL_TEST_VDP = 15
MODEL_TEST_BLOWUP = 16
MODEL_TEST_LINEAR = 17
MODEL_TEST_FORCED = 18
MODEL_TEST_CARTLIKE = 19

MODEL_IDS = {
    "cd7": MODEL_CD7,
    "stein2019": MODEL_STEIN2019,
    "test_decay": MODEL_TEST_DECAY,
    "test_prothero": MODEL_TEST_PROTHERO,
    "test_logistic": MODEL_TEST_LOGISTIC,
    "test_loglogistic": MODEL_TEST_LOGLOGISTIC,
    "test_robertson": MODEL_TEST_ROBERTSON,
    "test_vdp": MODEL_TEST_VDP,
    "test_blowup": MODEL_TEST_BLOWUP,
    "test_linear": MODEL_TEST_LINEAR,
    "test_forced": MODEL_TEST_FORCED,
    "test_cartlike": MODEL_TEST_CARTLIKE,
}
"""Name -> model id of every model known to the dispatcher."""


@nb.njit(cache=True, error_model="numpy")
def rhs(mid, t, y, p, dydt):
    """Write ``dydt = f(t, y; p)`` of model ``mid`` (NaN for an unknown id)."""
    if mid == MODEL_CD7:
        _cd7_rhs(t, y, p, dydt)
    elif mid == MODEL_STEIN2019:
        _stein_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_DECAY:
        _tp.decay_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_PROTHERO:
        _tp.prothero_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_LOGISTIC:
        _tp.logistic_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_LOGLOGISTIC:
        _tp.loglogistic_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_ROBERTSON:
        _tp.robertson_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_VDP:
        _tp.vdp_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_BLOWUP:
        _tp.blowup_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_LINEAR:
        _tp.linear_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_FORCED:
        _tp.forced_rhs(t, y, p, dydt)
    elif mid == MODEL_TEST_CARTLIKE:
        _tp.cartlike_rhs(t, y, p, dydt)
    else:
        for i in range(dydt.shape[0]):
            dydt[i] = np.nan


@nb.njit(cache=True, error_model="numpy")
def has_jac(mid):
    """True when model ``mid`` provides an analytic Jacobian through ``jac``."""
    return ((mid == MODEL_CD7 and CD7_HAS_JAC) or mid == MODEL_STEIN2019
            or mid == MODEL_TEST_DECAY or mid == MODEL_TEST_PROTHERO
            or mid == MODEL_TEST_LOGISTIC or mid == MODEL_TEST_ROBERTSON
            or mid == MODEL_TEST_VDP or mid == MODEL_TEST_BLOWUP or mid == MODEL_TEST_LINEAR)


@nb.njit(cache=True, error_model="numpy")
def jac(mid, t, y, p, J):
    """Write the analytic Jacobian ``J = df/dy`` of model ``mid`` (NaN if it has none)."""
    if mid == MODEL_CD7:
        _cd7_jac(t, y, p, J)
    elif mid == MODEL_STEIN2019:
        _stein_jac(t, y, p, J)
    elif mid == MODEL_TEST_DECAY:
        _tp.decay_jac(t, y, p, J)
    elif mid == MODEL_TEST_PROTHERO:
        _tp.prothero_jac(t, y, p, J)
    elif mid == MODEL_TEST_LOGISTIC:
        _tp.logistic_jac(t, y, p, J)
    elif mid == MODEL_TEST_ROBERTSON:
        _tp.robertson_jac(t, y, p, J)
    elif mid == MODEL_TEST_VDP:
        _tp.vdp_jac(t, y, p, J)
    elif mid == MODEL_TEST_BLOWUP:
        _tp.blowup_jac(t, y, p, J)
    elif mid == MODEL_TEST_LINEAR:
        _tp.linear_jac(t, y, p, J)
    else:
        for i in range(J.shape[0]):
            for j in range(J.shape[1]):
                J[i, j] = np.nan


@nb.njit(cache=True, error_model="numpy")
def is_autonomous(mid):
    """False when the right-hand side of model ``mid`` depends on ``t`` explicitly."""
    return not (mid == MODEL_TEST_PROTHERO or mid == MODEL_TEST_FORCED)
