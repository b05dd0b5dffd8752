"""The ``cartsim task=sweep`` and ``task=sensitivity`` tasks (called by :mod:`cartsim.cli`).

Each writes into the job's output directory (one per Hydra job, so a multirun of sweeps is
gathered by ``cartsim gather DIR``):

* ``sweep.nc``: the sweep Dataset (:func:`cartsim.sweep.run_sweep`); chunks go to
  ``sweep.resume_dir`` or ``<output dir>/sweep_chunks`` (re-running the same command with the
  same ``sweep.resume_dir`` resumes);
* ``sensitivity.nc`` and ``sensitivity.png`` (bar/tornado plot of the indices).

With ``shard.count > 1`` the command line runs :mod:`cartsim.tasks.shard` instead (one shard
of the run's chunks, or the gather, which writes these files with :func:`write_sweep` and
:func:`write_sensitivity`).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from cartsim.io import write_figure, write_netcdf
from cartsim.scenario import ScenarioError

__all__ = ["SENSITIVITY_FILE", "SWEEP_FILE", "run_sensitivity_task", "run_sweep_task",
           "progress_printer", "write_sensitivity", "write_sweep"]

SWEEP_FILE = "sweep.nc"
SENSITIVITY_FILE = "sensitivity.nc"


def progress_printer(label: str):
    """``progress(done, total)`` that prints points done to stderr, at most every 5 s."""
    t0 = time.perf_counter()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.perf_counter() - t0
        if done == total or now - last[0] > 5.0:
            last[0] = now
            print(f"cartsim: {label}: {done}/{total} points, {now:.1f} s", file=sys.stderr,
                  flush=True)

    return report


EXIT_USAGE = 2
"""Exit code for a rejected sweep value (as ``cartsim.cli`` uses for a rejected config)."""


def _fail(exc: Exception):
    print(f"cartsim: error: {exc}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def _engine(run_cfg) -> dict | None:
    """What the chunk files record of a stochastic engine (None for the ODE)."""
    if run_cfg.engine == "ode":
        return None
    return {"engine": run_cfg.engine, "stochastic": dataclasses.asdict(run_cfg.stochastic)}


def run_sweep_task(run_cfg, output_dir) -> Path:
    """Task ``sweep``: run ``run_cfg.sweep`` around the scenario and write ``sweep.nc``."""
    from cartsim.sweep.run import default_chunk_dir, run_sweep
    from cartsim.tasks.common import engine_simulator

    spec = run_cfg.sweep
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    chunk_dir = default_chunk_dir(spec, out)
    try:
        ds = run_sweep(run_cfg.scenario(), spec, run_cfg.population, run_cfg.endpoints,
                       chunk_dir=chunk_dir, progress=progress_printer(f"sweep {spec.name}"),
                       simulate_fn=engine_simulator(run_cfg), engine=_engine(run_cfg))
    except ScenarioError as exc:
        _fail(exc)
    return write_sweep(ds, out)


def write_sweep(ds, out) -> Path:
    """Write a sweep Dataset as ``<out>/sweep.nc`` and say what it holds."""
    path = write_netcdf(ds, Path(out) / SWEEP_FILE)
    print(f"cartsim: wrote {path}", flush=True)
    print(f"cartsim: sweep {ds.attrs['sweep_name']}: {ds.attrs['n_points']} points, "
          f"{ds.attrs['n_failed']} failed, {ds.attrs['n_missing']} missing, "
          f"{ds.attrs['n_invalid']} invalid", flush=True)
    return path


def run_sensitivity_task(run_cfg, output_dir) -> Path:
    """Task ``sensitivity``: indices of ``run_cfg.sensitivity``; writes the Dataset and a PNG."""
    from cartsim.sweep.sensitivity import run_sensitivity

    opts = run_cfg.sensitivity
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        ds = run_sensitivity(run_cfg.scenario(), opts, run_cfg.population, run_cfg.endpoints,
                             chunk_dir=out / "sensitivity_chunks",
                             progress=progress_printer(f"sensitivity ({opts.method})"))
    except ScenarioError as exc:
        _fail(exc)
    return write_sensitivity(ds, out)


def write_sensitivity(ds, out) -> Path:
    """Write a sensitivity Dataset as ``<out>/sensitivity.nc`` and its indices' plot as
    ``<out>/sensitivity.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cartsim.plot.sweep import plot_sensitivity

    out = Path(out)
    path = write_netcdf(ds, out / SENSITIVITY_FILE)
    print(f"cartsim: wrote {path}", flush=True)
    n = ds.sizes["endpoint"]
    fig, axs = plt.subplots(1, n, figsize=(4.0 * n, 0.5 * ds.sizes["parameter"] + 2.0),
                            squeeze=False)
    for ax, ep in zip(axs[0], ds["endpoint"].values):
        plot_sensitivity(ds, str(ep), ax=ax)
    fig.tight_layout()
    png = write_figure(fig, out / "sensitivity.png", dpi=120)
    plt.close(fig)
    print(f"cartsim: wrote {png}", flush=True)
    return path
