"""Trajectories of a simulation Dataset: one or several patients, or a cohort's bands.

* :func:`trajectory` - one variable, one line per patient, regimen marked, observed overlaid;
* :func:`trajectories` - several variables, one panel each (a Figure);
* :func:`cohort` - a virtual cohort as spaghetti and percentile bands around the median.

Log scales are chosen where the values span more than two decades (CAR copies, cells,
blasts, cytokines); see :func:`cartsim.plot._common.set_yscale`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from cartsim.plot._common import (
    COLOURS,
    DAY_LABEL,
    PALETTE,
    label,
    mark_regimen,
    new_axes,
    one_axes,
    patient_labels,
    require,
    set_yscale,
)
from cartsim.plot.observed import overlay_observed

DEFAULT_VARIABLES = ("car_copies_per_ug", "marrow_blast_pct", "il6", "t_cd7pos_per_ul")
"""What :func:`trajectories` draws by default: CAR-T, blasts, IL-6, normal CD7+ T cells."""


def _matrix(ds: xr.Dataset, variable: str) -> np.ndarray:
    da = ds[variable]
    if "patient" not in da.dims:
        da = da.expand_dims("patient")
    return np.asarray(da.transpose("patient", "time").values, dtype=float)


def _finish(ax, ds, variable, values, *, yscale, xlim, regimen, mark):
    ax.set_xlabel(DAY_LABEL)
    ax.set_ylabel(label(ds[variable], variable))
    set_yscale(ax, values, variable, yscale)
    t = ds["time"].values
    ax.set_xlim(xlim if xlim is not None else (float(t[0]), float(t[-1])))
    if mark:
        mark_regimen(ax, ds, regimen=regimen)
    ax.grid(alpha=0.25, which="major")


def trajectory(ds: xr.Dataset, variable: str = "car_copies_per_ug", ax=None, *,
               labels: Sequence[str] | None = None, observed=None, regimen=None,
               mark: bool = True, yscale: str = "auto", xlim=None, color=None,
               legend: bool | None = None):
    """Draw one variable of every patient of ``ds`` against time.

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`cartsim.simulate` result (dims ``patient``, ``time``).
    variable : str
        Variable to draw; its ``units`` label the y axis.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    labels : sequence of str, optional
        Legend label per patient (default ``patient <id>``; no legend for one patient).
    observed : xarray.Dataset or pandas.DataFrame, optional
        Observed data (:mod:`cartsim.plot.observed` convention); rows of ``variable`` are
        overlaid, BLQ rows as open triangles at the LLOQ.
    regimen : Regimen or mapping, optional
        Lymphodepletion and infusion days to mark (default: from ``ds.attrs["config"]``).
    mark : bool
        Mark lymphodepletion and CAR-T infusion.
    yscale : {"auto", "log", "linear"}
        ``auto`` is log when the values span more than two decades.
    xlim : (float, float), optional
        Days shown (default: the whole simulation).
    color : colour, optional
        Line colour (default: the variable's colour for one patient, a palette for several).
    legend : bool, optional
        Draw a legend (default: with several patients or observed data).

    Returns
    -------
    matplotlib.axes.Axes
    """
    require(ds, [variable], "trajectory()")
    ax = one_axes(ax)
    y = _matrix(ds, variable)
    names = patient_labels(ds, labels) if y.shape[0] > 1 or labels is not None else [None]
    t = ds["time"].values
    for i, row in enumerate(y):
        c = color or (COLOURS.get(variable, PALETTE[0]) if y.shape[0] == 1
                      else PALETTE[i % len(PALETTE)])
        ax.plot(t, row, color=c, linewidth=1.6, label=names[i] if i < len(names) else None)
    values = y
    if observed is not None:
        overlay_observed(ax, observed, variable, units=ds[variable].attrs.get("units"))
        obs_v = np.asarray(observed["value"], dtype=float)
        values = np.concatenate([y.ravel(), obs_v[np.isfinite(obs_v)]])
    _finish(ax, ds, variable, values, yscale=yscale, xlim=xlim, regimen=regimen, mark=mark)
    if legend or (legend is None and (y.shape[0] > 1 or labels is not None
                                      or observed is not None)):
        ax.legend(fontsize=8, frameon=False)
    return ax


def trajectories(ds: xr.Dataset, variables: Sequence[str] = DEFAULT_VARIABLES, *,
                 axes=None, ncols: int = 2, observed=None, labels=None, regimen=None,
                 xlim=None, yscale: str = "auto", title: str | None = None):
    """Several variables of ``ds``, one panel each, sharing the time axis.

    Parameters are those of :func:`trajectory`; ``axes`` is an optional sequence of Axes
    (one per variable) and ``ncols`` the number of columns of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    variables = [variables] if isinstance(variables, str) else list(variables)
    require(ds, variables, "trajectories()")
    if axes is None:
        ncols = max(1, min(ncols, len(variables)))
        nrows = -(-len(variables) // ncols)
        fig, grid = new_axes(nrows, ncols, figsize=(4.6 * ncols, 3.0 * nrows), sharex=True)
        axes = list(grid.ravel())
        for extra in axes[len(variables):]:
            extra.set_visible(False)
    else:
        axes = list(np.ravel(axes))
        if len(axes) < len(variables):
            raise ValueError(f"axes has {len(axes)} Axes for {len(variables)} variables")
        fig = axes[0].figure
    for k, (var, ax) in enumerate(zip(variables, axes)):
        trajectory(ds, var, ax, labels=labels, observed=observed, regimen=regimen,
                   xlim=xlim, yscale=yscale, legend=(k == 0 and (
                       ds.sizes.get("patient", 1) > 1 or labels is not None))
                   or (observed is not None and var in np.asarray(observed["analyte"])))
    if title:
        fig.suptitle(title)
    return fig


def cohort(ds: xr.Dataset, variable: str = "car_copies_per_ug", ax=None, *,
           bands: Sequence[tuple[float, float]] = ((5.0, 95.0), (25.0, 75.0)),
           spaghetti: int = 30, color=None, label_text: str | None = None, observed=None,
           regimen=None, mark: bool = True, yscale: str = "auto", xlim=None):
    """A virtual cohort: thin individual lines ("spaghetti"), percentile bands and the median.

    Percentiles are over the patients at each time, ignoring failed solves (NaN).

    Parameters
    ----------
    ds : xarray.Dataset
        Trajectories of a cohort (e.g. ``run_trial(..., options=TrialOptions(
        save_trajectories=True)).trajectories``).
    variable : str
        Variable to draw.
    ax : matplotlib.axes.Axes, optional
        Where to draw.
    bands : sequence of (lower, upper) percentiles
        Shaded bands, outermost first (default 5-95 and 25-75).
    spaghetti : int
        Number of individual trajectories drawn (evenly spaced over the patients; 0: none).
    color : colour, optional
        Colour of bands and median (default: the variable's colour).
    label_text : str, optional
        Prefix of the legend entries (e.g. the regimen's name).
    observed, regimen, mark, yscale, xlim
        As in :func:`trajectory`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    require(ds, [variable], "cohort()")
    ax = one_axes(ax)
    y = _matrix(ds, variable)
    y = y[np.isfinite(y).any(axis=1)]
    t = ds["time"].values
    c = color or COLOURS.get(variable, PALETTE[0])
    prefix = f"{label_text}: " if label_text else ""
    n = y.shape[0]
    if spaghetti and n:
        pick = np.unique(np.linspace(0, n - 1, min(spaghetti, n)).round().astype(int))
        for row in y[pick]:
            ax.plot(t, row, color=c, alpha=0.18, linewidth=0.6, zorder=2)
    if n:
        alphas = np.linspace(0.15, 0.3, len(bands)) if bands else []
        for (lo, hi), a in zip(bands, alphas):
            plo, phi = np.nanpercentile(y, [lo, hi], axis=0)
            ax.fill_between(t, plo, phi, color=c, alpha=a, linewidth=0, zorder=3,
                            label=f"{prefix}{lo:g}-{hi:g}th percentile")
        ax.plot(t, np.nanmedian(y, axis=0), color=c, linewidth=2.0, zorder=4,
                label=f"{prefix}median (n={n})")
    values = y
    if observed is not None:
        overlay_observed(ax, observed, variable, units=ds[variable].attrs.get("units"))
    _finish(ax, ds, variable, values, yscale=yscale, xlim=xlim, regimen=regimen, mark=mark)
    ax.legend(fontsize=7, frameon=False)
    return ax
