"""Task ``report``: the trial of ``task=trial`` plus its self-contained ``report.html``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cartsim.tasks.common import engine_simulator

__all__ = ["MAX_TRAJECTORIES", "report_trajectories", "run_report_task"]

MAX_TRAJECTORIES = 200
"""Patients re-simulated for the trajectory figures when the trial kept no trajectories."""


def report_trajectories(result):
    """The trajectories the report's figures show: the kept ones, else the first
    :data:`MAX_TRAJECTORIES` patients re-simulated (:func:`cartsim.trial.trial_trajectories`)."""
    from cartsim.trial import trial_trajectories

    return trial_trajectories(result, MAX_TRAJECTORIES)


def run_report_task(run_cfg, output_dir) -> None:
    """Task ``report``: run the trial as ``task=trial`` does, write its files and
    ``report.html``, and print the paths."""
    from cartsim.report import format_trial_summary
    from cartsim.reporting import write_trial
    from cartsim.trial import run_trial

    options = run_cfg.trial
    if run_cfg.engine != "ode":
        # the figures must show the realisations the table counts, not ODE re-simulations
        options = dataclasses.replace(options, save_trajectories=True)
    result = run_trial(run_cfg.scenario(), run_cfg.population, run_cfg.endpoints,
                       options=options, simulate_fn=engine_simulator(run_cfg))
    result.endpoints.attrs["engine"] = run_cfg.engine
    paths = write_trial(result, Path(output_dir), html=True, scenario=run_cfg.scenario(),
                        trajectories=report_trajectories(result))
    print(format_trial_summary(result.summary()), flush=True)
    for name, path in paths.items():
        print(f"cartsim: wrote {name}: {path}", flush=True)
