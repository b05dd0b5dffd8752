"""Benchmark of cartsim.fitting against the targets of issue 4.

    .venv/bin/python benchmarks/fit.py [--quick] [--skip-population]

1. individual fit of 6 ``cd7`` parameters to one patient with 16 observations (12 qPCR,
   4 flow), warm (a first fit compiles/loads the kernels and is not timed); target < 2 s;
2. population fit (SAEM, default options) of 50 ``cd7`` patients, 4 parameters with
   random effects; target < 120 s on the 2-core machine (``--quick``: 20 patients,
   target scaled by 20/50);
3. for reference, the same population fit with the closed-form ``stein2019`` model.

Each line prints the measured time, the target and their ratio (< 1 meets the target).
Data are simulated with :func:`cartsim.fitting.synthetic.simulate_observations` (seeded);
nothing is written into the repository.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from cartsim.fitting import fit, read_observations  # noqa: E402
from cartsim.fitting.synthetic import AssayDesign, simulate_observations  # noqa: E402
from cartsim.scenario import ModelConfig, Patient, Regimen, Scenario  # noqa: E402

DESIGN = [AssayDesign("car_copies_per_ug", (1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365),
                      0.5, 50.0),
          AssayDesign("car_cells_per_ul", (7, 14, 28, 90), 0.3, 0.5)]
TYPICAL = {"rho_max": 0.65, "delta_e": 0.16, "k_em": 0.03, "delta_m": 0.0032}
OMEGA = {"rho_max": 0.25, "delta_e": 0.3, "k_em": 0.4, "delta_m": 0.8}
SIX = ["rho_max", "k_ag", "delta_e", "delta_m", "k_em", "k_kill"]


def cohort(n: int, model: str, seed: int, tmp: Path):
    rng = np.random.default_rng(seed)
    scs = [Scenario(model=ModelConfig(name=model),
                    patient=Patient(weight_kg=float(rng.uniform(45, 95)),
                                    marrow_blast_pct=float(rng.uniform(5, 80))),
                    regimen=Regimen(car_dose_per_kg=float(rng.choice([5e5, 1e6, 2e6]))))
              for _ in range(n)]
    if model == "cd7":
        typ, om, design = TYPICAL, OMEGA, DESIGN
    else:
        typ = {"Tmax": 9.3, "Cmax": 24000.0, "alpha": 0.16, "beta": 0.0032}
        om = {"Tmax": 0.3, "Cmax": 0.6, "alpha": 0.5, "beta": 0.5}
        design = DESIGN[:1]
    sd = simulate_observations(scs, typ, om, design, seed=seed + 1)
    path = tmp / f"{model}_{n}.csv"
    path.write_text(sd.to_csv())
    return read_observations(path), list(typ)


def report(label: str, seconds: float, target: float, extra: str = "") -> None:
    print(f"{label:<58} {seconds:8.2f} s   target {target:6.1f} s   ratio {seconds / target:5.2f}"
          f"  {extra}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-population", action="store_true")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        obs, _ = cohort(3, "cd7", 7, tmp)
        one = obs.select("P002")
        fit(one, SIX, n_starts=2)  # warm-up: kernels loaded, caches filled
        times, res = [], None
        for _ in range(3):
            t0 = time.perf_counter()
            res = fit(one, SIX)
            times.append(time.perf_counter() - t0)
        report(f"individual fit, cd7, 6 parameters, {one.dv.size} obs (median of 3)",
               float(np.median(times)), 2.0,
               f"[{res.status_}, {res._obj.nfev} solves, incl. SE]")
        if args.skip_population:
            return
        n = 20 if args.quick else 50
        target = 120.0 * n / 50
        for model in ("cd7", "stein2019"):
            obs, names = cohort(n, model, 11, tmp)
            t0 = time.perf_counter()
            res = fit(obs, names, model=model, method="population")
            dt = time.perf_counter() - t0
            report(f"population fit (SAEM), {model}, {n} patients, {len(names)} parameters",
                   dt, target, f"[{res.status_}, {obs.dv.size} obs]")


if __name__ == "__main__":
    main()
