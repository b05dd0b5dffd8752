"""Simulate observed data sets with known parameters (for recovery studies and examples).

:func:`simulate_observations` draws log-normal inter-individual variability on
chosen parameters, simulates each patient, adds the residual error of
:mod:`cartsim.fitting.likelihood` and censors values below the LLOQ, and
returns the rows of a long table in the format of :mod:`cartsim.fitting.data`
(plus the true individual parameters). Everything is drawn from one seeded
``numpy.random.Generator``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cartsim.fitting.data import ANALYTES, Observations
from cartsim.fitting.forward import ForwardModel
from cartsim.scenario import Scenario

__all__ = ["AssayDesign", "SyntheticData", "simulate_observations"]


@dataclass(frozen=True)
class AssayDesign:
    """How one analyte is sampled and measured.

    Attributes
    ----------
    analyte : a key of :data:`cartsim.fitting.data.ANALYTES`.
    days : sampling days (day since CAR-T infusion).
    sigma_prop : SD of ln(observation) (-).
    sigma_add : additive error SD (analyte units).
    lloq : lower limit of quantification (analyte units).
    """

    analyte: str
    days: tuple[float, ...]
    sigma_prop: float
    lloq: float
    sigma_add: float = 0.0


@dataclass
class SyntheticData:
    """A simulated data set: CSV rows, the true parameters and the scenarios."""

    rows: list[dict]
    true_params: dict[str, np.ndarray]
    ids: list[str]

    def to_csv(self) -> str:
        """The table as CSV text (the format of :mod:`cartsim.fitting.data`)."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self.rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        return buf.getvalue()


def simulate_observations(scenarios: Sequence[Scenario], typical: Mapping[str, float],
                          omega: Mapping[str, float], design: Sequence[AssayDesign], *,
                          seed: int = 0, ids: Sequence[str] | None = None) -> SyntheticData:
    """Simulate one data set.

    Parameters
    ----------
    scenarios : one per patient (covariates and doses); their model is simulated.
    typical : typical values of the parameters given random effects (model units).
    omega : SD of ln(parameter) across patients (log-normal IIV), per name in ``typical``
        (0 or missing: no variability).
    design : sampling and assay of each analyte.
    seed : seed of the random effects, residual errors and nothing else.
    ids : patient identifiers (default ``P001``, ...).

    Returns
    -------
    SyntheticData
        Rows with ``ID, TIME, DV, ANALYTE, UNIT, LLOQ, CENS, EVID, AMT, MDV`` and the
        covariate columns ``WT [kg]``, ``HT [cm]``, ``BLAST [%]``; dose records for
        CAR-T (cells/kg) and Flu/Cy (mg/m2).
    """
    rng = np.random.default_rng(seed)
    n = len(scenarios)
    ids = list(ids) if ids is not None else [f"P{i + 1:03d}" for i in range(n)]
    names = list(typical)
    eta = rng.standard_normal((n, len(names)))
    sd = np.array([omega.get(k, 0.0) for k in names])
    true = {k: typical[k] * np.exp(sd[j] * eta[:, j]) for j, k in enumerate(names)}
    # observation skeleton per patient, then predictions from the forward model
    skel = []
    for i in range(n):
        for a in design:
            for d in a.days:
                skel.append((i, float(d), a))
    skel.sort(key=lambda r: (r[0], r[1], ANALYTES[r[2].analyte].dvid))
    obs = Observations(
        source="<synthetic>", ids=ids, patient=np.array([r[0] for r in skel]),
        time=np.array([r[1] for r in skel]), dv=np.ones(len(skel)),
        analyte=np.array([r[2].analyte for r in skel], dtype=object),
        lloq=np.array([r[2].lloq for r in skel]), cens=np.zeros(len(skel), bool),
        row=np.arange(1, len(skel) + 1), covariates={}, regimens=[{}] * n)
    fm = ForwardModel(obs, scenarios, names, method="rodas4", rtol=1e-8)
    values = np.column_stack([true[k] for k in names]) if names else np.zeros((n, 0))
    preds = fm.predict(range(n), values)
    rows = []
    for i, sc in enumerate(scenarios):
        cov = {"WT [kg]": f"{sc.patient.weight_kg:.6g}", "HT [cm]": f"{sc.patient.height_cm:.6g}",
               "BLAST [%]": f"{sc.patient.marrow_blast_pct:.6g}"}
        reg = sc.regimen

        def dose(t, analyte, unit, amt, cov=cov, i=i):
            rows.append({"ID": ids[i], "TIME": f"{t:g}", "DV": "", "ANALYTE": analyte,
                         "UNIT": unit, "LLOQ": "", "CENS": 0, "EVID": 1, "AMT": f"{amt:.6g}",
                         "MDV": 1, **cov})

        for t in reg.ld_days:
            if reg.flu_mg_m2 > 0:
                dose(t, "fludarabine", "mg/m2", reg.flu_mg_m2)
            if reg.cy_mg_m2 > 0:
                dose(t, "cyclophosphamide", "mg/m2", reg.cy_mg_m2)
        for t, frac in zip(reg.car_days, reg.car_fractions):
            dose(t, "car_t", "cells/kg", reg.car_dose_per_kg * frac)
        idx = fm.index[i]
        f = preds[i]
        for j, k in enumerate(idx):
            a = skel[k][2]
            w = np.sqrt(a.sigma_prop ** 2 + (a.sigma_add / max(f[j], 1e-30)) ** 2)
            y = max(f[j], 1e-30) * np.exp(w * rng.standard_normal())
            cens = int(y < a.lloq)
            rows.append({"ID": ids[i], "TIME": f"{skel[k][1]:g}",
                         "DV": "" if cens else f"{y:.6g}", "ANALYTE": a.analyte,
                         "UNIT": ANALYTES[a.analyte].units, "LLOQ": f"{a.lloq:g}",
                         "CENS": cens, "EVID": 0, "AMT": "", "MDV": 0, **cov})
    return SyntheticData(rows=rows, true_params=true, ids=ids)
