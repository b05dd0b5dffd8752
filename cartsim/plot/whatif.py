"""A dosing what-if: one patient under several regimens, typical course and a cohort around it.

:func:`run_what_if` turns a patient (a few covariates) and named regimens (Flu/Cy doses,
CAR-T dose and split dosing, product) into scenarios through :func:`cartsim.load_config`
(the same keys and checks as the command line), simulates

* the patient with typical parameters, on a fine grid over lymphodepletion (for the
  drug concentrations of :func:`~cartsim.plot.patient_story`), and
* a small virtual cohort *around* the patient: the same covariates, log-normal random
  effects on the model parameters (``conf/population/default.yaml``), so that endpoint
  probabilities reflect between-patient variability of the response, not of the disease;

and :func:`what_if_figure` draws the regimens side by side. Endpoint probabilities:
:func:`~cartsim.plot.endpoint_bars` of ``{name: cohort.endpoints}``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from cartsim.plot._common import DAY_LABEL, PALETTE, label, mark_regimen, new_axes, set_yscale

PRODUCT_KEYS = ("product", "disease", "model")
"""Keys of a regimen mapping that choose a config group option (``product=ko``)."""


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def what_if_overrides(patient: Mapping, regimen: Mapping, *, t_end: float = 365.0) -> list[str]:
    """Command-line overrides of a patient and a regimen mapping.

    ``patient`` keys are :class:`~cartsim.scenario.Patient` fields; ``regimen`` keys are
    :class:`~cartsim.scenario.Regimen` fields plus ``product``/``disease``/``model``
    (config group options, e.g. ``product="ko"``). A dotted key in either mapping is a full
    config key passed as is (``"disease.em_volume_cm3": 50.0``, ``"+model.params.k_kill":
    1.0``), for the values of a chosen preset that one scenario changes.
    """
    def key(prefix, k):
        return k if "." in k else f"{prefix}.{k}"

    out = [f"{k}={regimen[k]}" for k in PRODUCT_KEYS if k in regimen]
    out += [f"{key('patient', k)}={_value(v)}" for k, v in patient.items()]
    out += [f"{key('regimen', k)}={_value(v)}" for k, v in regimen.items()
            if k not in PRODUCT_KEYS]
    return out + [f"output.t_end={_value(float(t_end))}"]


def fine_times(t_start: float, t_end: float, *, dt_ld: float = 0.05) -> list[float]:
    """Output days: every ``dt_ld`` day from ``t_start`` to day 1, then daily to ``t_end``."""
    ld = np.arange(t_start, 1.0, dt_ld)
    return [float(x) for x in np.unique(np.round(np.concatenate(
        [ld, np.arange(1.0, t_end + 0.5, 1.0)]), 6))]


@dataclass
class WhatIf:
    """Result of :func:`run_what_if`.

    Attributes
    ----------
    scenarios : regimen name -> the patient's :class:`~cartsim.scenario.Scenario`.
    typical : regimen name -> simulation of the patient with typical parameters.
    cohorts : regimen name -> :class:`~cartsim.trial.TrialResult` of the virtual cohort
        around the patient (endpoints and trajectories).
    members : regimen name -> endpoints of the same cohort under each calibration ensemble
        member (empty without ``ensemble=``): what the model does not know.
    pinned : ensemble keys left at the regimen's own value (set by the user or the
        disease, e.g. the T-ALL growth rate for ``disease="cd7_aml"``).
    member_typical : regimen name -> the patient's typical course (fine grid) under each
        ensemble member (dim ``patient`` = member; empty without ``ensemble=``): the band
        of what the model does not know, drawn by :func:`what_if_figure`.
    """

    scenarios: dict = field(default_factory=dict)
    typical: dict[str, xr.Dataset] = field(default_factory=dict)
    cohorts: dict = field(default_factory=dict)
    members: dict[str, list[xr.Dataset]] = field(default_factory=dict)
    pinned: dict[str, list[str]] = field(default_factory=dict)
    member_typical: dict[str, xr.Dataset] = field(default_factory=dict)

    def endpoints(self) -> dict[str, xr.Dataset]:
        """Regimen name -> the cohort's endpoints (for :func:`~cartsim.plot.endpoint_bars`)."""
        return {name: res.endpoints for name, res in self.cohorts.items()}

    def member_endpoints(self) -> dict[str, list[xr.Dataset]]:
        """Regimen name -> the ensemble members' endpoints (``endpoint_bars(members=...)``)."""
        return dict(self.members)


