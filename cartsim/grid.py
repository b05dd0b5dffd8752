"""The two time grids of a simulation: what is stored and what the endpoints read.

The *output grid* (``output.t_start/t_end/dt`` or ``output.times``) is what a Dataset
stores; the *endpoint grid* (:func:`endpoint_times`: every :data:`ENDPOINT_STEP_DAYS` day
from the first to the last output time) is what the clinical endpoints read. Engines record
both (:func:`record_times`), store the output grid (:func:`on_output_grid`) and, when the
two differ, the :data:`ENDPOINT_VARIABLES` on the endpoint grid; :func:`on_endpoint_grid`
gives the endpoints' view back. A low layer: numpy, xarray and the scenario only, so that
the engines and the endpoints both import it (``cartsim.simulation`` re-exports it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from cartsim.scenario import Scenario

__all__ = ["ENDPOINT_STEP_DAYS", "ENDPOINT_VARIABLES", "endpoint_times", "on_endpoint_grid",
           "on_output_grid", "output_times", "record_times"]


ENDPOINT_STEP_DAYS = 1.0
"""Step (day) of the endpoint grid: daily assessments, the default output step, so that the
endpoints at the default output settings are those read off the default output grid."""

ENDPOINT_VARIABLES = ("car_copies_per_ug", "car_cells_per_ul", "marrow_blast_pct",
                      "blast_cd7neg_pct", "em_volume_cm3", "t_cd7pos_per_ul", "anc_per_ul",
                      "il6", "ifng", "il10", "tnfa", "flu_auc")
"""Observables (patient, time) the clinical endpoints read (``cartsim.clinical.endpoints``),
kept on the endpoint grid whatever the output grid."""


def _regular(t_start: float, t_end: float, dt: float) -> np.ndarray:
    n = int(np.floor((t_end - t_start) / dt + 1e-9)) + 1
    t = t_start + dt * np.arange(n)
    if t[-1] < t_end - 1e-9:
        t = np.append(t, t_end)
    return t


def output_times(scenario: Scenario) -> np.ndarray:
    """The output grid (days) of a scenario."""
    out = scenario.output
    if out.times is not None:
        return np.asarray(out.times, dtype=np.float64)
    return _regular(out.t_start, out.t_end, out.dt)


def endpoint_times(scenario: Scenario) -> np.ndarray:
    """The endpoint grid (days): every ``ENDPOINT_STEP_DAYS`` from the first output time,
    and the last output time (the end of follow-up) -- the output grid of ``output.dt=1``."""
    t = output_times(scenario)
    return _regular(float(t[0]), float(t[-1]), ENDPOINT_STEP_DAYS)


def record_times(t_out: np.ndarray, t_endpoint: np.ndarray) -> np.ndarray:
    """The times an engine records: the output grid and the endpoint grid together."""
    if np.array_equal(t_out, t_endpoint):
        return t_out
    return np.union1d(t_out, t_endpoint)


def _rows(t: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    k = np.searchsorted(t, wanted)
    if not (k.size == 0 or (k[-1] < t.size and np.array_equal(t[k], wanted))):
        raise ValueError("the recorded times do not hold every output and endpoint time")
    return k


def on_output_grid(ds: xr.Dataset, t_out: np.ndarray, t_endpoint: np.ndarray,
                   variables: Sequence[str] | None = None) -> xr.Dataset:
    """A Dataset recorded on ``record_times(t_out, t_endpoint)`` -> stored on ``t_out``.

    When ``t_out`` is not the endpoint grid itself, the :data:`ENDPOINT_VARIABLES` present
    are added on the endpoint grid (``endpoint_<name>``, dim ``endpoint_time``).
    ``variables``: the (patient, time) variables to keep on the output grid (None: all).
    """
    t = np.asarray(ds["time"].values)
    extra = {}
    if not np.array_equal(t_out, t_endpoint):
        k = _rows(t, t_endpoint)
        for name in ENDPOINT_VARIABLES:
            if name in ds:
                da = ds[name].isel(time=k)
                extra[f"endpoint_{name}"] = (
                    tuple("endpoint_time" if d == "time" else d for d in da.dims), da.values,
                    {**da.attrs, "long_name": f"{da.attrs.get('long_name', name)} (endpoint "
                                              "grid: what the clinical endpoints read)"})
    if variables is not None:
        drop = [v for v, da in ds.data_vars.items() if "time" in da.dims and v not in variables]
        ds = ds.drop_vars(drop)
    if not np.array_equal(t, t_out):
        ds = ds.isel(time=_rows(t, t_out))
    if extra:
        ds = ds.assign_coords(endpoint_time=("endpoint_time", np.asarray(t_endpoint), {
            "units": "day", "long_name": f"endpoint grid: days since CAR-T infusion, every "
                                         f"{ENDPOINT_STEP_DAYS:g} day to the end of follow-up"}))
        ds = ds.assign(extra)
    return ds


def on_endpoint_grid(ds: xr.Dataset) -> xr.Dataset:
    """The Dataset as the endpoints read it: the :data:`ENDPOINT_VARIABLES` on the endpoint
    grid under their own names (dim ``time``), per-patient variables kept.

    ``ds`` itself when its output grid is the endpoint grid (no ``endpoint_time`` dim), e.g.
    at the default output settings or for a Dataset made by hand.
    """
    if "endpoint_time" not in ds.dims:
        return ds
    keep = {v: da for v, da in ds.data_vars.items()
            if "time" not in da.dims and "endpoint_time" not in da.dims}
    for name in ENDPOINT_VARIABLES:
        if f"endpoint_{name}" in ds:
            da = ds[f"endpoint_{name}"]
            keep[name] = (tuple("time" if d == "endpoint_time" else d for d in da.dims),
                          da.values, ds[name].attrs if name in ds else da.attrs)
    coords = {k: v for k, v in ds.coords.items() if "time" not in v.dims
              and "endpoint_time" not in v.dims}
    coords["time"] = ("time", ds["endpoint_time"].values, ds["endpoint_time"].attrs)
    return xr.Dataset(keep, coords=coords, attrs=ds.attrs)
