"""Per-patient clinical endpoints of a simulation Dataset: ``endpoints(ds) -> xarray.Dataset``.

The pipeline, vectorised over (patient, time):

1. take the observables from day 0 (infusion) on (:func:`~cartsim.clinical._common.day0_grid`);
2. draw each patient's death from the hazard model (:mod:`cartsim.clinical.survival`);
3. mark what was observed: a successful solve, at or before death;
4. read the endpoints off the observed trajectories: cellular kinetics and
   pharmacodynamics (:mod:`~cartsim.clinical.kinetics`), response and relapse
   (:mod:`~cartsim.clinical.response`), surrogate CRS/ICANS and cytopenias
   (:mod:`~cartsim.clinical.safety`), survival times (:mod:`~cartsim.clinical.survival`).

The trajectories are read on the endpoint grid (daily, whatever the output grid:
:func:`cartsim.simulation.on_endpoint_grid`), so the endpoints do not depend on
``output.dt``. A Dataset made by hand without an endpoint grid is read on its own
times; a grid coarser than daily after day 0 then draws a :class:`cartsim.CartsimWarning`.

A patient whose solve failed (``status != 0``) is not evaluable: its endpoints
are NaN (times, levels), False (events) or -1 (categories; 0 for the
extramedullary response). An endpoint read at an assessment day or over a window
(day 28, month 3 or 6, days 0-91, month 1 or 3, AUC0-28) whose day the follow-up does
not reach is *not estimable*: it holds the same fill values for every patient, its
attributes say why (``needs_follow_up_day``, ``not_estimable``), and
:func:`estimable` is False; reports count it apart instead of scoring a false zero.
Names and meanings are the endpoint contract read by the trial report; every variable
has ``units`` and ``long_name``.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
import yaml

from cartsim.clinical._common import FOLLOW_UP_ATTR, NOT_EVALUABLE, Track, Var, day0_grid
from cartsim.clinical.kinetics import cellular_kinetics, pharmacodynamics
from cartsim.clinical.response import extramedullary_response, marrow_response
from cartsim.clinical.safety import cytokine_toxicity, cytopenias, surrogate_note
from cartsim.clinical.settings import EndpointSettings
from cartsim.clinical.survival import (
    cumulative_hazard,
    death_day,
    death_mechanism,
    exponential_thresholds,
    hazards,
    survival,
)
from cartsim.grid import ENDPOINT_STEP_DAYS, ENDPOINT_VARIABLES, on_endpoint_grid

REQUIRED = ENDPOINT_VARIABLES
"""Observables (patient, time) the endpoints read; ``status`` is needed too. The simulation
keeps them on the endpoint grid whatever the output grid
(:data:`cartsim.simulation.ENDPOINT_VARIABLES`)."""

DEATH_NOTE = (
    "Deaths are drawn from a per-patient hazard (1/day) integrated from day 0 (trapezoid): "
    "leukemia hazard rising with marrow blast fraction and extramedullary volume (Hill) from "
    "day 14 (endpoints.death.leukemia_onset_day), infection hazards while ANC < the grade-4 "
    "threshold (growing with its duration) and during CD7+ T-cell aplasia, fatal CRS while "
    "IL-6 is in the grade-4 range, and "
    "transplant-related mortality after hsct_day when present; death at the first time the "
    "cumulative hazard exceeds -ln(1-U), U ~ Uniform(0,1): the k-th draw of numpy "
    "default_rng(death_seed) for patient index k, death_seed the death stream of the run "
    "seed (cartsim.randomness.death_seed). Nothing after death counts, except the "
    "CAR-T Cmax, Tmax, AUC0-28 and expansion, read off the whole trajectory (death flag beside).")


def endpoints(ds: xr.Dataset, settings: EndpointSettings | None = None, *,
              seed: int | None = None) -> xr.Dataset:
    """Clinical endpoints of every patient of a simulation Dataset.

    Parameters
    ----------
    ds : the Dataset of :func:`cartsim.simulate` (dims ``patient`` x ``time``, days
        since CAR-T infusion), with the observables in :data:`REQUIRED` (read on its
        endpoint grid when it has one, see the module notes), ``status`` and optionally
        ``hsct_day`` (day of an allogeneic HSCT per patient, NaN: none).
    settings : assay limits, response criteria, surrogate thresholds and death model;
        defaults to ``EndpointSettings()``.
    seed : seed of the death draws; default: the death stream of the run seed
        ``ds.attrs["seed"]`` (:func:`cartsim.randomness.death_seed`), the very draws
        :func:`cartsim.run_trial` and :func:`cartsim.run_sweep` give the same patient.

    Returns
    -------
    xarray.Dataset
        Dim ``patient``; the variables of the endpoint contract, each with
        ``units`` and ``long_name``; attrs ``settings`` (YAML), ``surrogate_note``,
        ``seed`` (the run seed, or ``seed`` when given), ``death_seed``, and the
        simulation's ``config``, ``model``, ``cartsim_version``.

    Raises
    ------
    ValueError
        A required variable is missing, a successful patient has non-finite values,
        the grid has fewer than two times from day 0 on, or no seed is available.
    """
    s = EndpointSettings() if settings is None else settings
    if not isinstance(s, EndpointSettings):
        raise TypeError(f"settings must be an EndpointSettings, not {type(s).__name__}")
    seed, death = _seed(ds, seed)
    on_grid = "endpoint_time" in ds.dims
    ds = on_endpoint_grid(ds)
    missing = [v for v in (*REQUIRED, "status") if v not in ds]
    if missing:
        raise ValueError(f"endpoints() needs the variables {', '.join(missing)}, missing from "
                         f"the Dataset (model {ds.attrs.get('model', '?')!r}); it reads "
                         f"{', '.join(REQUIRED)} and status")
    t = np.asarray(ds["time"].values, dtype=float)
    if not (np.isfinite(t).all() and (np.diff(t) > 0).all()):
        raise ValueError("the Dataset's time coordinate must be finite and strictly increasing "
                         f"(days since CAR-T infusion); got {t[:5]}...")
    status = np.asarray(ds["status"].values, dtype=np.int64)
    evaluable = status == 0
    raw = {v: _matrix(ds, v, evaluable) for v in REQUIRED}
    tt, x = day0_grid(t, raw)
    if not on_grid and tt.size > 1 and np.diff(tt).max() > ENDPOINT_STEP_DAYS + 1e-9:
        from cartsim import CartsimWarning

        warnings.warn(f"endpoints() reads an output grid with steps up to "
                      f"{np.diff(tt).max():g} days after day 0 and no endpoint grid: peaks, "
                      "crossings and durations are those of the sampled times, not of the "
                      "trajectory; simulate with cartsim.simulate, whose Datasets carry the "
                      "daily endpoint grid whatever output.dt", CartsimWarning, stacklevel=2)

    hsct = np.asarray(ds["hsct_day"].values, dtype=float) if "hsct_day" in ds else None
    h = hazards(tt, x, s)
    died = death_day(tt, cumulative_hazard(tt, x, hsct, s, h),
                     exponential_thresholds(death, ds["patient"].values))
    died = np.where(evaluable, died, np.nan)
    until = np.where(evaluable, np.fmin(died, tt[-1]), -np.inf)
    tr = Track(tt, x, evaluable[:, None] & (tt[None, :] <= until[:, None]), until)
    # cellular kinetics are read off the whole trajectory (what the patient's CAR-T
    # cells did), not cut at a drawn death; ``death``/``death_day`` stand beside them
    full = Track(tt, x, np.broadcast_to(evaluable[:, None], (evaluable.size, tt.size)),
                 np.where(evaluable, tt[-1], -np.inf))

    out: dict[str, Var] = {}
    out.update(cellular_kinetics(tr, s, full))
    out.update(marrow_response(tr, s))
    out.update(extramedullary_response(tr, raw["em_volume_cm3"][:, 0], s))
    out.update(cytokine_toxicity(tr, s))
    out.update(cytopenias(tr, s))
    out.update(pharmacodynamics(tr, s, raw["flu_auc"][:, -1]))
    out.update(survival(float(tt[-1]), died, out["response_day"].data,
                        out["relapse_day"].data, out["progression_day"].data))
    out["death_mechanism"] = death_mechanism(tt, h, hsct, died, s)

    dims = ("patient",)
    data_vars = {
        "status": (dims, status, {"units": "1", "long_name": ds["status"].attrs.get(
            "long_name", "solver status (0 success)")}),
        "status_name": (dims, np.asarray(ds["status_name"].values) if "status_name" in ds
                        else status.astype(str), {"units": "1", "long_name": "solver status"}),
        "evaluable": (dims, evaluable, {"units": "1",
                                        "long_name": "endpoints evaluable (solver status 0)"}),
        "follow_up_day": (dims, np.full(status.size, tt[-1]), {
            "units": "day", "long_name": "end of follow-up (last output time; censoring day)"}),
    }
    follow_up = float(tt[-1])
    for name, var in out.items():
        need = var.attrs.get(FOLLOW_UP_ATTR)
        attrs = var.attrs
        if need is not None and follow_up < need - 1e-9:
            attrs = {**attrs, "not_estimable": _reason(follow_up, need)}
            data_vars[name] = (dims, _fill(var, np.zeros_like(evaluable)), attrs)
        else:
            data_vars[name] = (dims, _fill(var, evaluable), attrs)
    attrs = {
        "title": "cartsim clinical endpoints",
        "settings": yaml.safe_dump(s.to_dict(), sort_keys=False),
        "surrogate_note": surrogate_note(s),
        "death_model_note": DEATH_NOTE,
        "seed": int(seed),
        "death_seed": int(death),
        "conventions": "CF-1.8 style units and long_name on every variable; times in days "
                       "since CAR-T infusion; month = 30.4375 days",
    }
    for key in ("config", "model", "cartsim_version"):
        if key in ds.attrs:
            attrs[key] = ds.attrs[key]
    coords = {"patient": ds["patient"]} if "patient" in ds.coords else None
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _reason(follow_up: float, need: float) -> str:
    return f"follow-up ends day {follow_up:g} < day {need:g}"


def estimable(ep: xr.Dataset, name: str) -> np.ndarray:
    """(patient,) bool: where endpoint ``name`` of an endpoints Dataset counts.

    False for a patient whose solve failed (``evaluable``) and, for an endpoint that needs
    the follow-up to reach a day (attribute ``needs_follow_up_day``), where
    ``follow_up_day`` ends before it. Rates and medians are taken over these patients only.
    """
    n = ep.sizes["patient"]
    if "evaluable" in ep:
        ok = np.asarray(ep["evaluable"].values).astype(float) == 1.0
    elif "status" in ep:
        ok = np.asarray(ep["status"].values) == 0
    else:
        ok = np.ones(n, dtype=bool)
    need = ep[name].attrs.get(FOLLOW_UP_ATTR) if name in ep else None
    if need is not None and "follow_up_day" in ep:
        ok = ok & (np.asarray(ep["follow_up_day"].values, dtype=float) >= float(need) - 1e-9)
    return ok


def not_estimable_reason(ep: xr.Dataset, name: str) -> str:
    """Why endpoint ``name`` is not estimable for any patient ("" when some have it):
    ``"follow-up ends day 10 < day 28"`` or ``"no evaluable patient (every solve failed)"``."""
    ok = estimable(ep, name)
    if ok.any():
        return ""
    need = ep[name].attrs.get(FOLLOW_UP_ATTR) if name in ep else None
    if need is not None and "follow_up_day" in ep and ep.sizes["patient"]:
        fu = float(np.nanmax(np.asarray(ep["follow_up_day"].values, dtype=float)))
        if fu < float(need) - 1e-9:
            return _reason(fu, float(need))
    return "no evaluable patient (every solve failed)" if ep.sizes["patient"] else "no patient"


def _seed(ds: xr.Dataset, seed: int | None) -> tuple[int, int]:
    """``(seed, death_seed)``: a given ``seed`` is the death draws' own seed; without one,
    the death stream of the run seed in ``ds.attrs["seed"]``."""
    from cartsim.randomness import death_seed

    derived = seed is None
    if derived:
        if "seed" not in ds.attrs:
            raise ValueError("endpoints() needs a seed for the death draws: pass seed=... or "
                             "give the Dataset a 'seed' attribute (cartsim.simulate does)")
        seed = ds.attrs["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is not accepted: expected a non-negative integer")
    return int(seed), (death_seed(int(seed)) if derived else int(seed))


def _matrix(ds: xr.Dataset, name: str, evaluable: np.ndarray) -> np.ndarray:
    """(patient, time) float array; non-evaluable rows zeroed; non-finite values rejected."""
    a = np.asarray(ds[name].transpose("patient", "time").values, dtype=float)
    if evaluable.all() and np.isfinite(a).all():
        return a  # read only from here on: no copy needed
    bad = evaluable[:, None] & ~np.isfinite(a)
    if bad.any():
        p, k = np.argwhere(bad)[0]
        raise ValueError(f"variable {name!r} of patient {p} is {a[p, k]} at day "
                         f"{float(ds['time'].values[k]):g} although its solve succeeded "
                         "(status 0); expected finite values")
    return np.where(evaluable[:, None], a, 0.0)


def _fill(var: Var, evaluable: np.ndarray) -> np.ndarray:
    """Values with non-evaluable patients set to NaN / False / the category's fill."""
    data = var.data
    if data.dtype == bool:
        return data & evaluable
    if data.dtype.kind in "iu":
        return np.where(evaluable, data, NOT_EVALUABLE if var.fill is None else var.fill)
    return np.where(evaluable, data, np.nan)