@functools.lru_cache(maxsize=1)
def _default_population():
    import cartsim

    return cartsim.load_run_config().population


def cohort_around_patient(n: int):
    """The population of :func:`run_what_if`: ``n`` patients with the random effects of
    ``conf/population/default.yaml`` and no covariate spread (the config read once)."""
    from cartsim.population import PopulationSpec

    default = _default_population()
    return PopulationSpec(n=int(n), covariates={}, covariate_correlation=[],
                          em_probability=None, cd7neg_clone_probability=None,
                          random_effects=dict(default.random_effects),
                          random_effect_correlation=list(default.random_effect_correlation))


def run_what_if(patient: Mapping, regimens: Mapping[str, Mapping], *, n_cohort: int = 20,
                seed: int = 0, t_end: float = 365.0, population=None, ensemble=None,
                ensemble_members: int = 5) -> WhatIf:
    """Simulate one patient under each regimen, typical and as a small cohort.

    Parameters
    ----------
    patient : mapping
        Patient fields, e.g. ``{"marrow_blast_pct": 60, "cd7neg_blast_fraction": 1e-4,
        "weight_kg": 55, "crcl_ml_min": 50}``; others keep ``conf/config.yaml`` values.
    regimens : mapping of str to mapping
        Name -> regimen fields and ``product``, e.g. ``{"product": "ko",
        "car_dose_per_kg": 5e5, "car_days": [0, 3], "car_fractions": [0.5, 0.5]}``, or a
        ready :class:`~cartsim.scenario.Scenario` (``patient`` is then ignored for it).
    n_cohort : int
        Virtual patients per regimen (20 runs in seconds; use 200+ for stable rates).
    seed : int
        Seed of the cohort (the same random effects under every regimen: paired).
    t_end : float
        Last simulated day.
    population : PopulationSpec, optional
        Where the random effects come from (default: ``conf/population/default.yaml``'s
        random effects, no covariate spread).
    ensemble : path or DataFrame, optional
        The calibration's plausible parameter sets (``experiments/calibration_results/
        ensemble.csv``). The cohort of each regimen is run again under the first
        ``ensemble_members`` of them (same patients): their spread is the model's
        uncertainty, drawn by ``endpoint_bars(..., members=whatif.member_endpoints())``.
        A value the regimen sets itself (a disease's growth rate) stays (as in the
        calibration: :func:`cartsim.trial.pinned_keys`).
    ensemble_members : int
        How many members: the first ones of the file (a posterior sample for the shipped
        ensemble, whose members are in a random order).

    Returns
    -------
    WhatIf
    """
    import cartsim
    from cartsim.scenario import OutputOptions, Scenario
    from cartsim.trial import TrialOptions, run_trial

    if population is None:
        population = cohort_around_patient(n_cohort)
    table = defaults = None
    if ensemble is not None:
        from cartsim.trial import read_members

        if not (isinstance(ensemble_members, int) and ensemble_members >= 1):
            raise ValueError(f"ensemble_members={ensemble_members!r} is not accepted: "
                             "expected an integer >= 1")
        table = ensemble if hasattr(ensemble, "iterrows") else read_members(ensemble)
        if len(table) == 0:
            raise ValueError("the ensemble holds no members")
        cfg = cartsim.load_run_config()
        defaults = (cfg.scenario(), cfg.population, cfg.endpoints)
    out = WhatIf()
    for name, regimen in regimens.items():
        if isinstance(regimen, Scenario):  # built and checked by the caller
            sc = replace(regimen, output=replace(regimen.output, t_end=float(t_end)))
        else:
            sc = cartsim.load_config(what_if_overrides(patient, regimen, t_end=t_end))
        sc = replace(sc, seed=int(seed))
        out.scenarios[name] = sc
        fine = replace(sc, output=OutputOptions(times=fine_times(sc.output.t_start, t_end)))
        out.typical[name] = cartsim.simulate(fine)
        out.cohorts[name] = run_trial(sc, population, seed=int(seed),
                                      options=TrialOptions(save_trajectories=True,
                                                           title=str(name)))
        if table is not None:
            out.members[name], out.pinned[name], typical = _member_cohorts(
                sc, population, table.head(int(ensemble_members)), defaults, seed)
            out.member_typical[name] = cartsim.simulate(
                [replace(s, output=fine.output) for s in typical])
    return out


