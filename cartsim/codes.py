"""Status codes of every engine, with their names: one definition (issue 15).

The compiled ODE solvers (``cartsim.solvers``) and the stochastic engine
(``cartsim.stochastic``) return one of these integers per patient; the Dataset's
``status`` variable holds it, with ``flag_values``/``flag_meanings`` built from
``STATUS_NAMES`` and the ``long_name`` ``STATUS_DESCRIPTION``. Plain integers, so the
compiled kernels read them as constants.
"""

from __future__ import annotations

SUCCESS = 0
"""Integrated to the end."""
MAX_STEPS = 1
"""More attempted steps (accepted or rejected) than ``max_steps``."""
STEP_UNDERFLOW = 2
"""The step would fall below ``1e-14 max(|t|, |t1 - t0|)``."""
NONFINITE = 3
"""A non-finite right-hand side, Jacobian or state that shrinking the step could not cure."""
SINGULAR = 4
"""The iteration matrix ``I/(h gamma) - J`` exactly singular in 5 consecutive attempts."""

STATUSES = (
    (SUCCESS, "success", "success"),
    (MAX_STEPS, "max_steps", "max steps"),
    (STEP_UNDERFLOW, "step_underflow", "step-size underflow"),
    (NONFINITE, "nonfinite", "non-finite state"),
    (SINGULAR, "singular", "singular matrix"),
)
"""``(code, name, description)`` of every status: the one table the others are built from."""

STATUS_NAMES = {code: name for code, name, _ in STATUSES}
"""Status code -> name (one word; the CF ``flag_meanings``)."""

STATUS_DESCRIPTION = "solver status: " + ", ".join(f"{code} {text}"
                                                   for code, _, text in STATUSES)
"""``long_name`` of a Dataset's ``status`` variable: every code with its description."""

__all__ = ["MAX_STEPS", "NONFINITE", "SINGULAR", "STATUSES", "STATUS_DESCRIPTION",
           "STATUS_NAMES", "STEP_UNDERFLOW", "SUCCESS"]
