"""Codes of the compiled solvers: the methods, and the statuses and action kinds they use.

Method codes select the step loop in ``cartsim.solvers.driver.integrate``: the one-step
loop (``cartsim.solvers.onestep``) for Rodas4 and DP5, the multistep loop
(``cartsim.solvers.multistep``) for BDF and DP5 -> BDF. Status codes are
``cartsim.codes``'s and action kinds ``cartsim.models.base``'s, re-exported here for the
solver modules (one definition each).
"""

from cartsim.codes import MAX_STEPS, NONFINITE, SINGULAR, STEP_UNDERFLOW, SUCCESS
from cartsim.models.base import ADD_PARAM, ADD_STATE, MUL_STATE, SET_PARAM

METHOD_RODAS4 = 0
"""Rodas4 (Hairer & Wanner), stiff, L-stable, order 4(3)."""
METHOD_DP5 = 1
"""Dormand-Prince 5(4), explicit."""
FIXED_STEP = 2
"""Added to a method code: fixed step ``h0``, no error control (convergence studies)."""
METHOD_RODAS4_FIXED = METHOD_RODAS4 + FIXED_STEP
METHOD_DP5_FIXED = METHOD_DP5 + FIXED_STEP
METHOD_BDF = 4
"""Variable-order BDF/NDF with Jacobian and LU reuse (``cartsim.solvers.bdf``); adaptive only."""
METHOD_DP5_BDF = 5
"""DP5 with stiffness detection, switching to BDF where the problem is stiff (adaptive only)."""

__all__ = ["ADD_PARAM", "ADD_STATE", "FIXED_STEP", "MAX_STEPS", "METHOD_BDF", "METHOD_DP5",
           "METHOD_DP5_BDF", "METHOD_DP5_FIXED", "METHOD_RODAS4", "METHOD_RODAS4_FIXED",
           "MUL_STATE", "NONFINITE", "SET_PARAM", "SINGULAR", "STEP_UNDERFLOW", "SUCCESS"]
