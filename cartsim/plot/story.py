"""One patient's story on one page: lymphodepletion, CAR-T, blasts, normal cells, cytokines.

:func:`patient_story` stacks, on a shared time axis, the CAR transgene (qPCR), marrow
blasts with the CD7-negative escape clone and the response thresholds, normal CD7+/CD7-
T cells and neutrophils, the four cytokines, and a band of the surrogate CRS grade; the
fludarabine and cyclophosphamide concentrations sit in a small panel of their own (days
-6 to +1), beside a text box with the patient, the regimen and, when given, the endpoints.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
import yaml

from cartsim.plot._common import (
    COLOURS,
    DAY_LABEL,
    mark_regimen,
    pretty_units,
    regimen_info,
    require,
    set_yscale,
    short_name,
)
from cartsim.plot.observed import overlay_observed

CRS_COLOURS = ("#f4f6f6", "#f9e79f", "#f5b041", "#e74c3c", "#78281f")
"""Colours of surrogate CRS grades 0-4."""

STORY_VARIABLES = ("flu_conc", "cy_conc", "car_copies_per_ug", "marrow_blast_pct",
                   "blast_cd7neg_pct", "t_cd7pos_per_ul", "t_cd7neg_per_ul", "anc_per_ul",
                   "il6", "ifng", "il10", "tnfa")


def crs_thresholds(endpoints: xr.Dataset | None = None) -> list[float]:
    """IL-6 thresholds (pg/mL) of surrogate CRS grades 1-4: from the endpoints' settings
    attribute when given, else :class:`cartsim.clinical.EndpointSettings` defaults."""
    if endpoints is not None and "settings" in endpoints.attrs:
        settings = yaml.safe_load(endpoints.attrs["settings"]) or {}
        if "crs_il6_thresholds_pg_ml" in settings:
            return [float(x) for x in settings["crs_il6_thresholds_pg_ml"]]
    from cartsim.clinical.settings import EndpointSettings

    return [float(x) for x in EndpointSettings().crs_il6_thresholds_pg_ml]


def surrogate_crs_grade(il6, thresholds) -> np.ndarray:
    """Instantaneous surrogate CRS grade: the number of IL-6 thresholds reached (0-4)."""
    il6 = np.nan_to_num(np.asarray(il6, dtype=float), nan=0.0)
    return (il6[..., None] >= np.asarray(thresholds)[None, :]).sum(axis=-1)


def _lines(ax, ds, names, t, observed=None, marker=None):
    values = []
    for name in names:
        y = np.asarray(ds[name].values, dtype=float)
        ax.plot(t, y, color=COLOURS.get(name), linewidth=1.5, label=short_name(ds[name], name),
                marker=marker, markersize=3)
        values.append(y)
        if observed is not None:
            overlay_observed(ax, observed, name, units=ds[name].attrs.get("units"),
                             color=COLOURS.get(name, "black"))
    return np.concatenate(values)


def _summary_text(ds: xr.Dataset, endpoints: xr.Dataset | None, pid) -> str:
    cfg = yaml.safe_load(ds.attrs.get("config", "")) or {}
    pat, reg, prod = cfg.get("patient", {}), cfg.get("regimen", {}), cfg.get("product", {})
    lines = [f"patient {pid}"]
    if pat:
        lines.append(f"{pat.get('marrow_blast_pct', float('nan')):.3g}% marrow blasts, "
                     f"CD7- {100 * pat.get('cd7neg_blast_fraction', 0):.2g}%, "
                     f"{pat.get('weight_kg', float('nan')):.3g} kg, "
                     f"CrCl {pat.get('crcl_ml_min', float('nan')):.3g} mL/min")
    if reg:
        days = reg.get("car_days", [0])
        split = "" if len(days) == 1 else f" split {reg.get('car_fractions')} on days {days}"
        lines.append(f"Flu {reg.get('flu_mg_m2', 0):g} + Cy {reg.get('cy_mg_m2', 0):g} "
                     f"mg/m\u00b2/day; {reg.get('car_dose_per_kg', 0):.3g} CAR+ cells/kg{split}")
    if prod:
        lines.append(f"product: {prod.get('name', '?')}")
    if endpoints is not None:
        e = endpoints
        resp = {2: "CR", 1: "CRi", 0: "no response", -1: "not evaluable"}.get(
            int(e["best_response"]), "?")
        rel = float(e["relapse_day"])
        parts = [f"best response {resp}"]
        if np.isfinite(float(e["response_day"])):
            parts[0] += f" (day {float(e['response_day']):g})"
        if np.isfinite(rel):
            parts.append(f"{'CD7-negative ' if bool(e['relapse_cd7neg']) else ''}relapse "
                         f"day {rel:g}")
        if bool(e["death"]):
            parts.append(f"death day {float(e['death_day']):.0f}")
        parts.append(f"surrogate CRS grade {int(e['crs_grade'])}")
        lines.append("; ".join(parts))
    return "\n".join(lines)


def patient_story(ds: xr.Dataset, patient: int = 0, *, endpoints: xr.Dataset | None = None,
                  observed=None, regimen=None, xlim=None, fig=None, title: str | None = None):
    """A multi-panel figure of one patient's course.

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`cartsim.simulate` result.
    patient : int
        Position of the patient along ``patient`` (``isel``).
    endpoints : xarray.Dataset, optional
        :func:`cartsim.endpoints` of ``ds`` (all patients or this one): response, relapse
        and CRS grade are written in the text box, and its IL-6 thresholds set the band.
    observed : xarray.Dataset or pandas.DataFrame, optional
        This patient's observed data (:mod:`cartsim.plot.observed`), overlaid by analyte.
    regimen : Regimen or mapping, optional
        Days to mark (default: from ``ds.attrs["config"]``).
    xlim : (float, float), optional
        Days of the shared panels (default: the whole simulation).
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw into (default: a new 9 x 11 inch figure).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Axes in ``fig.axes``; each carries a ``label`` naming its panel (``ld``, ``car``,
        ``blasts``, ``tcells``, ``cytokines``, ``crs``).
    """
    require(ds, STORY_VARIABLES, "patient_story()")
    one = ds.isel(patient=patient) if "patient" in ds.dims else ds
    pid = one["patient"].item() if "patient" in one.coords else patient
    ep = None
    if endpoints is not None:
        ep = endpoints.sel(patient=pid) if "patient" in endpoints.dims else endpoints
    if fig is None:
        from cartsim.plot._common import new_axes

        fig = new_axes(figsize=(9.0, 11.0))[0]
        fig.clear()
    grid = fig.add_gridspec(6, 3, height_ratios=(1.2, 1.4, 1.4, 1.2, 1.3, 0.35))
    t = one["time"].values.astype(float)
    xlim = xlim if xlim is not None else (float(t[0]), float(t[-1]))

    ld = fig.add_subplot(grid[0, 0], label="ld")
    info = regimen_info(ds, regimen)
    lo = min(info["ld_days"] or [-5.0]) - 1.0
    hi = max(info["car_days"][:1] or [0.0]) + 1.0
    keep = (t >= lo) & (t <= hi)
    sparse = keep.sum() < 20  # daily output: show the samples (simulate finer to see peaks)
    vals = _lines(ld, one, ("flu_conc", "cy_conc"), t, marker="o" if sparse else None)
    set_yscale(ld, np.concatenate([vals.reshape(2, -1)[:, keep].ravel()]), "flu_conc", "log")
    ld.set(xlim=(lo, hi), xlabel=DAY_LABEL, ylabel="plasma (mg/L)",
           title="lymphodepletion drugs")
    ld.legend(fontsize=7, frameon=False, loc="lower left")
    mark_regimen(ld, ds, regimen=regimen, text=False)

    box = fig.add_subplot(grid[0, 1:], label="text")
    box.axis("off")
    box.text(0.0, 1.0, _summary_text(one, ep, pid), va="top", ha="left", fontsize=9,
             transform=box.transAxes, wrap=True)

    car = fig.add_subplot(grid[1, :], label="car")
    shared = [car]
    car.set_xlim(xlim)
    v = _lines(car, one, ("car_copies_per_ug",), t, observed=observed)
    set_yscale(car, v, "car_copies_per_ug", "log")
    car.set(ylabel=f"qPCR ({pretty_units('copies/ug')})", title="CAR-T")

    blasts = fig.add_subplot(grid[2, :], sharex=car, label="blasts")
    shared.append(blasts)
    bl = np.asarray(one["marrow_blast_pct"].values, dtype=float)
    neg = bl * np.asarray(one["blast_cd7neg_pct"].values, dtype=float) / 100.0
    blasts.plot(t, bl, color=COLOURS["marrow_blast_pct"], linewidth=1.6,
                label="marrow blasts, all")
    blasts.plot(t, neg, color=COLOURS["blast_cd7neg_pct"], linewidth=1.3, linestyle="--",
                label="CD7-negative blasts", zorder=3)
    if observed is not None:
        overlay_observed(blasts, observed, "marrow_blast_pct", units="%",
                         color=COLOURS["marrow_blast_pct"])
    for level, text in ((5.0, "remission < 5%"), (1e-2, "flow MRD 0.01%"),
                        (1e-3, "molecular MRD 0.001%")):
        blasts.axhline(level, color="0.5", linestyle=":", linewidth=0.8)
        blasts.text(0.995, level, text, transform=blasts.get_yaxis_transform(),
                    fontsize=6.5, va="bottom", ha="right", color="0.4")
    blasts.set_yscale("log")
    blasts.set_ylim(1e-4, 150.0)  # down to a blast fraction of 1e-6, below molecular MRD
    blasts.set(ylabel="% of marrow cells", title="leukemia")

    tc = fig.add_subplot(grid[3, :], sharex=car, label="tcells")
    shared.append(tc)
    v = _lines(tc, one, ("t_cd7pos_per_ul", "t_cd7neg_per_ul", "anc_per_ul"), t,
               observed=observed)
    set_yscale(tc, v, "t_cd7pos_per_ul", "log")
    tc.set(ylabel=f"blood ({pretty_units('cells/uL')})", title="normal cells")

    cyt = fig.add_subplot(grid[4, :], sharex=car, label="cytokines")
    shared.append(cyt)
    v = _lines(cyt, one, ("il6", "ifng", "il10", "tnfa"), t, observed=observed)
    set_yscale(cyt, v, "il6", "log")
    cyt.set(ylabel="plasma (pg/mL)", title="cytokines")

    crs = fig.add_subplot(grid[5, :], sharex=car, label="crs")
    thresholds = crs_thresholds(endpoints)
    grade = surrogate_crs_grade(one["il6"].values, thresholds)
    edges = np.concatenate([[t[0]], (t[1:] + t[:-1]) / 2, [t[-1]]])
    for g in range(1, 5):
        on = grade >= g
        if on.any():
            crs.fill_between(edges[:-1], 0, 1, where=grade == g, step="post",
                             color=CRS_COLOURS[g], linewidth=0, label=f"grade {g}")
    crs.set(yticks=[], xlabel=DAY_LABEL, ylim=(0, 1))
    crs.set_ylabel("CRS", rotation=0, ha="right", va="center")
    levels = ", ".join(f"{x:g}" for x in thresholds)
    crs.set_title(f"surrogate CRS grade from IL-6 (thresholds {levels} pg/mL; a model "
                  "surrogate, not an ASTCT grade)", fontsize=8)
    if grade.max() == 0:
        crs.text(0.5, 0.5, "no CRS (IL-6 below the grade-1 threshold)", ha="center",
                 va="center", fontsize=8, color="0.4", transform=crs.transAxes)
    else:
        crs.legend(fontsize=7, frameon=False, ncols=4, loc="center left",
                   bbox_to_anchor=(1.0, 0.5))
    for ax in shared:
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.tick_params(labelbottom=False)
        mark_regimen(ax, ds, regimen=regimen, text=ax is car)
    mark_regimen(crs, ds, regimen=regimen, text=False)
    car.set_xlim(xlim)
    if title:
        fig.suptitle(title)
    return fig
