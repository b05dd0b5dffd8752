"""Cohort-level clinical figures from endpoints and trajectories.

* :func:`swimmer` - one lane per patient: follow-up coloured by best response, with
  remission, relapse (CD7+ or CD7-negative), progression and death marked;
* :func:`waterfall` - deepest marrow blast reduction per patient, sorted;
* :func:`endpoint_bars` - endpoint probabilities with exact 95% CIs, side by side for
  several cohorts (e.g. two regimens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from cartsim.plot._common import PALETTE, one_axes, require
from cartsim.plot.km import MONTH_DAYS

RESPONSE_STYLE = {2: ("CR", "#1e8449"), 1: ("CRi", "#82e0aa"), 0: ("no response", "#b3b6b7")}
"""Best response code -> (name, lane colour)."""

DEPTH_STYLE = (("no remission (nadir >= 5%)", "#b3b6b7"),
               ("remission, MRD+ (< 5%)", "#82e0aa"),
               ("flow MRD-negative (< 0.01%)", "#1e8449"))


def swimmer(endpoints: xr.Dataset, ax=None, *, max_patients: int = 40, unit: str = "months",
            sort_by: str = "os_day"):
    """Swimmer plot of responses, relapses and deaths.

    Each evaluable patient is a horizontal lane from infusion to the end of follow-up or
    death (``os_day``), coloured by best marrow response; markers: first remission
    (triangle), relapse (circle: CD7+, diamond: CD7-negative), progression (cross), death
    (black square); an arrow where the patient is alive at the end of follow-up.

    Parameters
    ----------
    endpoints : xarray.Dataset
        :func:`cartsim.endpoints` or ``TrialResult.endpoints``.
    ax : matplotlib.axes.Axes, optional
    max_patients : int
        Lanes drawn (the first ``max_patients`` evaluable patients).
    unit : {"months", "days"}
    sort_by : str
        Endpoint variable that orders the lanes (longest at the top).

    Returns
    -------
    matplotlib.axes.Axes
    """
    need = ("best_response", "response_day", "relapse_day", "relapse_cd7neg",
            "progression_day", "death", "os_day", sort_by)
    require(endpoints, need, "swimmer()")
    scale = MONTH_DAYS if unit == "months" else 1.0
    ep = endpoints
    if "evaluable" in ep:
        ep = ep.isel(patient=np.flatnonzero(np.asarray(ep["evaluable"].values, dtype=bool)))
    ep = ep.isel(patient=slice(0, max_patients))
    n = ep.sizes["patient"]
    order = np.argsort(np.nan_to_num(np.asarray(ep[sort_by].values, dtype=float), nan=-1),
                       kind="stable")
    ep = ep.isel(patient=order)
    ax = one_axes(ax, figsize=(7.0, max(3.0, 0.18 * n + 1.5)))
    get = {v: np.asarray(ep[v].values) for v in need}
    y = np.arange(n)
    end = get["os_day"].astype(float) / scale
    colours = [RESPONSE_STYLE.get(int(r), ("?", "#d5d8dc"))[1] for r in get["best_response"]]
    ax.barh(y, end, height=0.7, color=colours, edgecolor="none", zorder=2)
    marks = (
        (get["response_day"], "^", "#145a32", "first remission (< 5% blasts)", None),
        (np.where(get["relapse_cd7neg"], np.nan, get["relapse_day"]), "o", "#c0392b",
         "CD7+ relapse", None),
        (np.where(get["relapse_cd7neg"], get["relapse_day"], np.nan), "D", "#8e44ad",
         "CD7-negative relapse", None),
        (get["progression_day"], "X", "#c0392b", "progression", None),
        (np.where(get["death"], get["os_day"], np.nan), "s", "black", "death", None),
        (np.where(get["death"], np.nan, get["os_day"]), ">", "0.3",
         "alive at end of follow-up", None),
    )
    for days, marker, colour, text, _ in marks:
        d = np.asarray(days, dtype=float) / scale
        ok = np.isfinite(d)
        if ok.any():
            ax.plot(d[ok], y[ok], linestyle="none", marker=marker, color=colour,
                    markersize=5.5, zorder=3, label=text)
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    present = sorted({int(r) for r in get["best_response"]} & set(RESPONSE_STYLE), reverse=True)
    handles += [Patch(color=RESPONSE_STYLE[r][1]) for r in present]
    labels += [f"best response {RESPONSE_STYLE[r][0]}" for r in present]
    ax.legend(handles, labels, fontsize=7, frameon=False, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    ids = ep["patient"].values if "patient" in ep.coords else y
    ax.set_yticks(y, [str(i) for i in ids], fontsize=6 if n > 25 else 8)
    ax.set(xlabel=f"time since CAR-T infusion ({unit})", ylabel="patient", ylim=(-0.7, n - 0.3))
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3, zorder=0)
    return ax


def blast_change(ds: xr.Dataset, *, window: tuple[float, float] = (0.0, 91.0),
                 floor_pct: float = 1e-6) -> xr.Dataset:
    """Baseline, nadir and change of marrow blasts per patient.

    Baseline is the first output time (lymphodepletion), the nadir the lowest value within
    ``window`` (days), floored at ``floor_pct`` (%) so that a log change stays finite.

    Returns
    -------
    xarray.Dataset
        ``baseline_pct``, ``nadir_pct`` (%), ``change_pct`` (% change),
        ``log10_change`` (log10 of nadir / baseline), dim ``patient``.
    """
    require(ds, ["marrow_blast_pct"], "waterfall()")
    da = ds["marrow_blast_pct"]
    if "patient" not in da.dims:
        da = da.expand_dims("patient")
    base = da.isel(time=0)
    inside = da.sel(time=slice(*window))
    nadir = np.maximum(inside.min("time", skipna=True), floor_pct)
    attrs = {"units": "%"}
    return xr.Dataset({
        "baseline_pct": base.assign_attrs(attrs, long_name="marrow blasts at baseline"),
        "nadir_pct": nadir.assign_attrs(attrs, long_name=f"nadir of marrow blasts, days "
                                                         f"{window[0]:g}-{window[1]:g}"),
        "change_pct": (100.0 * (nadir - base) / base).assign_attrs(
            units="%", long_name="change of marrow blasts from baseline to nadir"),
        "log10_change": np.log10(nadir / base).assign_attrs(
            units="1", long_name="log10 change of marrow blasts from baseline to nadir"),
    })


def waterfall(ds: xr.Dataset, ax=None, *, metric: str = "log10",
              window: tuple[float, float] = (0.0, 91.0)):
    """Waterfall of the deepest marrow blast reduction per patient (worst on the left).

    Parameters
    ----------
    ds : xarray.Dataset
        Trajectories with ``marrow_blast_pct`` (dims ``patient``, ``time``).
    ax : matplotlib.axes.Axes, optional
    metric : {"log10", "percent"}
        ``log10``: log10(nadir / baseline), e.g. -4 is a 4-log reduction (the depth CAR-T
        reaches, where a % change saturates at -100%); ``percent``: % change, the
        clinical convention for solid tumours.
    window : (float, float)
        Days searched for the nadir (default 0-91, the response window).

    Returns
    -------
    matplotlib.axes.Axes
        Bars coloured by the nadir: no remission, remission (< 5%), flow MRD-negative.
    """
    if metric not in ("log10", "percent"):
        raise ValueError(f"metric={metric!r} is not accepted: expected log10 or percent")
    ch = blast_change(ds, window=window)
    v = np.asarray(ch["log10_change" if metric == "log10" else "change_pct"].values)
    nadir = np.asarray(ch["nadir_pct"].values)
    ok = np.isfinite(v)
    v, nadir = v[ok], nadir[ok]
    order = np.argsort(-v, kind="stable")
    v, nadir = v[order], nadir[order]
    depth = (nadir < 5.0).astype(int) + (nadir < 1e-2).astype(int)
    ax = one_axes(ax, figsize=(7.0, 3.8))
    x = np.arange(v.size)
    for k, (text, colour) in enumerate(DEPTH_STYLE):
        sel = depth == k
        if sel.any():
            ax.bar(x[sel], v[sel], width=0.85, color=colour, label=f"{text}: {sel.sum()}")
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    if metric == "percent":
        ax.set_ylim(-105, max(105.0, float(np.nanmax(v, initial=0)) * 1.05))
        ax.set_ylabel("change in marrow blasts,\nbaseline to nadir (%)")
    else:
        ax.set_ylabel("change in marrow blasts,\nbaseline to nadir (log10)")
    ax.set_xlabel(f"patients (n={v.size}), sorted; nadir over days {window[0]:g}-{window[1]:g}")
    ax.set_xticks([])
    ax.set_xlim(-0.7, max(v.size, 1) - 0.3)
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return ax


DEFAULT_ENDPOINTS = (
    ("CR/CRi at day 28", "response_d28", lambda v: v >= 1),
    ("flow MRD-negative at day 28", "mrd_flow_neg_d28", lambda v: v.astype(bool)),
    ("CRS grade >= 1 (surrogate)", "crs_grade", lambda v: v >= 1),
    ("CRS grade >= 3 (surrogate)", "crs_grade", lambda v: v >= 3),
    ("ICANS any grade (surrogate)", "icans_grade", lambda v: v >= 1),
    ("grade 3-4 neutropenia", "cytopenia_g34", lambda v: v.astype(bool)),
    ("relapse", "relapse", lambda v: v.astype(bool)),
    ("CD7-negative relapse", "relapse_cd7neg", lambda v: v.astype(bool)),
    ("death within follow-up", "death", lambda v: v.astype(bool)),
)
"""(label, endpoint variable, event function) of :func:`endpoint_bars`."""


def endpoint_probabilities(endpoints: xr.Dataset, items=DEFAULT_ENDPOINTS) -> list[dict]:
    """Proportion of evaluable patients with each endpoint, with an exact 95% CI.

    Returns
    -------
    list of dict
        ``label``, ``k``, ``n``, ``p``, ``lo``, ``hi`` per endpoint.
    """
    from cartsim.stats import binomial_ci

    ok = np.asarray(endpoints["evaluable"].values, dtype=bool) if "evaluable" in endpoints \
        else np.ones(endpoints.sizes["patient"], dtype=bool)
    rows = []
    for text, name, event in items:
        require(endpoints, [name], "endpoint_bars()")
        hit = np.asarray(event(np.asarray(endpoints[name].values)), dtype=bool)[ok]
        k, n = int(hit.sum()), int(ok.sum())
        lo, hi = binomial_ci(k, n)
        rows.append({"label": text, "k": k, "n": n, "p": k / n if n else np.nan,
                     "lo": lo, "hi": hi})
    return rows


def endpoint_bars(endpoints, ax=None, *, items=DEFAULT_ENDPOINTS,
                  colours: Sequence[str] = PALETTE, members=None):
    """Endpoint probabilities with exact (Clopper-Pearson) 95% CIs as horizontal bars.

    Parameters
    ----------
    endpoints : xarray.Dataset or mapping of str to xarray.Dataset
        One cohort, or several (e.g. ``{"regimen A": ep_a, "regimen B": ep_b}``) drawn
        side by side for each endpoint.
    ax : matplotlib.axes.Axes, optional
    items : sequence of (label, variable, function)
        Endpoints: the function maps the variable's values to True/False per patient.
    members : mapping of str to sequence of xarray.Dataset, optional
        For each cohort, the same patients under each calibration ensemble member
        (:func:`~cartsim.plot.run_what_if` with ``ensemble=``): the range of their
        probabilities is drawn as a thick grey line on each bar (model uncertainty,
        beside the cohort's binomial CI).

    Returns
    -------
    matplotlib.axes.Axes
    """
    sets = {"": endpoints} if isinstance(endpoints, xr.Dataset) else dict(endpoints)
    ax = one_axes(ax, figsize=(6.4, 0.45 * len(items) * max(1, len(sets)) ** 0.5 + 1.2))
    k = len(sets)
    height = 0.8 / k
    y0 = np.arange(len(items))[::-1].astype(float)
    for j, (name, ep) in enumerate(sets.items()):
        rows = endpoint_probabilities(ep, items)
        p = np.array([r["p"] for r in rows]) * 100
        err = np.array([[r["p"] - r["lo"], r["hi"] - r["p"]] for r in rows]).T * 100
        y = y0 + 0.4 - height * (j + 0.5)
        n = rows[0]["n"] if rows else 0
        ax.barh(y, p, height=height * 0.9, color=colours[j % len(colours)],
                label=f"{name} (n={n})" if name else f"n={n}")
        ax.errorbar(p, y, xerr=err, fmt="none", ecolor="0.2", elinewidth=0.9, capsize=2)
        right = p + err[1]
        mem = (members or {}).get(name if name else "", None)
        if mem:
            mp = np.array([[r["p"] for r in endpoint_probabilities(m, items)]
                           for m in mem]) * 100  # (members, items)
            lo, hi = np.nanmin(mp, axis=0), np.nanmax(mp, axis=0)
            ax.hlines(y + height * 0.3, lo, hi, colors="0.45", linewidth=3.0,
                      label=(f"model range ({len(mem)} ensemble members)"
                             if j == 0 else None))
            right = np.maximum(right, hi)
        for yy, pp, top in zip(y, p, right):
            ax.text(top + 1.5, yy, f"{pp:.0f}%", va="center", fontsize=7)
    ax.set_yticks(y0, [it[0] for it in items], fontsize=8)
    ax.set_xlim(0, 112)
    ax.set_xticks(np.arange(0, 101, 20))
    ax.set_xlabel("patients (%), with exact 95% CI" + (" and model range" if members else ""))
    ax.set_ylim(-0.6, len(items) - 0.4)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              ncols=min(k, 3))
    return ax