def _member_cohorts(scenario, population, members, defaults, seed):
    """Endpoints of the cohort under each ensemble member, the keys left alone, and the
    patient's typical scenario under each member."""
    from cartsim.trial import apply_overrides, member_overrides, pinned_keys, run_trial

    settings = defaults[2]
    keys = list(member_overrides(members.iloc[0]))
    pinned = pinned_keys((scenario, population, settings), defaults, keys)
    out, typical = [], []
    for _, m in members.iterrows():
        over = {k: v for k, v in member_overrides(m).items() if k not in pinned}
        sc, pop, st = apply_overrides(scenario, population, settings, over)
        out.append(run_trial(sc, pop, st, seed=int(seed)).endpoints)
        typical.append(sc)
    return out, sorted(pinned), typical


COMPANIONS = {
    "marrow_blast_pct": ("marrow_cd7neg_blast_pct",),
    "t_cd7pos_per_ul": ("t_cd7neg_per_ul",),
    "il6": ("ifng", "il10", "tnfa"),
}
"""Variables drawn (typical patient, thin line) on the axes of another: the CD7-negative clone
with the marrow blasts, CD7- with CD7+ normal T cells, the other cytokines with IL-6."""

COMPANION_STYLES = (":", "-.", (0, (1, 1)), (0, (5, 1, 1, 1)))


