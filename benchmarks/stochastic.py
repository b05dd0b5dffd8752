"""Benchmark: 1,000 hybrid stochastic replicates of one patient for one year (target < 30 s
on the 2-core machine), and the cost per replicate at ~1e6 vs ~1e12 blasts (must not grow
with the number of cells). Run: ``.venv/bin/python benchmarks/stochastic.py [--n 1000]``."""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from cartsim import OutputOptions, Patient, Scenario
from cartsim.stochastic import simulate_stochastic

NORMAL_MARROW = 5e11  # cells; cd7 parameter marrow_normal_cells


def _pct(blasts: float) -> float:
    """Marrow blast % giving ``blasts`` CD7+ and CD7- blasts at baseline."""
    return 100.0 * blasts / (blasts + NORMAL_MARROW)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--n-scaling", type=int, default=200)
    args = ap.parse_args()
    year = Scenario(output=OutputOptions(t_start=-5.0, t_end=365.0))
    simulate_stochastic(year, replicates=4, seed=0)  # warm-up: numba cache load, imports
    t = time.perf_counter()
    ds = simulate_stochastic(year, replicates=args.n, seed=1)
    dt = time.perf_counter() - t
    steps = float(ds["n_steps"].mean())
    print(f"hybrid stochastic: {args.n} replicates x 1 patient x 370 days, "
          f"{numba.get_num_threads()} threads: {dt:.2f} s (target 30 s: ratio {dt / 30.0:.2f}); "
          f"{steps:.0f} reaction steps and {float(ds['n_exact'].mean()):.0f} exact firings "
          f"per replicate; failed {int((ds['status'].values != 0).sum())}")
    for blasts in (1e6, 1e9, 1e12):
        sc = Scenario(output=OutputOptions(t_start=-5.0, t_end=365.0),
                      patient=Patient(marrow_blast_pct=_pct(blasts)))
        t = time.perf_counter()
        ds = simulate_stochastic(sc, replicates=args.n_scaling, seed=2)
        dt = time.perf_counter() - t
        b0 = float(ds["blast_cd7pos"].isel(time=0).mean() + ds["blast_cd7neg"].isel(time=0)
                   .mean())
        print(f"  baseline blasts {b0:9.3g}: {1e3 * dt / args.n_scaling:6.2f} ms per replicate, "
              f"{float(ds['n_steps'].mean()):6.0f} steps, max CAR-T "
              f"{float(np.nanmax(ds['car_total'].values)):.3g} cells")


if __name__ == "__main__":
    main()
