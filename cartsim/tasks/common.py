"""What several tasks share: the engine's cohort simulator and the all-patients-failed check."""

from __future__ import annotations

import sys

__all__ = ["FAILED_RUNS", "check_some_solved", "engine_simulator"]

FAILED_RUNS: list[str] = []
"""Messages of this process's jobs whose every patient failed to solve; ``cartsim.cli.main``
clears it before the jobs run and exits with ``EXIT_ALL_FAILED`` when it is not empty."""


def check_some_solved(ds, where) -> None:
    """Record (and print) a run whose every patient failed to solve (``status != 0``):
    :func:`cartsim.cli.main` then exits with ``EXIT_ALL_FAILED`` once all jobs are done."""
    if "status" not in ds:
        return
    status = ds["status"].values
    if status.size == 0 or (status == 0).any():
        return
    names = ds["status_name"].values if "status_name" in ds else status
    kinds = ", ".join(sorted({str(n) for n in names.ravel()}))
    message = (f"every patient failed to solve ({status.size} of {status.size}; solver status "
               f"{kinds}): {where} holds no usable result; try solver.method=rodas4 or bdf, a "
               "larger solver.max_steps, or check the inputs")
    print(f"cartsim: error: {message}", file=sys.stderr, flush=True)
    FAILED_RUNS.append(message)


def engine_simulator(run_cfg):
    """The ``simulate_fn(scenarios, start)`` of ``run_cfg.engine`` for cohorts and sweeps
    (:func:`cartsim.stochastic.trial_simulator`), or None for the ODE."""
    if run_cfg.engine == "ode":
        return None
    from cartsim.stochastic.engine import trial_simulator

    return trial_simulator(run_cfg.engine, run_cfg.stochastic)
