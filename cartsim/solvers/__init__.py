"""Compiled ODE solvers of cartsim: Rodas4 (stiff), Dormand-Prince 5(4), events and rules.

Public entry points:

* ``solve_batch`` (``cartsim.solvers.api``): validate, pad and solve a batch of
  patients in parallel; returns a ``BatchResult``.
* ``EventTable`` / ``RuleTable``: scheduled events and state-triggered rules.
* ``integrate`` / ``integrate_batch`` (``cartsim.solvers.driver``): the compiled
  kernels, for callers that build the arrays themselves.
* ``refresh_cache`` / ``guard_cache`` (``cartsim.solvers.cache``): drop Numba caches
  made stale by edits of model kernels; ``solve_batch`` calls ``guard_cache`` before
  its first compiled solve, a direct caller of ``integrate`` calls it first.

Where the parts of the compiled driver live: see ``cartsim.solvers.driver``.

Method codes: ``METHOD_RODAS4`` (0, Rodas4 of Hairer & Wanner, stiff, L-stable,
order 4(3)), ``METHOD_DP5`` (1, Dormand-Prince 5(4)) and ``METHOD_BDF`` (4,
variable-order BDF/NDF of ``cartsim.solvers.bdf``, stiff, reusing the Jacobian and
LU across steps) and ``METHOD_DP5_BDF`` (5, DP5 that switches to BDF where a stiffness
test finds the problem stiff, LSODA-like); ``+ FIXED_STEP`` (2) gives fixed-step
variants of the first two for convergence studies.

Importing this package compiles nothing; the first call compiles (or loads from
Numba's on-disk cache) the solver for the model dispatcher.
"""

from cartsim.solvers.api import (
    ADD_PARAM,
    ADD_STATE,
    METHODS,
    MUL_STATE,
    SET_PARAM,
    STATUS_NAMES,
    BatchResult,
    EventTable,
    RuleTable,
    solve_batch,
)
from cartsim.solvers.cache import guard_cache, refresh_cache
from cartsim.solvers.codes import (
    FIXED_STEP,
    MAX_STEPS,
    METHOD_BDF,
    METHOD_DP5,
    METHOD_DP5_BDF,
    METHOD_DP5_FIXED,
    METHOD_RODAS4,
    METHOD_RODAS4_FIXED,
    NONFINITE,
    SINGULAR,
    STEP_UNDERFLOW,
    SUCCESS,
)
from cartsim.solvers.driver import integrate, integrate_batch

__all__ = [
    "ADD_PARAM",
    "ADD_STATE",
    "FIXED_STEP",
    "MAX_STEPS",
    "METHODS",
    "MUL_STATE",
    "METHOD_BDF",
    "METHOD_DP5",
    "METHOD_DP5_BDF",
    "METHOD_DP5_FIXED",
    "METHOD_RODAS4",
    "METHOD_RODAS4_FIXED",
    "NONFINITE",
    "SET_PARAM",
    "SINGULAR",
    "STATUS_NAMES",
    "STEP_UNDERFLOW",
    "SUCCESS",
    "BatchResult",
    "EventTable",
    "RuleTable",
    "guard_cache",
    "integrate",
    "integrate_batch",
    "refresh_cache",
    "solve_batch",
]
