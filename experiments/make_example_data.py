"""Regenerate the example data of experiments/data/ deterministically (see its README.md).

    .venv/bin/python experiments/make_example_data.py [--seed 20261122] [--out experiments/data]

* ``synthetic_cohort.csv``: 20 virtual T-ALL patients simulated with the ``cd7`` model,
  log-normal inter-individual variability on four parameters, qPCR and flow sampling,
  log-normal residual error and censoring below the LLOQ; the true individual parameters
  go to ``synthetic_cohort_truth.csv``.
* ``stein2019_typical.csv``: the Stein 2019 typical tisagenlecleucel curve (closed form,
  published typical values), without noise, so that a refit must return those values.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from cartsim.fitting.synthetic import AssayDesign, simulate_observations
from cartsim.io import write_text
from cartsim.models.stein2019 import closed_form
from cartsim.parameters.cd7 import CD7_PARAMETERS
from cartsim.parameters.stein2019 import STEIN2019
from cartsim.scenario import Patient, Regimen, Scenario

N_PATIENTS = 20
TYPICAL = {k: CD7_PARAMETERS[k].value for k in ("rho_max", "delta_e", "k_em", "delta_m")}
"""True typical values = the cd7 defaults (cartsim.parameters.cd7, with their sources)."""
OMEGA = {"rho_max": 0.25, "delta_e": 0.3, "k_em": 0.4, "delta_m": 0.8}
"""SD of ln(parameter) across patients; assumption: of the order of Stein 2019's IIV
(omega^2 0.38-2.4 on the log scale, i.e. SD 0.6-1.5), kept smaller on the expansion
rate so that every virtual patient expands."""
DESIGN = [
    # qPCR: sigma 0.5 ~ Stein 2019 residual SD 0.56 on ln(copies/ug); LLOQ 50 copies/ug
    # (assumption: the order of the tisagenlecleucel qPCR LLOQ)
    AssayDesign("car_copies_per_ug", (1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365), 0.5,
                50.0),
    # flow CAR-T cells/uL: assumption: 30% CV, LLOQ 0.5 cells/uL (a few events per tube)
    AssayDesign("car_cells_per_ul", (7, 14, 28, 90), 0.3, 0.5),
]
STEIN_DAYS = (0.5, 1, 2, 4, 7, 9, 11, 14, 21, 28, 42, 56, 90, 120, 180, 270, 365)


def cohort_scenarios(n: int, rng: np.random.Generator) -> list[Scenario]:
    """Covariates and doses of ``n`` virtual patients (assumptions: adult T-ALL ranges)."""
    out = []
    for _ in range(n):
        out.append(Scenario(
            patient=Patient(weight_kg=round(float(rng.uniform(45, 95)), 1),
                            height_cm=round(float(rng.uniform(150, 190)), 1),
                            marrow_blast_pct=round(float(rng.uniform(5, 80)), 1)),
            regimen=Regimen(car_dose_per_kg=float(rng.choice([5e5, 1e6, 2e6])))))
    return out


def synthetic_cohort(seed: int, n: int = N_PATIENTS):
    """The synthetic cohort as (CSV text, truth CSV text)."""
    rng = np.random.default_rng(seed)
    scs = cohort_scenarios(n, rng)
    sd = simulate_observations(scs, TYPICAL, OMEGA, DESIGN, seed=int(rng.integers(2**31)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ID", *[f"{k} [{u}]" for k, u in (("rho_max", "1/day"), ("delta_e", "1/day"),
                                                   ("k_em", "1/day"), ("delta_m", "1/day"))]])
    for i, pid in enumerate(sd.ids):
        w.writerow([pid, *[f"{sd.true_params[k][i]:.6g}" for k in TYPICAL]])
    return sd.to_csv(), buf.getvalue()


def stein_typical() -> str:
    """Noise-free Stein 2019 typical curve (copies/ug) in the fitting data format."""
    c = closed_form(np.array(STEIN_DAYS), STEIN2019)
    rows = ["ID,TIME,DV,ANALYTE,UNIT,LLOQ,CENS,EVID,AMT,MDV",
            "TYPICAL,0,,car_t,cells/kg,,0,1,1e6,1"]
    rows += [f"TYPICAL,{t:g},{v:.8g},car_copies_per_ug,copies/ug,1,0,0,,0"
             for t, v in zip(STEIN_DAYS, c)]
    return "\n".join(rows) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--out", default=str(Path(__file__).parent / "data"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, truth = synthetic_cohort(args.seed)
    for name, text in (("synthetic_cohort.csv", data), ("synthetic_cohort_truth.csv", truth),
                       ("stein2019_typical.csv", stein_typical())):
        print(f"wrote {write_text(text, out / name)}")


if __name__ == "__main__":
    main()
