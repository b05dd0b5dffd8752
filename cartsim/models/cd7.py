"""The ``cd7`` model: CD7 CAR-T cells, blasts, normal T cells, lymphodepletion and cytokines.

The equations live in :mod:`cartsim.models.cd7_kernel` (compiled); the numbers
in :mod:`cartsim.parameters.cd7`. This module turns a :class:`~cartsim.scenario.Scenario`
into an initial state, a kernel parameter vector and a dose-event table
(:meth:`Cd7Model.build`), and maps states to what assays report
(:meth:`Cd7Model.observables`).

Design choices
--------------
* Cell counts are integrated as ln(cells): they cannot go negative and keep
  the same relative accuracy at 1 cell and at 1e13 cells, so deep eradication
  (MRD 1e-5) is resolved as accurately as the expansion peak. Their absolute
  tolerance is a relative tolerance on the count.
* Infusions (fludarabine, cyclophosphamide) are zero-order inputs switched on
  and off by events; CAR-T cells, tocilizumab and dexamethasone are boluses.
  The solver stops and restarts at every event, so no dose is stepped over.
* Tocilizumab and dexamethasone "by rule" are state-triggered events that fire
  the first time IL-6 crosses the configured threshold (a surrogate of CRS
  grade >= 2, as used clinically: Teachey 2016 Cancer Discov 6:664).
"""

from __future__ import annotations

import math

import numpy as np

from cartsim.models import cd7_kernel as K
from cartsim.models.base import (
    ADD_PARAM,
    ADD_STATE,
    MUL_STATE,
    Model,
    Observable,
    Problem,
    StateSpec,
)
from cartsim.parameters.base import ParameterSet
from cartsim.parameters.cd7 import CD7_HSCT, CD7_LD_PK, CD7_PARAMETERS, CD7_PHYSIOLOGY

_CELL_LONG = {
    "car_eff": "effector CAR-T cells (whole body)",
    "car_mem": "memory CAR-T cells (whole body)",
    "car_exh": "exhausted CAR-T cells (whole body)",
    "blast_cd7pos": "CD7-positive blasts (marrow and blood)",
    "blast_cd7neg": "CD7-negative blasts (marrow and blood)",
    "em_mass": "extramedullary (CD7+) lymphoma cells",
    "t_cd7pos": "normal CD7-positive T/NK cells (whole body)",
    "t_cd7neg": "normal CD7-negative T cells (whole body)",
}
_CONT = {
    "flu_central": ("mg", "F-ara-A amount, central compartment", 1e-9),
    "flu_periph1": ("mg", "F-ara-A amount, peripheral compartment 1", 1e-9),
    "flu_periph2": ("mg", "F-ara-A amount, peripheral compartment 2", 1e-9),
    "cy_central": ("mg", "cyclophosphamide amount", 1e-8),
    "homeostatic_cytokine": ("1", "IL-7/IL-15 level relative to baseline", 1e-8),
    "macrophage_activation": ("1", "monocyte/macrophage activation", 1e-8),
    "il6": ("pg/mL", "interleukin-6 (plasma)", 1e-6),
    "il10": ("pg/mL", "interleukin-10 (plasma)", 1e-6),
    "ifng": ("pg/mL", "interferon-gamma (plasma)", 1e-6),
    "tnfa": ("pg/mL", "tumour necrosis factor alpha (plasma)", 1e-6),
    "toci_conc": ("mg/L", "tocilizumab (plasma)", 1e-8),
    "dex_amount": ("mg", "dexamethasone (effect amount)", 1e-8),
    "myeloid_precursor": ("1", "myeloid precursors relative to baseline", 1e-9),
    "myeloid_blood": ("1", "blood neutrophils relative to baseline", 1e-9),
    "flu_auc": ("mg h/L", "cumulative F-ara-A plasma AUC", 1e-8),
    "car_divisions": ("1", "cumulative proliferation of the CAR-T lineage (e-folds)", 1e-6),
    "allo_priming": ("1", "host alloimmune response against an allogeneic product "
                     "(fraction of its maximum, 0-1)", 1e-8),
}


def _states() -> tuple[StateSpec, ...]:
    out = []
    for i, name in enumerate(K.STATE_NAMES):
        if i < K.N_CELL:
            # atol on ln(cells) = relative tolerance on the count
            out.append(StateSpec(name, "cells", _CELL_LONG[name], log=True, atol=1e-7))
        else:
            units, long_name, atol = _CONT[name]
            out.append(StateSpec(name, units, long_name, log=False, atol=atol))
    return tuple(out)