def with_derived(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` plus ``marrow_cd7neg_blast_pct``: CD7-negative blasts as % of nucleated marrow
    cells (``marrow_blast_pct * blast_cd7neg_pct / 100``), the escape clone on the blasts'
    own scale."""
    if "marrow_cd7neg_blast_pct" in ds or "blast_cd7neg_pct" not in ds:
        return ds
    clone = ds["marrow_blast_pct"] * ds["blast_cd7neg_pct"] / 100.0
    return ds.assign(marrow_cd7neg_blast_pct=clone.assign_attrs(
        units="%", long_name="CD7-negative marrow blasts (% of nucleated marrow cells)"))


def what_if_figure(whatif: WhatIf, variables: Sequence[str] = (
        "car_copies_per_ug", "marrow_blast_pct", "il6", "t_cd7pos_per_ul"), *,
        xlim=(-6.0, 180.0), bands=(5.0, 95.0), individual: int = 0, observed=None,
        companions: Mapping[str, Sequence[str]] | None = None, fig=None):
    """Regimens side by side (columns) for each variable (rows): the patient's typical
    course (thick line), the cohort's median (dashed) and its percentile band.

    Rows share the y axis, so the regimens compare at a glance.

    Parameters
    ----------
    individual : int
        Draw this many virtual patients of the cohort as thin lines instead of the median
        and the percentile band (0: the band).
    observed : observed data (:mod:`cartsim.plot.observed` convention), optional
        Drawn on the rows of the analytes it holds, in every column (BLQ as censored).
    companions : mapping of str to sequence of str, optional
        Variables drawn for the typical patient on another variable's axes (default
        :data:`COMPANIONS`; ``{}`` for none).

    Where ``whatif.member_typical`` holds the patient under the calibration ensemble's
    parameter sets, their range is a grey hatched band: the model's own uncertainty, apart
    from the cohort's between-patient band. Returns the Figure.
    """
    from cartsim.plot.observed import overlay_observed

    companions = COMPANIONS if companions is None else companions
    names = list(whatif.typical)
    nrow, ncol = len(variables), len(names)
    if fig is None:
        fig, axes = new_axes(nrow, ncol, figsize=(4.2 * ncol, 2.5 * nrow + 0.6),
                             sharex=True, sharey="row")
    else:
        axes = np.asarray(fig.subplots(nrow, ncol, squeeze=False, sharex=True, sharey="row"))
    for j, name in enumerate(names):
        typ = with_derived(whatif.typical[name])
        traj = with_derived(whatif.cohorts[name].trajectories)
        members = whatif.member_typical.get(name)
        members = with_derived(members) if members is not None else None
        sc = whatif.scenarios[name]
        colour = PALETTE[j % len(PALETTE)]
        for i, var in enumerate(variables):
            ax = axes[i, j]
            y = np.asarray(traj[var].transpose("patient", "time").values, dtype=float)
            t = traj["time"].values
            shown = [typ[var].values[0], y.ravel()]
            if individual:
                for k in range(min(int(individual), y.shape[0])):
                    ax.plot(t, y[k], color=colour, linewidth=0.6, alpha=0.45,
                            label=f"virtual patients (n={min(int(individual), y.shape[0])})"
                            if k == 0 else "_patient")
            else:
                lo, hi = np.nanpercentile(y, bands, axis=0)
                ax.fill_between(t, lo, hi, color=colour, alpha=0.2, linewidth=0,
                                label=f"patients like this one: {bands[0]:g}-{bands[1]:g}th "
                                f"percentile (n={y.shape[0]})")
                ax.plot(t, np.nanmedian(y, axis=0), color=colour, linestyle="--",
                        linewidth=1.2, label="patients like this one: median")
            if members is not None and var in members:
                m = np.asarray(members[var].transpose("patient", "time").values, dtype=float)
                ax.fill_between(members["time"].values, m.min(axis=0), m.max(axis=0),
                                facecolor="none", edgecolor="0.45", hatch="////",
                                linewidth=0.0, label=f"model uncertainty ({m.shape[0]} "
                                "calibrated parameter sets)")
                shown.append(m.ravel())
            ax.plot(typ["time"].values, typ[var].values[0], color=colour, linewidth=2.0,
                    label="this patient, typical")
            for k, extra in enumerate(companions.get(var, ())):
                if extra in typ:
                    ax.plot(typ["time"].values, typ[extra].values[0], color="0.2",
                            linewidth=1.0, linestyle=COMPANION_STYLES[k % 4],
                            label=f"{label(typ[extra], extra)}, typical")
                    shown.append(typ[extra].values[0])
            if observed is not None:
                overlay_observed(ax, observed, var, units=traj[var].attrs.get("units"))
            ax.set_xlim(xlim)
            set_yscale(ax, np.concatenate(shown), var)
            mark_regimen(ax, regimen=sc.regimen, text=(i == 0))
            ax.grid(alpha=0.25)
            if j == 0:
                ax.set_ylabel(label(traj[var], var), fontsize=8)
                own = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels())
                       if lab.endswith(", typical") and not lab.startswith("this patient")
                       or lab.startswith(("observed", "LLOQ"))]
                if own and i > 0:
                    ax.legend(*zip(*own), fontsize=6, frameon=False, loc="upper right")
            if i == 0:
                reg = sc.regimen
                ax.set_title(f"{name}\n{sc.product.name}; Flu {reg.flu_mg_m2:g}/Cy "
                             f"{reg.cy_mg_m2:g}; {reg.car_dose_per_kg:.2g}/kg"
                             + (f" on days {', '.join(f'{d:g}' for d in reg.car_days)}"
                                if len(reg.car_days) > 1 else ""), fontsize=9)
            if i == nrow - 1:
                ax.set_xlabel(DAY_LABEL)
    axes[0, 0].legend(fontsize=7, frameon=False, loc="lower right")
    return fig


def drug_figure(whatif: WhatIf, *, xlim=None, fig=None):
    """Lymphodepleting drug concentrations of the typical patient, one column per regimen,
    on the fine grid of :func:`fine_times` (each infusion's peak resolved). Rows: F-ara-A
    (fludarabine) and cyclophosphamide, in mg/L, shared within a row. Returns the Figure."""
    names = list(whatif.typical)
    ncol = len(names)
    if fig is None:
        fig, axes = new_axes(2, ncol, figsize=(4.2 * ncol, 4.2), sharex=True, sharey="row")
    else:
        axes = np.asarray(fig.subplots(2, ncol, squeeze=False, sharex=True, sharey="row"))
    for j, name in enumerate(names):
        typ = whatif.typical[name]
        reg = whatif.scenarios[name].regimen
        lo = (min(reg.ld_days) - 0.5) if reg.ld_days else -1.0
        colour = PALETTE[j % len(PALETTE)]
        for i, var in enumerate(("flu_conc", "cy_conc")):
            ax = axes[i, j]
            ax.plot(typ["time"].values, typ[var].values[0].clip(min=0.0), color=colour,
                    linewidth=1.6)
            ax.set_xlim(xlim or (lo, 1.0))
            mark_regimen(ax, regimen=reg, text=False)
            ax.grid(alpha=0.25)
            if j == 0:
                ax.set_ylabel(label(typ[var], var), fontsize=8)
            if i == 0:
                ax.set_title(f"{name}\nFlu {reg.flu_mg_m2:g}, Cy {reg.cy_mg_m2:g} mg/m\u00b2/day",
                             fontsize=9)
            else:
                ax.set_xlabel(DAY_LABEL)
    return fig
