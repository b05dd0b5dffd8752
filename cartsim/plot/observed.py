"""Observed data for plots: a simple long-format convention and its overlay on trajectories.

The convention (one row per measurement; an :class:`xarray.Dataset` with dim ``obs``, or a
:class:`pandas.DataFrame` with these columns):

========== ======== ==========================================================================
column     units    meaning
========== ======== ==========================================================================
``time``   day      days since CAR-T infusion (the simulation's time axis)
``value``  analyte  measured value; for a BLQ sample anything (NaN is fine), it is not drawn
``analyte``         name of the simulated variable it compares to (``car_copies_per_ug``, ...)
``units``           units of ``value``; must equal the simulated variable's ``units``
``lloq``   analyte  lower limit of quantification (NaN: none)
``blq``    bool     below the LLOQ (optional: derived as ``value < lloq`` or NaN ``value``)
``patient``         optional patient id (select one patient's rows before plotting)
========== ======== ==========================================================================

BLQ samples are drawn as censored: an open down-triangle at the LLOQ ("somewhere below
here"), never as a value. :func:`observed_data` builds and checks such a Dataset. The
fitting reader (:mod:`cartsim.fitting`) reads NONMEM-like files with more columns; this is
the minimal form the plots need.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from cartsim.plot._common import pretty_units

COLUMNS = ("time", "value", "analyte", "units", "lloq", "blq")
"""Variables of an observed-data Dataset (``patient`` optional)."""


def observed_data(time, value, analyte, units, lloq=np.nan, blq=None,
                  patient=None) -> xr.Dataset:
    """Observed measurements as a Dataset with dim ``obs`` (the plots' convention).

    Parameters
    ----------
    time : array_like of float
        Days since CAR-T infusion.
    value : array_like of float
        Measured values (NaN allowed for BLQ samples).
    analyte, units : str or array_like of str
        Simulated variable each row compares to, and the units of ``value``.
    lloq : float or array_like of float
        Lower limit of quantification per row (NaN: none).
    blq : array_like of bool, optional
        Below-LLOQ flags; default ``value < lloq`` or ``value`` NaN.
    patient : array_like, optional
        Patient id per row.

    Returns
    -------
    xarray.Dataset
        Variables ``time``, ``value``, ``analyte``, ``units``, ``lloq``, ``blq``
        (and ``patient``), dim ``obs``.
    """
    t = np.atleast_1d(np.asarray(time, dtype=float))
    n = t.size
    v = np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
    lq = np.broadcast_to(np.asarray(lloq, dtype=float), (n,)).copy()
    if blq is None:
        with np.errstate(invalid="ignore"):
            flag = np.isnan(v) | (v < lq)
    else:
        flag = np.broadcast_to(np.asarray(blq, dtype=bool), (n,)).copy()
    data = {
        "time": ("obs", t, {"units": "day", "long_name": "days since CAR-T infusion"}),
        "value": ("obs", v, {"long_name": "observed value"}),
        "analyte": ("obs", np.broadcast_to(np.asarray(analyte, dtype=str), (n,)).copy()),
        "units": ("obs", np.broadcast_to(np.asarray(units, dtype=str), (n,)).copy()),
        "lloq": ("obs", lq, {"long_name": "lower limit of quantification"}),
        "blq": ("obs", flag, {"long_name": "below the lower limit of quantification"}),
    }
    if patient is not None:
        data["patient_id"] = ("obs", np.broadcast_to(np.asarray(patient), (n,)).copy())
    return as_observed(xr.Dataset(data))


def as_observed(obs) -> xr.Dataset:
    """Check observed data (Dataset or DataFrame) against the convention; fill ``blq``."""
    if not isinstance(obs, xr.Dataset):
        try:
            obs = xr.Dataset.from_dataframe(obs.reset_index(drop=True)).rename(index="obs")
        except AttributeError:
            raise TypeError(f"observed data must be an xarray.Dataset or a pandas.DataFrame, "
                            f"not {type(obs).__name__}") from None
    missing = [c for c in ("time", "value", "analyte", "units") if c not in obs]
    if missing:
        raise ValueError(f"observed data lacks the column(s) {', '.join(missing)}; expected "
                         f"{', '.join(COLUMNS)} (see cartsim.plot.observed)")
    dim = obs["time"].dims[0] if obs["time"].dims else "obs"
    n = obs.sizes.get(dim, 1)
    if "lloq" not in obs:
        obs = obs.assign(lloq=(dim, np.full(n, np.nan)))
    if "blq" not in obs:
        v, lq = obs["value"].values.astype(float), obs["lloq"].values.astype(float)
        with np.errstate(invalid="ignore"):
            obs = obs.assign(blq=(dim, np.isnan(v) | (v < lq)))
    t = obs["time"].values.astype(float)
    if not np.isfinite(t).all():
        i = int(np.flatnonzero(~np.isfinite(t))[0])
        raise ValueError(f"observed data row {i}: time={t[i]!r}; expected finite days since "
                         "CAR-T infusion")
    bad = ~np.asarray(obs["blq"].values, dtype=bool) & ~np.isfinite(
        obs["value"].values.astype(float))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"observed data row {i}: value is not finite and blq is False; "
                         "expected a number, or blq=True for a sample below the LLOQ")
    return obs


def overlay_observed(ax, obs, analyte: str, *, units: str | None = None, color="black",
                     label: str = "observed"):
    """Draw the observed rows of ``analyte`` on ``ax``: values as filled circles, BLQ
    samples as open down-triangles at their LLOQ (censored), and the LLOQ as a dotted line.

    ``units``, when given, must equal the rows' units (a mismatch is an error, not a silent
    rescaling). Returns the Axes.
    """
    obs = as_observed(obs)
    rows = np.asarray(obs["analyte"].values, dtype=str) == analyte
    if not rows.any():
        return ax
    t = obs["time"].values.astype(float)[rows]
    v = obs["value"].values.astype(float)[rows]
    lq = obs["lloq"].values.astype(float)[rows]
    blq = np.asarray(obs["blq"].values, dtype=bool)[rows]
    obs_units = sorted(set(np.asarray(obs["units"].values, dtype=str)[rows]))
    if units is not None and obs_units != [str(units)]:
        raise ValueError(f"observed {analyte} is in {', '.join(obs_units)} but the simulation "
                         f"is in {units}; convert the observed values first")
    ax.plot(t[~blq], v[~blq], linestyle="none", marker="o", markersize=4.5, color=color,
            markeredgecolor="white", markeredgewidth=0.5, zorder=5, label=label)
    if blq.any():
        ax.plot(t[blq], lq[blq], linestyle="none", marker="v", markersize=6, color=color,
                markerfacecolor="none", markeredgewidth=1.1, zorder=5,
                label=f"{label}, below LLOQ")
    finite = lq[np.isfinite(lq)]
    if finite.size and np.allclose(finite, finite[0]):
        ax.axhline(finite[0], color=color, linestyle=":", linewidth=0.8, zorder=1,
                   label=f"LLOQ {finite[0]:g} {pretty_units(obs_units[0])}")
    return ax
