"""Task ``simulate``: one scenario -> ``simulation.nc`` and a printed summary."""

from __future__ import annotations

from pathlib import Path

from cartsim.io import write_netcdf
from cartsim.tasks.common import check_some_solved

__all__ = ["run_simulate"]


def run_simulate(run_cfg, output_dir: Path) -> None:
    """Task ``simulate``: simulate the scenario, write the Dataset, print its path and a summary.

    With ``engine=stochastic`` or ``engine=agent`` the stochastic engine simulates
    ``stochastic.replicates`` realisations and prints outcome probabilities instead.
    """
    if run_cfg.engine != "ode":
        from cartsim.stochastic.task import run_stochastic_simulate

        run_stochastic_simulate(run_cfg, output_dir)
        return
    # lazily: numba kernels and the model load only when a simulation runs
    from cartsim.simulation import simulate
    from cartsim.summary import format_summary

    ds = simulate(run_cfg.scenario())
    path = write_netcdf(ds, Path(output_dir) / run_cfg.output_file)
    print(f"cartsim: wrote {path}", flush=True)
    print(format_summary(ds), flush=True)
    check_some_solved(ds, path)
