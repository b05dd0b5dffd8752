"""The trial summary table: the endpoints Dataset read out like a clinical paper's Tables 2-3.

Rates are over *evaluable* patients (solver status 0); patients whose solve failed are
excluded from every rate and median, and the Population section counts and names them.
An endpoint whose assessment the follow-up does not reach (day 28 with ``output.t_end=10``)
is *not estimable* (:func:`cartsim.clinical.estimable`): its row says so and why, with
``N = 0``, instead of a false ``0/N``, and the Population section lists such endpoints.
Binomial rates carry exact Clopper-Pearson 95% CIs (:func:`cartsim.stats.binomial_ci`);
survival uses Kaplan-Meier with log-log 95% CIs (:func:`cartsim.stats.kaplan_meier`).
A month is 30.4375 days (365.25 / 12), and a month-``m`` landmark is read at the output
day of a month-``m`` assessment, ``round(m * 30.4375)`` (month 24 = day 730), both as in the
endpoints (:mod:`cartsim.clinical.settings`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xarray as xr

from cartsim.clinical.endpoints import estimable, not_estimable_reason
from cartsim.clinical.rows import (
    count_row,
    km_median_row,
    km_survival_row,
    median_row,
    rate_row,
)
from cartsim.clinical.settings import MONTH_DAYS, assessment_day
from cartsim.stats import KaplanMeier, kaplan_meier

# Fludarabine AUC associated with fewer relapses after CAR-T (HR 2.45 below it):
# Fabrizio et al. 2022 Blood Adv 6:1961.
FLU_AUC_TARGET = 13.8  # mg*h/L

SECTIONS = ("Population", "Response", "Safety (CRS/ICANS grades are model surrogates)",
            "Cellular kinetics", "Relapse and survival", "Pharmacodynamics")
POP, RESP, SAFETY, CK, SURV, PD = SECTIONS
RESPONSE_CODES = {2: "CR", 1: "CRi", 0: "NR"}  # response_d28 / best_response flag_values
EM_CODES = {1: "CR", 2: "PR", 3: "SD", 4: "PD"}  # em_best_response among patients with EM
# (variable, label, unit, unit shown in the text) for median (range) rows
KINETICS = (("cmax_qpcr", "Cmax, qPCR", "copies/ug", " copies/ug"),
            ("tmax_qpcr", "Tmax, qPCR", "day", " days"),
            ("auc28_qpcr", "AUC0-28, qPCR", "copies/ug*day", " copies/ug*day"),
            ("persistence_qpcr", "Persistence, qPCR (last day >= LLOQ)", "day", " days"),
            ("cmax_flow", "Cmax, flow", "cells/uL", " cells/uL"),
            ("tmax_flow", "Tmax, flow", "day", " days"),
            ("auc28_flow", "AUC0-28, flow", "cells/uL*day", " cells/uL*day"),
            ("persistence_flow", "Persistence, flow (last day >= LLOQ)", "day", " days"))
CYTOKINES = (("il6_peak", "IL-6"), ("ifng_peak", "IFN-g"), ("il10_peak", "IL-10"),
             ("tnfa_peak", "TNF-a"))
REQUIRED = ("status", "status_name", "evaluable", "response_d28", "mrd_flow_neg_d28",
            "mrd_mol_neg_d28", "mrd_flow_neg_m3", "mrd_mol_neg_m3", "best_response",
            "best_mrd_flow_neg", "best_mrd_mol_neg", "response_day", "em_present",
            "em_best_response", "crs_grade", "crs_onset_day", "crs_grade_1m", "crs_grade_3m",
            "icans_grade", "icans_onset_day", "icans_grade_1m", "icans_grade_3m",
            "cytopenia_g34", "t_aplasia_days", "neutropenia_g4_days", "anc_recovery_day",
            *(k[0] for k in KINETICS), "expansion", "car_detectable_m6", "relapse",
            "relapse_day", "relapse_cd7neg", "progression", "death", "death_cause", "pfs_day",
            "pfs_event", "os_day", "os_event", "dor_day", "dor_event", "cd7_clearance_day",
            *(c[0] for c in CYTOKINES), "flu_auc")


class _Cohort:
    """The evaluable patients of an endpoints Dataset, with checked accessors."""

    def __init__(self, ep: xr.Dataset):
        if "patient" not in ep.dims:
            raise ValueError(f"trial report: the endpoints Dataset has no 'patient' dim "
                             f"(dims {tuple(ep.dims)}); pass the output of cartsim.endpoints")
        missing = [v for v in REQUIRED if v not in ep]
        if missing:
            raise ValueError(f"trial report: the endpoints Dataset lacks {missing}; "
                             f"pass the output of cartsim.endpoints")
        self.all = ep
        self.ids = ep["patient"].values
        self.evaluable = self._bool(ep, "evaluable")
        self.ep = ep.isel(patient=np.flatnonzero(self.evaluable))
        self.N = int(self.evaluable.sum())

    def _bool(self, ds: xr.Dataset, name: str) -> np.ndarray:
        v = np.asarray(ds[name].values)
        if v.dtype != bool:
            f = v.astype(float)
            if not np.isin(f, (0.0, 1.0)).all():
                self._bad(ds, name, ~np.isin(f, (0.0, 1.0)), "True/False")
            v = f == 1.0
        return v

    def _bad(self, ds, name, bad, accepted):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"trial report: {name} of patient "
                         f"{ds['patient'].values[i].item()!r} is "
                         f"{ds[name].values[i].item()!r}; accepted {accepted}")

    def flag(self, name: str, among: np.ndarray | None = None) -> np.ndarray:
        """Boolean endpoint over the evaluable patients (an error for NaN or other values).

        With ``among`` only those patients are read and checked; the others are False
        (for flags that are not applicable elsewhere, e.g. ``relapse_cd7neg``).
        """
        if among is None:
            return self._bool(self.ep, name)
        out = np.zeros(self.N, dtype=bool)
        out[among] = self._bool(self.ep.isel(patient=np.flatnonzero(among)), name)
        return out

    def codes(self, name: str, accepted: Sequence[int]) -> np.ndarray:
        """Categorical int endpoint over the evaluable patients, checked against ``accepted``
        where it is estimable (elsewhere -1)."""
        v = np.asarray(self.ep[name].values, dtype=float)
        ok = self.estimable(name)
        bad = ok & ~np.isin(v, accepted)
        if bad.any():
            self._bad(self.ep, name, bad, f"one of {list(accepted)}")
        return np.where(ok, v, -1).astype(int)

    def estimable(self, name: str) -> np.ndarray:
        """(evaluable patients,) bool: where endpoint ``name`` counts (follow-up long enough)."""
        return estimable(self.ep, name)

    def reason(self, name: str) -> str:
        """Why ``name`` counts for no evaluable patient ("" when it counts for some)."""
        return not_estimable_reason(self.ep, name) if self.N else ""

    def not_estimable(self) -> list[tuple[str, str]]:
        """(endpoint, reason) of the endpoints not estimable although some patient solved."""
        return [(v, r) for v in REQUIRED if v in self.ep and (r := self.reason(v))]

    def values(self, name: str) -> np.ndarray:
        """Float endpoint over the evaluable patients (NaN = did not happen)."""
        return np.asarray(self.ep[name].values, dtype=float)

    def km(self, stem: str, select: np.ndarray | None = None) -> KaplanMeier:
        t, e = self.values(f"{stem}_day"), self.values(f"{stem}_event")
        if select is not None:
            t, e = t[select], e[select]
        return kaplan_meier(t, e, nan_policy="omit")


def trial_summary(ep: xr.Dataset, *, times_months: Sequence[float] = (6, 12, 24)) -> list[dict]:
    """Summary rows of a virtual trial, grouped in :data:`SECTIONS`.

    Parameters
    ----------
    ep : xarray.Dataset
        Per-patient endpoints (``cartsim.endpoints``), dim ``patient``.
    times_months : sequence of float
        Landmarks (months) for the Kaplan-Meier PFS and OS rows, read at the assessment
        day ``round(months * 30.4375)``.

    Returns
    -------
    list of dict
        One dict per row with the keys of :data:`cartsim.clinical.rows.ROW_KEYS`.
    """
    times = tuple(float(m) for m in times_months)
    if not times or not all(math.isfinite(m) and m > 0 for m in times):
        raise ValueError(f"trial_summary: times_months={tuple(times_months)!r}; accepted a "
                         f"non-empty sequence of positive finite months")
    c = _Cohort(ep)
    return [*_population(c), *_response(c), *_safety(c), *_kinetics(c), *_survival(c, times),
            *_pharmacodynamics(c)]


def survival_curves(ep: xr.Dataset) -> dict[str, KaplanMeier]:
    """Kaplan-Meier PFS and OS curves (times in days) over the evaluable patients."""
    c = _Cohort(ep)
    return {"PFS": c.km("pfs"), "OS": c.km("os")}


def _population(c: _Cohort) -> list[dict]:
    n_all = c.all.sizes["patient"]
    failed = np.flatnonzero(~c.evaluable)
    listed = ", ".join(f"patient {c.ids[i]} ({c.all['status_name'].values[i]})" for i in failed)
    rows = [count_row(POP, "Patients simulated", n_all, n_all),
            count_row(POP, "Evaluable (solver succeeded)", c.N, n_all, f"{c.N}/{n_all}"),
            count_row(POP, "Failed solves (excluded from all rates)", failed.size, n_all,
                      f"{failed.size}/{n_all}" + (f": {listed}" if failed.size else ""))]
    gone = c.not_estimable()
    if gone:
        by_reason: dict[str, list[str]] = {}
        for v, r in gone:
            by_reason.setdefault(r, []).append(v)
        n_end = sum(v in c.ep for v in REQUIRED)
        rows.append(count_row(POP, "Endpoints not estimable (excluded, not counted as 0)",
                              len(gone), n_end, f"{len(gone)}/{n_end}: " + "; ".join(
                                  f"{r}: {', '.join(vs)}" for r, vs in by_reason.items())))
    return rows


def _rate(c: _Cohort, section: str, label: str, name: str, hit: np.ndarray,
          among: np.ndarray | None = None) -> dict:
    """``hit`` over the evaluable patients where ``name`` is estimable (and ``among``)."""
    m = c.estimable(name) if among is None else c.estimable(name) & among
    row = rate_row(section, label, int((hit & m).sum()), int(m.sum()))
    reason = c.reason(name)
    if reason:
        row["text"] = f"not estimable ({reason})"
    return row


def _median(c: _Cohort, section: str, label: str, name: str, values: np.ndarray, unit: str,
            unit_text: str, among: np.ndarray | None = None) -> dict:
    """Median (range) of ``values`` over the evaluable patients where ``name`` is estimable
    (and ``among``); ``N`` counts those patients, ``n`` those with a value."""
    m = c.estimable(name) if among is None else c.estimable(name) & among
    row = median_row(section, label, values[m], int(m.sum()), unit, unit_text)
    reason = c.reason(name)
    if reason:
        row["text"] = f"not estimable ({reason})"
    return row


def _response(c: _Cohort) -> list[dict]:
    d28 = c.codes("response_d28", list(RESPONSE_CODES))
    best = c.codes("best_response", list(RESPONSE_CODES))
    resp28 = d28 >= 1
    rows = [_rate(c, RESP, "CR at day 28", "response_d28", d28 == 2),
            _rate(c, RESP, "CRi at day 28", "response_d28", d28 == 1),
            _rate(c, RESP, "CR/CRi (ORR) at day 28", "response_d28", resp28)]
    for name, label in (("mrd_flow_neg_d28", "MRD-negative (flow, < 1e-4) CR/CRi at day 28"),
                        ("mrd_mol_neg_d28", "MRD-negative (molecular, < 1e-5) CR/CRi at day 28"),
                        ("mrd_flow_neg_m3", "MRD-negative (flow, < 1e-4) at month 3"),
                        ("mrd_mol_neg_m3", "MRD-negative (molecular, < 1e-5) at month 3"),
                        ("best_mrd_flow_neg", "Best response MRD-negative (flow)"),
                        ("best_mrd_mol_neg", "Best response MRD-negative (molecular)")):
        rows.append(_rate(c, RESP, label, name, c.flag(name)))
    rows += [_rate(c, RESP, f"Best response {lab}", "best_response", best == code)
             for code, lab in RESPONSE_CODES.items()]
    rows.append(_median(c, RESP, "Time to response (first day blasts < 5%)", "best_response",
                        c.values("response_day"), "day", " days", among=best >= 1))
    em = c.flag("em_present")
    em_best = c.codes("em_best_response", [0, *EM_CODES])
    wrong = em & c.estimable("em_best_response") & (em_best == 0)
    if wrong.any():
        c._bad(c.ep, "em_best_response", wrong,
               f"one of {list(EM_CODES)} where em_present is True")
    n_em = int(em.sum())
    rows.append(rate_row(RESP, "Extramedullary (EM) disease at baseline", n_em, c.N))
    rows += [_rate(c, RESP, f"EM {lab} (among EM disease)", "em_best_response",
                   em_best == code, among=em) for code, lab in EM_CODES.items()]
    rows.append(_rate(c, RESP, "EM ORR (CR+PR, among EM disease)", "em_best_response",
                      np.isin(em_best, (1, 2)), among=em))
    return rows


def _safety(c: _Cohort) -> list[dict]:
    rows = []
    for stem, name in (("crs", "CRS"), ("icans", "ICANS")):
        grade = c.codes(f"{stem}_grade", range(5))
        rows += [rate_row(SAFETY, f"{name} any grade", int((grade >= 1).sum()), c.N),
                 rate_row(SAFETY, f"{name} grade >= 3", int((grade >= 3).sum()), c.N)]
        rows += [rate_row(SAFETY, f"{name} grade {g} (worst)", int((grade == g).sum()), c.N)
                 for g in range(5)]
        for window, span in (("1m", "1 month"), ("3m", "3 months")):
            var = f"{stem}_grade_{window}"
            g_w = c.codes(var, range(5))
            rows.append(_rate(c, SAFETY, f"{name} any grade, onset within {span}", var,
                              g_w >= 1))
        rows.append(median_row(SAFETY, f"{name} onset day", c.values(f"{stem}_onset_day"),
                               c.N, "day", " days"))
    rows += [rate_row(SAFETY, "Grade 3-4 cytopenia (ANC < 1000/uL)",
                      int(c.flag("cytopenia_g34").sum()), c.N),
             median_row(SAFETY, "Grade 4 neutropenia duration (ANC < 500/uL)",
                        c.values("neutropenia_g4_days"), c.N, "day", " days"),
             median_row(SAFETY, "ANC recovery day (>= 1000/uL, sustained 3 days)",
                        c.values("anc_recovery_day"), c.N, "day", " days"),
             median_row(SAFETY, "CD7+ T-cell aplasia duration", c.values("t_aplasia_days"),
                        c.N, "day", " days")]
    return rows


def _kinetics(c: _Cohort) -> list[dict]:
    rows = [_median(c, CK, label, var, c.values(var), unit, shown)
            for var, label, unit, shown in KINETICS]
    rows += [rate_row(CK, "Expansion observed", int(c.flag("expansion").sum()), c.N),
             _rate(c, CK, "CAR-T detectable at month 6 (qPCR >= LLOQ)", "car_detectable_m6",
                   c.flag("car_detectable_m6"))]
    return rows


def _survival(c: _Cohort, times: tuple[float, ...]) -> list[dict]:
    # responders within the follow-up (best_response >= 1 wherever that is estimable)
    responder = np.isfinite(c.values("response_day"))
    relapse = c.flag("relapse", among=responder)
    cause = c.codes("death_cause", [0, 1, 2])
    rows = [rate_row(SURV, "Relapse (among responders)", int(relapse.sum()),
                     int(responder.sum())),
            rate_row(SURV, "CD7-negative relapse (among relapses)",
                     int(c.flag("relapse_cd7neg", among=relapse).sum()), int(relapse.sum())),
            median_row(SURV, "Time to relapse", c.values("relapse_day")[relapse] / MONTH_DAYS,
                       int(relapse.sum()), "month", " months"),
            rate_row(SURV, "Progression (among non-responders)",
                     int(c.flag("progression", among=~responder).sum()),
                     int((~responder).sum())),
            rate_row(SURV, "Deaths", int(c.flag("death").sum()), c.N),
            rate_row(SURV, "Deaths from leukemia", int((cause == 1).sum()), c.N),
            rate_row(SURV, "Non-relapse mortality", int((cause == 2).sum()), c.N)]
    curves = {"PFS": c.km("pfs"), "OS": c.km("os")}  # as survival_curves(), cohort reused
    for name, km in curves.items():
        rows += [km_survival_row(SURV, f"{name} at {m:g} months (day {assessment_day(m):g})",
                                 km, assessment_day(m)) for m in times]
    for name, km in (*curves.items(), ("DOR (responders)", c.km("dor", responder))):
        rows.append(km_median_row(SURV, f"Median {name}", km, MONTH_DAYS, "months"))
    return rows


def _pharmacodynamics(c: _Cohort) -> list[dict]:
    rows = [median_row(PD, f"Peak {label}", c.values(var), c.N, "pg/mL", " pg/mL")
            for var, label in CYTOKINES]
    auc = c.values("flu_auc")
    rows += [median_row(PD, "CD7+ T-cell clearance day", c.values("cd7_clearance_day"), c.N,
                        "day", " days"),
             median_row(PD, "Fludarabine AUC", auc, c.N, "mg*h/L", " mg*h/L"),
             rate_row(PD, f"Fludarabine AUC >= {FLU_AUC_TARGET} mg*h/L (Fabrizio 2022)",
                      int((auc >= FLU_AUC_TARGET).sum()), c.N)]
    return rows
