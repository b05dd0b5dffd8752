"""CAR-T cellular kinetics (qPCR and flow) and pharmacodynamic read-outs, per patient.

Cellular kinetics follow the non-compartmental conventions of CAR-T
pharmacology (Mueller et al. 2017 Blood 130:2317; Stein et al. 2019 CPT:PSP 8:285),
computed from day 0 (infusion) on and before death:

* ``Cmax``: maximum observed level; ``Tmax``: the (first) day it is reached;
* ``AUC0-28d``: trapezoid integral over days 0..28 of the piecewise-linear
  trajectory (``int_0^28 x(t) dt``); not estimable (NaN) when follow-up ends before day 28;
* persistence: the last day the level is at or above the assay's LLOQ.

Pharmacodynamics: the first day normal CD7+ T cells fall below the clearance
threshold, cytokine peaks and their days, and the fludarabine AUC.
"""

from __future__ import annotations

import numpy as np

from cartsim.clinical._common import (
    Track,
    Var,
    day_var,
    first_time,
    flag_var,
    last_time,
    needs_follow_up,
    peak,
    value_at,
    window_integral,
)
from cartsim.clinical.settings import EndpointSettings, assessment_day

AUC_END_DAY = 28.0
"""End of the AUC window (day): AUC0-28d, the standard CAR-T exposure metric (Mueller 2017)."""

_ASSAYS = {  # suffix: (observable, unit, assay phrase, settings field of the LLOQ)
    "qpcr": ("car_copies_per_ug", "copies/ug", "CAR transgene by qPCR", "lloq_copies_per_ug"),
    "flow": ("car_cells_per_ul", "cells/uL", "CAR-T cells by flow", "lloq_flow_cells_per_ul"),
}

CYTOKINES = {"il6": "IL-6", "ifng": "IFN-gamma", "il10": "IL-10", "tnfa": "TNF-alpha"}


def assay_kinetics(tr: Track, suffix: str, s: EndpointSettings,
                   whole: Track | None = None) -> dict[str, Var]:
    """Cmax, Tmax, AUC0-28d and persistence of one assay (``suffix`` ``qpcr`` or ``flow``).

    Cmax, Tmax and the AUC are read off ``whole`` (default ``tr``): the endpoints pass
    the trajectory uncut by a drawn death, so exposure is what the CAR-T cells did, not
    an artefact of the death draw; persistence is read off ``tr`` (up to death).
    """
    name, unit, assay, lloq_field = _ASSAYS[suffix]
    whole = tr if whole is None else whole
    x = tr.x[name]
    lloq = getattr(s, lloq_field)
    cmax, tmax = peak(whole.t, whole.x[name], whole.observed)
    auc = np.where(whole.seen_at(AUC_END_DAY),
                   window_integral(whole.t, whole.x[name], 0.0, AUC_END_DAY), np.nan)
    persist = last_time(tr.t, tr.observed & (x >= lloq))
    return {
        f"cmax_{suffix}": Var(cmax, {"units": unit, "long_name": f"peak {assay} after day 0"}),
        f"tmax_{suffix}": day_var(tmax, f"day of the peak {assay}"),
        f"auc28_{suffix}": needs_follow_up(Var(auc, {
            "units": f"{unit}*day", "long_name": f"AUC of {assay}, days 0-28 (trapezoid)"}),
            AUC_END_DAY),
        f"persistence_{suffix}": day_var(
            persist, f"persistence: last day {assay} >= LLOQ ({lloq:g} {unit}); NaN: never"),
    }


def cellular_kinetics(tr: Track, s: EndpointSettings, whole: Track | None = None
                      ) -> dict[str, Var]:
    """Kinetics by qPCR and flow, expansion, and qPCR detectability at month 6.

    ``whole``: the trajectories uncut by death, for Cmax, Tmax, AUC and expansion
    (see :func:`assay_kinetics`); default ``tr``.
    """
    out = {**assay_kinetics(tr, "qpcr", s, whole), **assay_kinetics(tr, "flow", s, whole)}
    out["expansion"] = flag_var(
        out["cmax_qpcr"].data >= s.expansion_threshold_copies_per_ug,
        f"CAR-T expansion: qPCR peak >= {s.expansion_threshold_copies_per_ug:g} copies/ug")
    m6 = assessment_day(6)
    copies_m6 = value_at(tr.t, tr.x["car_copies_per_ug"], m6)
    out["car_detectable_m6"] = needs_follow_up(flag_var(
        tr.seen_at(m6) & (copies_m6 >= s.lloq_copies_per_ug),
        f"CAR transgene >= LLOQ by qPCR at month 6 (day {m6:g})"), m6)
    return out


def pharmacodynamics(tr: Track, s: EndpointSettings, flu_auc_total: np.ndarray) -> dict[str, Var]:
    """CD7+ T-cell clearance day, cytokine peaks and days, fludarabine AUC."""
    out = {"cd7_clearance_day": day_var(
        first_time(tr.t, tr.observed & (tr.x["t_cd7pos_per_ul"] < s.cd7_clearance_per_ul)),
        f"first day normal CD7+ T cells < {s.cd7_clearance_per_ul:g} cells/uL blood")}
    for key, label in CYTOKINES.items():
        value, day = peak(tr.t, tr.x[key], tr.observed)
        out[f"{key}_peak"] = Var(value, {"units": "pg/mL",
                                         "long_name": f"peak plasma {label} after day 0"})
        out[f"{key}_peak_day"] = day_var(day, f"day of the peak plasma {label}")
    out["flu_auc"] = Var(np.asarray(flu_auc_total, dtype=float), {
        "units": "mg h/L", "long_name": "total F-ara-A plasma AUC (>= 13.8 mg*h/L associated "
                                        "with fewer relapses, Fabrizio 2022 Blood Adv 6:1961)"})
    return out