def extinct_absorbing(x: np.ndarray) -> np.ndarray:
    """Cell counts with extinction made absorbing along the last (time) axis.

    An ODE holds expected counts; a clone whose expected count falls below one cell
    is taken as extinct from then on (the deterministic analogue of stochastic
    extinction, which the stochastic engine resolves properly), so later regrowth of
    the sub-cellular remnant reports 0. A clone never present is 0 throughout.
    """
    x = np.asarray(x, dtype=np.float64)
    here = x >= 1.0
    seen = np.maximum.accumulate(here, axis=-1)
    gone = np.maximum.accumulate(seen & ~here, axis=-1)
    # NaN (failed solve) compares False: keep it NaN rather than 0
    return np.where(np.isnan(x), np.nan, np.where(here & ~gone, x, 0.0))


HSCT_LIMITS = {"mrd_negative_cr": 1e-4, "cr": 0.05, "all": math.inf}
"""Marrow blast fraction below which a patient is transplanted, per ``regimen.hsct_criterion``
(-; :meth:`Cd7Model.hsct_eligible`; the stochastic engine applies the same limits)."""


class Cd7Model(Model):
    """Mechanistic CD7 CAR-T model (see :mod:`cartsim.models.cd7_kernel` for the equations)."""

    name = "cd7"
    model_id = 0
    states = _states()
    default_method = "dp5_bdf"
    physiology: ParameterSet = CD7_PHYSIOLOGY
    ld_pk: ParameterSet = CD7_LD_PK
    hsct: ParameterSet = CD7_HSCT
    supports_hsct = True

    @property
    def parameters(self) -> ParameterSet:
        return CD7_PARAMETERS

    # -- scenario -> problem ----------------------------------------------------------------
    def build(self, scenario) -> Problem:
        pat, reg, prod, dis = scenario.patient, scenario.regimen, scenario.product, scenario.disease
        pv = self.parameters.vector(scenario.model.params)  # checked like with_values
        ix = self.parameters.index
        phys = self.physiology.value_map()
        pk = self.ld_pk.value_map()
        p = np.zeros(K.N_P)
        p[: K.N_MODEL_PARAM] = pv

        wt, bsa = pat.weight_kg, pat.bsa_m2
        p[K.D_V1] = pk["flu_v1"] * wt / 70.0
        p[K.D_V2] = pk["flu_v2"] * wt / 70.0
        p[K.D_V3] = pk["flu_v3"] * wt / 70.0
        cl_h = (pk["flu_cl_nonrenal"] + pk["flu_cl_renal"] * pat.crcl_ml_min / 96.0)
        p[K.D_CL] = 24.0 * cl_h * (wt / 70.0) ** 0.75
        p[K.D_Q2] = 24.0 * pk["flu_q2"]
        p[K.D_Q3] = 24.0 * pk["flu_q3"]
        bsa_f = (bsa / 1.58) ** pk["cy_bsa_exp"]
        p[K.D_CYV] = pk["cy_v"] * bsa_f
        p[K.D_CYCL] = 24.0 * pk["cy_cl"] * bsa_f
        p[K.D_RESID] = prod.residual_cd7
        p[K.D_DONOR] = 1.0 if prod.donor_derived else 0.0
        p[K.D_ALLO] = 1.0 if prod.allogeneic else 0.0
        p[K.D_DENS] = dis.cd7_density
        p[K.D_EMACC] = dis.em_access
        p[K.D_RB] = dis.blast_growth_per_day
        p[K.D_EMPRES] = 1.0 if dis.em_volume_cm3 > 0.0 else 0.0

        # initial cell counts
        floor = phys["cell_floor"]
        bv_ul = phys["blood_volume_ml_per_kg"] * wt * 1e3
        t_total = (pat.lymphocytes_per_ul * phys["t_frac_of_alc"] * bv_ul / phys["f_blood_lymph"])
        blasts = pat.marrow_blast_pct / (100.0 - pat.marrow_blast_pct) * pv[
            ix["marrow_normal_cells"]]
        x0 = np.full(K.N_CELL, floor)
        x0[[K.S_E, K.S_M, K.S_X]] = phys["absent_floor"]
        x0[K.S_B7] = max(blasts * (1.0 - pat.cd7neg_blast_fraction), floor)
        # a clone of less than one cell is absent; with switching on it arises from B7, and
        # the per-capita inflow k_switch * B7 / B0 needs a moderate floor to stay finite
        b0 = blasts * pat.cd7neg_blast_fraction
        absent = phys["absent_floor"] if pv[ix["k_switch"]] == 0.0 else floor
        x0[K.S_B0] = b0 if b0 >= 1.0 else absent
        x0[K.S_L] = dis.em_volume_cm3 * phys["cells_per_cm3"] if dis.em_volume_cm3 > 0 else floor
        x0[K.S_T7] = t_total * (1.0 - phys["cd7neg_t_frac"])
        x0[K.S_T0] = t_total * phys["cd7neg_t_frac"]
        p[K.D_LYMPH0] = t_total

        y0 = np.zeros(K.N_STATE)
        y0[: K.N_CELL] = np.log(x0)
        y0[K.S_H] = 1.0
        y0[K.S_IL6] = pv[ix["il60"]]
        y0[K.S_IL10] = pv[ix["il100"]]
        y0[K.S_IFNG] = pv[ix["ifng0"]]
        y0[K.S_TNFA] = pv[ix["tnfa0"]]
        y0[K.S_AP] = pv[ix["allo_prime0"]]  # alloreactive precursors (used if allogeneic)
        y0[K.S_MP] = 1.0
        y0[K.S_MN] = 1.0

        events: list[tuple[float, int, int, float]] = []
        flu_factor = 1.0
        if reg.flu_renal_adjust:
            if pat.crcl_ml_min < 45.0:
                flu_factor = 0.6
            elif pat.crcl_ml_min < 60.0:
                flu_factor = 0.75
        flu_dose = reg.flu_mg_m2 * bsa * pk["flu_salt_factor"] * flu_factor  # mg F-ara-A
        cy_dose = reg.cy_mg_m2 * bsa
        for day in reg.ld_days:
            for dose, dur_h, slot in ((flu_dose, reg.flu_infusion_h, K.D_RATE_FLU),
                                      (cy_dose, reg.cy_infusion_h, K.D_RATE_CY)):
                if dose > 0.0:
                    rate = dose / (dur_h / 24.0)
                    events.append((day, ADD_PARAM, slot, rate))
                    events.append((day + dur_h / 24.0, ADD_PARAM, slot, -rate))
        total_cells = reg.car_dose_per_kg * wt
        f_mem, f_exh = prod.memory_fraction, prod.exhausted_fraction
        infusions = [(day, total_cells * frac) for day, frac in zip(reg.car_days,
                                                                     reg.car_fractions)]
        infusions += [(day, reg.reinfusion_dose_per_kg * wt) for day in reg.reinfusion_days]
        for day, dose in infusions:
            for state, share in ((K.S_E, 1.0 - f_mem - f_exh), (K.S_M, f_mem), (K.S_X, f_exh)):
                if dose * share > 0.0:
                    events.append((day, ADD_STATE, state, dose * share))
        toci_conc = reg.toci_mg_kg * wt / phys["toci_volume_l"]
        for day in reg.toci_days:
            events.append((day, ADD_STATE, K.S_TOCI, toci_conc))
        for day in reg.steroid_days:
            events.append((day, ADD_STATE, K.S_DEX, reg.steroid_mg))
        rules: list[tuple[int, float, int, int, float]] = []
        if reg.toci_il6_threshold is not None:
            rules.append((K.S_IL6, reg.toci_il6_threshold, ADD_STATE, K.S_TOCI, toci_conc))
        if reg.steroid_il6_threshold is not None:
            rules.append((K.S_IL6, reg.steroid_il6_threshold, ADD_STATE, K.S_DEX,
                          reg.steroid_mg))

        t0 = scenario.output.times[0] if scenario.output.times else scenario.output.t_start
        first_event = min(e[0] for e in events) if events else t0
        info = {
            "bsa_m2": bsa,
            "blood_volume_ul": bv_ul,
            "flu_dose_mg_per_day": flu_dose,
            "cy_dose_mg_per_day": cy_dose,
            "car_cells_total": total_cells,
            "vcn": prod.vcn,
            "anc0_per_ul": pat.anc_per_ul,
            "hsct_day": np.nan,
            "hsct_conditioning": bool(reg.hsct_conditioning),
            "rule_names": [n for n, thr in (("tocilizumab", reg.toci_il6_threshold),
                                            ("dexamethasone", reg.steroid_il6_threshold))
                           if thr is not None],
        }
        return Problem(y0=y0, p=p, t0=min(t0, first_event), events=events, rules=rules,
                       info=info)

    # -- consolidative allo-HSCT ------------------------------------------------------------
    def hsct_eligible(self, y: np.ndarray, p: np.ndarray, criterion: str) -> np.ndarray:
        """Which patients meet the HSCT criterion, from linear states ``y[patient, state]``.

        ``mrd_negative_cr``: marrow blasts (present cells) below 1e-4 of nucleated marrow
        cells, the flow-MRD level at which patients in CR are consolidated (Pan 2021 JCO
        39:3340); ``cr``: below 5%; ``all``: everyone. A failed solve (NaN) is never eligible.
        """
        blasts = np.where(y[:, K.S_B7] >= 1.0, y[:, K.S_B7], 0.0) + np.where(
            y[:, K.S_B0] >= 1.0, y[:, K.S_B0], 0.0)
        frac = blasts / (blasts + p[:, K.P_NMARROW])
        limit = HSCT_LIMITS[criterion]
        return np.isfinite(y).all(axis=1) & (frac < limit)

    def add_hsct(self, problem: Problem, day: float, weight_kg: float) -> None:
        """Append the transplant-day events to ``problem`` (parameters: ``CD7_HSCT``).

        Conditioning (``problem.info["hsct_conditioning"]``, default True) multiplies
        blasts and extramedullary cells by ``10**-log10_kill``, CAR-T cells by
        ``hsct_car_survival``, recipient T cells by ``hsct_t_survival`` and myeloid
        precursors by ``hsct_myeloid_survival``; without conditioning nothing is killed.
        The graft then adds donor T cells (CD7+/CD7- in the baseline proportion), and
        graft-versus-leukemia kills blasts of either phenotype at ``hsct_gvl_per_day``
        from the transplant on (the kernel's ``gvl`` slot). GVHD is not modelled
        (transplant-related mortality is part of the death model).
        """
        h = {k: v.value for k, v in self.hsct.items()}
        cd7neg = self.physiology["cd7neg_t_frac"].value
        graft = h["hsct_graft_t_per_kg"] * weight_kg
        ev = []
        if problem.info.get("hsct_conditioning", True):
            kill = 10.0 ** -h["hsct_blast_log10_kill"]
            ev += [(day, MUL_STATE, K.S_B7, kill), (day, MUL_STATE, K.S_B0, kill),
                   (day, MUL_STATE, K.S_L, kill)]
            ev += [(day, MUL_STATE, s, h["hsct_car_survival"]) for s in (K.S_E, K.S_M, K.S_X)]
            ev += [(day, MUL_STATE, s, h["hsct_t_survival"]) for s in (K.S_T7, K.S_T0)]
            ev += [(day, MUL_STATE, K.S_MP, h["hsct_myeloid_survival"])]
        ev += [(day, ADD_PARAM, K.D_GVL, h["hsct_gvl_per_day"]),
               (day, ADD_STATE, K.S_T7, graft * (1.0 - cd7neg)),
               (day, ADD_STATE, K.S_T0, graft * cd7neg)]
        problem.events = list(problem.events) + ev
        problem.info["hsct_day"] = float(day)

    # -- states -> assays -------------------------------------------------------------------
    def observables(self, y: np.ndarray, p: np.ndarray, info: dict,
                    names=None) -> dict[str, Observable]:
        """Assay-level outputs.

        Cell populations below one cell count as absent (0): the ln-state floor
        (``cell_floor``) and sub-cellular remnants of an ODE are not cells. For the
        leukemia (CD7+ and CD7- blasts, extramedullary cells), which nothing in a
        scenario adds back, extinction is absorbing (:func:`extinct_absorbing`): once a
        clone has fallen below one cell it stays absent, so the ODE's regrowth of a
        sub-cellular remnant is not reported as a relapse.
        ``y`` holds linear state values, shape (patient, time, state); ``p`` the
        kernel parameter vectors, shape (patient, n_p); ``info`` per-patient
        arrays of shape (patient,) from :meth:`build` (blood volume, VCN,
        baseline ANC); a fit may add ``info["f_blood_blast"]``, a per-patient share of
        blasts in blood (:mod:`cartsim.fitting.scenario_parameters`), which replaces the
        physiology constant in the blood observables only. ``names``: compute only these
        observables (default: all), each with the same values as in the full set (what a
        lazily built Dataset asks for).
        """
        phys = {k: v.value for k, v in self.physiology.items()}
        memo: dict = {}

        def col(a):  # per-patient value -> broadcast over time
            return np.asarray(a, dtype=float)[:, None]

        def present(x):  # below one cell a population is absent: report 0, not the floor
            return np.where(x >= 1.0, x, np.where(np.isnan(x), np.nan, 0.0))  # failed: NaN

        def once(fn):  # an intermediate several observables share: computed once per call
            def get():
                if fn not in memo:
                    memo[fn] = fn()
                return memo[fn]
            return get

        bv_ul = col(info["blood_volume_ul"])
        f_l = phys["f_blood_lymph"]
        car = once(lambda: present(y[..., K.S_E] + y[..., K.S_M] + y[..., K.S_X]))
        car_ul = once(lambda: f_l * car() / bv_ul)
        t7_ul = once(lambda: f_l * present(y[..., K.S_T7]) / bv_ul)
        t0_ul = once(lambda: f_l * present(y[..., K.S_T0]) / bv_ul)
        b0 = once(lambda: extinct_absorbing(y[..., K.S_B0]))
        b7 = once(lambda: extinct_absorbing(y[..., K.S_B7]))
        blasts = once(lambda: b7() + b0())
        # share of blasts in blood: the physiology constant, or a fit's per-patient value
        f_b = col(info["f_blood_blast"]) if "f_blood_blast" in info else phys["f_blood_blast"]
        blast_ul = once(lambda: f_b * blasts() / bv_ul)
        anc = once(lambda: col(info["anc0_per_ul"]) * y[..., K.S_MN])
        wbc = once(lambda: phys["myeloid_to_anc"] * anc() + car_ul() + t7_ul() + t0_ul()
                   + blast_ul())

        def car_pct():
            t_ul = car_ul() + t7_ul() + t0_ul()
            return 100.0 * np.divide(car_ul(), t_ul, out=np.zeros_like(car_ul()), where=t_ul > 0)

        def cd7neg_pct():
            return 100.0 * np.divide(b0(), blasts(), out=np.zeros_like(b0()), where=blasts() > 0)

        recipes = {
            "car_copies_per_ug": (
                lambda: col(info["vcn"]) * car_ul() / wbc() * phys["genomes_per_ug"], "copies/ug",
                "CAR transgene copies per ug genomic DNA of blood (qPCR)"),
            "car_cells_per_ul": (car_ul, "cells/uL", "CAR-T cells per uL blood (flow)"),
            "car_pct_of_t": (car_pct, "%", "CAR+ cells as % of CD3+ T cells in blood (flow)"),
            "car_total": (car, "cells", "all CAR-T cells (whole body)"),
            "marrow_blast_pct": (
                lambda: 100.0 * blasts() / (blasts() + col(p[:, K.P_NMARROW])), "%",
                "marrow blasts (% of nucleated marrow cells)"),
            "blast_cd7neg_pct": (cd7neg_pct, "%",
                                 "CD7-negative share of blasts (0 when no blast is left)"),
            # blood blasts: the fraction f_b (f_blood_blast) of either phenotype circulates
            "blast_per_ul": (blast_ul, "cells/uL", "blasts per uL blood, CD7+ and CD7- (flow)"),
            "blast_cd7pos_per_ul": (lambda: f_b * b7() / bv_ul, "cells/uL",
                                    "CD7-positive blasts per uL blood (flow)"),
            "blast_cd7neg_per_ul": (lambda: f_b * b0() / bv_ul, "cells/uL",
                                    "CD7-negative blasts per uL blood (flow)"),
            "em_volume_cm3": (
                lambda: extinct_absorbing(y[..., K.S_L]) / phys["cells_per_cm3"]
                * col(p[:, K.D_EMPRES]), "cm3", "extramedullary mass volume"),
            "t_cd7pos_per_ul": (t7_ul, "cells/uL", "normal CD7+ T/NK cells per uL blood"),
            "t_cd7neg_per_ul": (t0_ul, "cells/uL", "normal CD7- T cells per uL blood"),
            "anc_per_ul": (anc, "cells/uL", "absolute neutrophil count"),
            "wbc_per_ul": (wbc, "cells/uL", "nucleated blood cells per uL"),
            "flu_conc": (lambda: y[..., K.S_F1] / col(p[:, K.D_V1]), "mg/L",
                         "F-ara-A plasma concentration"),
            "cy_conc": (lambda: y[..., K.S_CY] / col(p[:, K.D_CYV]), "mg/L",
                        "cyclophosphamide plasma concentration"),
        }
        return {name: Observable(recipes[name][0](), *recipes[name][1:])
                for name in (recipes if names is None else names)}
