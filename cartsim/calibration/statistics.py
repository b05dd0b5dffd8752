"""The figures of a simulated trial, read off its endpoints Dataset.

:func:`statistic` returns ``(value, denominator)``: the figure computed over the
evaluable patients the way the publication computes it, and how many simulated
patients it rests on (the likelihood bounds a simulated rate away from 0 and 1 by
half a patient of that denominator). The endpoint variables are those of
:mod:`cartsim.clinical` (``cartsim.clinical.endpoints``); nothing here simulates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import xarray as xr

from cartsim.calibration.targets import MONTH

__all__ = ["STATISTICS", "statistic", "infection_death_causes"]

INFECTION_CAUSES = ("infection",)
"""Meanings counted as infection deaths, read from ``death_mechanism`` (the cause-specific
hazard that was largest at death) when the endpoints have it, else from ``death_cause``;
when neither has an infection meaning, ``non_relapse_mortality`` (death in remission)
stands in."""

class _View:
    """The evaluable patients of an endpoints Dataset, as NumPy arrays."""

    def __init__(self, ep: xr.Dataset):
        self.ep = ep
        self.ok = np.asarray(ep["evaluable"].values, dtype=bool)

    def __call__(self, var: str) -> np.ndarray:
        return np.asarray(self.ep[var].values)[self.ok]

    def alive_at(self, day: float) -> np.ndarray:
        return ~(self("death_day") <= day)


def _frac(mask: np.ndarray, among: np.ndarray | None = None) -> tuple[float, int]:
    among = np.ones_like(mask, bool) if among is None else among
    m = int(among.sum())
    return (float(mask[among].mean()) if m else math.nan), m


def _median(x: np.ndarray) -> tuple[float, int]:
    x = x[np.isfinite(x)]
    return (float(np.median(x)) if x.size else math.nan), int(x.size)


def _km_at(v: _View, time_var: str, event_var: str, day: float) -> tuple[float, int]:
    from cartsim.stats import kaplan_meier

    t, e = v(time_var), v(event_var).astype(int)
    if t.size == 0:
        return math.nan, 0
    return float(np.asarray(kaplan_meier(t, e).at(day)[0])), int(t.size)


def infection_death_causes(ep: xr.Dataset) -> tuple[str, list[int]]:
    """The variable and its codes that count as infection deaths (see :data:`INFECTION_CAUSES`)."""
    for var in ("death_mechanism", "death_cause"):
        if var not in ep:
            continue
        attrs = ep[var].attrs
        codes = dict(zip(attrs["flag_meanings"].split(),
                         np.asarray(attrs["flag_values"]).tolist()))
        hit = [c for name, c in codes.items() if any(w in name for w in INFECTION_CAUSES)]
        if hit:
            return var, hit
    codes = dict(zip(ep["death_cause"].attrs["flag_meanings"].split(),
                     np.asarray(ep["death_cause"].attrs["flag_values"]).tolist()))
    return "death_cause", [codes["non_relapse_mortality"]]


def _undetectable_d28(v: _View) -> tuple[float, int]:
    """Responders alive at day 28 whose CAR-T stays below the LLOQ of flow and qPCR from day 28."""
    responder = np.isfinite(v("response_day")) & (v("response_day") <= 28.0) & v.alive_at(28.0)
    gone = ~(v("persistence_qpcr") >= 28.0) & ~(v("persistence_flow") >= 28.0)
    return _frac(gone, responder)


def _infection_death(v: _View) -> tuple[float, int]:
    var, codes = infection_death_causes(v.ep)
    return _frac(np.isin(v(var), codes))


def _relapse(v: _View, day: float | None) -> tuple[float, int]:
    relapse = v("relapse").astype(bool)
    if day is not None:
        relapse &= v("relapse_day") <= day
    return _frac(relapse)


STATISTICS: dict[str, Callable[[_View, float | None], tuple[float, int]]] = {
    "median_cmax_qpcr": lambda v, d: _median(v("cmax_qpcr")),
    "median_tmax_qpcr": lambda v, d: _median(v("tmax_qpcr")),
    "median_cmax_flow": lambda v, d: _median(v("cmax_flow")),
    "median_tmax_flow": lambda v, d: _median(v("tmax_flow")),
    "rate_expansion": lambda v, d: _frac(v("expansion").astype(bool)),
    "rate_response_d28": lambda v, d: _frac(v("response_d28") >= 1),
    "rate_response_m1": lambda v, d: _frac(v("response_day") <= 28.0),
    "rate_mrdneg_d28": lambda v, d: _frac(v("mrd_flow_neg_d28").astype(bool)),
    "rate_em_orr": lambda v, d: _frac(np.isin(v("em_best_response"), (1, 2)),
                                      v("em_present").astype(bool)),
    "rate_em_cr": lambda v, d: _frac(v("em_best_response") == 1, v("em_present").astype(bool)),
    "rate_crs_any": lambda v, d: _frac(v("crs_grade") >= 1),
    "rate_crs_g3": lambda v, d: _frac(v("crs_grade") >= 3),
    "rate_icans_any": lambda v, d: _frac(v("icans_grade") >= 1),
    "rate_cytopenia_g34": lambda v, d: _frac(v("cytopenia_g34").astype(bool)),
    "rate_neutropenia_g4": lambda v, d: _frac(v("neutropenia_g4_days") > 0),
    "rate_car_m6": lambda v, d: _frac(v("car_detectable_m6").astype(bool),
                                      v.alive_at(round(6 * MONTH))),
    "rate_car_undetectable_d28": lambda v, d: _undetectable_d28(v),
    "rate_cd7_cleared_d11": lambda v, d: _frac(v("cd7_clearance_day") <= 11.0),
    "rate_relapse": _relapse,
    "share_cd7neg_relapse": lambda v, d: _frac(v("relapse_cd7neg").astype(bool),
                                               v("relapse").astype(bool)),
    "median_relapse_month": lambda v, d: _median(
        v("relapse_day")[v("relapse").astype(bool)] / MONTH),
    "rate_death_infection": lambda v, d: _infection_death(v),
    "km_pfs": lambda v, d: _km_at(v, "pfs_day", "pfs_event", d),
    "km_os": lambda v, d: _km_at(v, "os_day", "os_event", d),
}
"""Statistic name -> ``f(view, day) -> (value, denominator)``. Rates are over the evaluable
patients unless a subgroup is named (``rate_em_*``: patients with extramedullary disease;
``share_*``: relapses; ``rate_car_m6``: alive at month 6; ``rate_car_undetectable_d28``:
responders by day 28 alive on day 28). ``rate_neutropenia_g4`` reads grade 4 neutropenia
(ANC < 500/uL) as the publications' grade 4 pancytopenia; ``rate_death_infection`` counts
:func:`infection_death_causes`."""


def statistic(ep: xr.Dataset, name: str, day: float | None = None) -> tuple[float, int]:
    """The figure ``name`` of an endpoints Dataset and the number of patients it rests on."""
    if name not in STATISTICS:
        raise KeyError(f"unknown calibration statistic {name!r}; known: "
                       + ", ".join(STATISTICS))
    return STATISTICS[name](_View(ep), day)
