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
    (config group options, e.g. ``product="ko"``).
    """
    out = [f"{k}={regimen[k]}" for k in PRODUCT_KEYS if k in regimen]
    out += [f"patient.{k}={_value(v)}" for k, v in patient.items()]
    out += [f"regimen.{k}={_value(v)}" for k, v in regimen.items() if k not in PRODUCT_KEYS]
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
    """

    scenarios: dict = field(default_factory=dict)
    typical: dict[str, xr.Dataset] = field(default_factory=dict)
    cohorts: dict = field(default_factory=dict)
    members: dict[str, list[xr.Dataset]] = field(default_factory=dict)
    pinned: dict[str, list[str]] = field(default_factory=dict)

    def endpoints(self) -> dict[str, xr.Dataset]:
        """Regimen name -> the cohort's endpoints (for :func:`~cartsim.plot.endpoint_bars`)."""
        return {name: res.endpoints for name, res in self.cohorts.items()}

    def member_endpoints(self) -> dict[str, list[xr.Dataset]]:
        """Regimen name -> the ensemble members' endpoints (``endpoint_bars(members=...)``)."""
        return dict(self.members)


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
        "car_dose_per_kg": 5e5, "car_days": [0, 3], "car_fractions": [0.5, 0.5]}``.
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
        How many members (the most likely first).

    Returns
    -------
    WhatIf
    """
    import cartsim
    from cartsim.population import PopulationSpec
    from cartsim.scenario import OutputOptions
    from cartsim.trial import TrialOptions, run_trial

    if population is None:
        default = cartsim.load_run_config().population
        population = PopulationSpec(n=int(n_cohort), covariates={}, covariate_correlation=[],
                                    em_probability=None, cd7neg_clone_probability=None,
                                    random_effects=dict(default.random_effects),
                                    random_effect_correlation=list(
                                        default.random_effect_correlation))
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
        sc = cartsim.load_config(what_if_overrides(patient, regimen, t_end=t_end))
        sc = replace(sc, seed=int(seed))
        out.scenarios[name] = sc
        fine = replace(sc, output=OutputOptions(times=fine_times(sc.output.t_start, t_end)))
        out.typical[name] = cartsim.simulate(fine)
        out.cohorts[name] = run_trial(sc, population, seed=int(seed),
                                      options=TrialOptions(save_trajectories=True,
                                                           title=str(name)))
        if table is not None:
            out.members[name], out.pinned[name] = _member_cohorts(
                sc, population, table.head(int(ensemble_members)), defaults, seed)
    return out


def _member_cohorts(scenario, population, members, defaults, seed):
    """Endpoints of the cohort under each ensemble member, and the keys left alone."""
    from cartsim.trial import apply_overrides, member_overrides, pinned_keys, run_trial

    settings = defaults[2]
    keys = list(member_overrides(members.iloc[0]))
    pinned = pinned_keys((scenario, population, settings), defaults, keys)
    out = []
    for _, m in members.iterrows():
        over = {k: v for k, v in member_overrides(m).items() if k not in pinned}
        sc, pop, st = apply_overrides(scenario, population, settings, over)
        out.append(run_trial(sc, pop, st, seed=int(seed)).endpoints)
    return out, sorted(pinned)


def what_if_figure(whatif: WhatIf, variables: Sequence[str] = (
        "car_copies_per_ug", "marrow_blast_pct", "il6", "t_cd7pos_per_ul"), *,
        xlim=(-6.0, 180.0), bands=(5.0, 95.0), fig=None):
    """Regimens side by side (columns) for each variable (rows): the patient's typical
    course (thick line), the cohort's median (dashed) and its percentile band.

    Rows share the y axis, so the regimens compare at a glance. Returns the Figure.
    """
    names = list(whatif.typical)
    nrow, ncol = len(variables), len(names)
    if fig is None:
        fig, axes = new_axes(nrow, ncol, figsize=(4.2 * ncol, 2.5 * nrow + 0.6),
                             sharex=True, sharey="row")
    else:
        axes = np.asarray(fig.subplots(nrow, ncol, squeeze=False, sharex=True, sharey="row"))
    for j, name in enumerate(names):
        typ = whatif.typical[name]
        traj = whatif.cohorts[name].trajectories
        sc = whatif.scenarios[name]
        colour = PALETTE[j % len(PALETTE)]
        for i, var in enumerate(variables):
            ax = axes[i, j]
            y = np.asarray(traj[var].transpose("patient", "time").values, dtype=float)
            t = traj["time"].values
            lo, hi = np.nanpercentile(y, bands, axis=0)
            ax.fill_between(t, lo, hi, color=colour, alpha=0.2, linewidth=0,
                            label=f"cohort {bands[0]:g}-{bands[1]:g}th pct (n={y.shape[0]})")
            ax.plot(t, np.nanmedian(y, axis=0), color=colour, linestyle="--", linewidth=1.2,
                    label="cohort median")
            ax.plot(typ["time"].values, typ[var].values[0], color=colour, linewidth=2.0,
                    label="this patient, typical")
            ax.set_xlim(xlim)
            set_yscale(ax, np.concatenate([y.ravel(), typ[var].values[0]]), var)
            mark_regimen(ax, regimen=sc.regimen, text=(i == 0))
            ax.grid(alpha=0.25)
            if j == 0:
                ax.set_ylabel(label(traj[var], var), fontsize=8)
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
