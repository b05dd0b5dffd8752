"""Shared helpers of :mod:`cartsim.plot`: new figures, labels with units, log scales, regimen.

Figures are made without pyplot's global state (a :class:`~matplotlib.figure.Figure` on
the Agg canvas) unless pyplot is already imported, as in a notebook or an interactive
session: then ``pyplot.figure`` is used so that the figure shows inline like any other.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

DAY_LABEL = "days since CAR-T infusion"

SHORT_NAMES = {
    "car_copies_per_ug": "CAR transgene (qPCR)",
    "car_cells_per_ul": "CAR-T cells (flow)",
    "car_pct_of_t": "CAR+ of CD3+ T cells",
    "marrow_blast_pct": "marrow blasts",
    "blast_cd7neg_pct": "CD7-negative share of blasts",
    "em_volume_cm3": "extramedullary mass",
    "t_cd7pos_per_ul": "normal CD7+ T/NK cells",
    "t_cd7neg_per_ul": "normal CD7- T cells",
    "anc_per_ul": "ANC",
    "wbc_per_ul": "WBC",
    "il6": "IL-6",
    "ifng": "IFN-\u03b3",
    "il10": "IL-10",
    "tnfa": "TNF-\u03b1",
    "flu_conc": "F-ara-A (fludarabine)",
    "cy_conc": "cyclophosphamide",
    "flu_auc": "F-ara-A AUC",
    "toci_conc": "tocilizumab",
}
"""Short, clinical names of the observables (axis labels); others use their ``long_name``."""

COLOURS = {
    "car_copies_per_ug": "#1f5fa8", "car_cells_per_ul": "#1f5fa8", "car_pct_of_t": "#1f5fa8",
    "marrow_blast_pct": "#c0392b", "blast_cd7neg_pct": "#8e44ad", "em_volume_cm3": "#d35400",
    "t_cd7pos_per_ul": "#27ae60", "t_cd7neg_per_ul": "#5dade2", "anc_per_ul": "#7f8c8d",
    "wbc_per_ul": "#95a5a6", "il6": "#c0392b", "ifng": "#e67e22", "il10": "#2980b9",
    "tnfa": "#8e44ad", "flu_conc": "#b9770e", "cy_conc": "#5d6d7e",
}
"""Colour of each observable, the same in every figure."""

FLOORS = {
    "car_copies_per_ug": 1.0, "car_cells_per_ul": 1e-2, "car_pct_of_t": 1e-3,
    "marrow_blast_pct": 1e-4, "blast_cd7neg_pct": 1e-4, "em_volume_cm3": 1e-2,
    "t_cd7pos_per_ul": 1e-1, "t_cd7neg_per_ul": 1e-1, "anc_per_ul": 10.0, "wbc_per_ul": 10.0,
    "il6": 1.0, "ifng": 1.0, "il10": 1.0, "tnfa": 1.0, "flu_conc": 1e-4, "cy_conc": 1e-2,
}
"""Lowest value shown on a log axis (below the assays' limits; values below are clipped).

marrow blasts: 1e-4 % = a blast fraction of 1e-6, below molecular MRD (1e-5).
"""

PALETTE = ("#1f5fa8", "#e67e22", "#27ae60", "#c0392b", "#8e44ad", "#16a085", "#7f8c8d")
"""Colours of successive patients/regimens/curves."""


def pretty_units(units: str) -> str:
    """Units as printed on an axis: ``uL`` -> ``µL``, ``ug`` -> ``µg``; ``1`` -> ``""``."""
    u = str(units or "")
    if u in ("1", "-", ""):
        return ""
    return u.replace("uL", "\u00b5L").replace("ug", "\u00b5g")


def short_name(da: xr.DataArray, name: str | None = None) -> str:
    """Short clinical name of a variable (legends); its ``long_name`` if it has none."""
    name = name or str(da.name)
    return SHORT_NAMES.get(name) or da.attrs.get("long_name") or name


def label(da: xr.DataArray, name: str | None = None) -> str:
    """Axis label ``short name (units)`` of a variable."""
    name = name or str(da.name)
    text = short_name(da, name)
    units = pretty_units(da.attrs.get("units", ""))
    return f"{text} ({units})" if units else text


def new_axes(nrows: int = 1, ncols: int = 1, *, figsize=(6.4, 4.0), **kwargs):
    """A new figure and its axes (pyplot only if already imported; see the module doc)."""
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def one_axes(ax, figsize=(6.4, 4.0)):
    """``ax`` or a new single Axes."""
    if ax is not None:
        return ax
    return new_axes(figsize=figsize)[1][0, 0]


def spans_decades(values, decades: float = 2.0) -> bool:
    """True if the positive finite values span more than ``decades`` powers of ten."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 1 and np.log10(v.max() / v.min()) > decades


def set_yscale(ax, values, name: str, yscale: str = "auto") -> str:
    """Set a log scale where the data span decades (``yscale="auto"``); returns the scale."""
    if yscale not in ("auto", "log", "linear"):
        raise ValueError(f"yscale={yscale!r} is not accepted: expected auto, log or linear")
    v = np.asarray(values, dtype=float)
    scale = yscale
    if yscale == "auto":
        scale = "log" if spans_decades(v) else "linear"
    if scale == "log":
        ax.set_yscale("log")
        pos = v[np.isfinite(v) & (v > 0)]
        if pos.size:
            top = float(pos.max()) * 3.0
            floor = FLOORS.get(name, top / 1e8)
            ax.set_ylim(max(float(pos.min()) / 2.0, floor, top / 1e10), top)
    return scale


def regimen_info(ds: xr.Dataset | None, regimen: Any = None) -> dict[str, list[float]]:
    """Regimen days of a run: ``ld_days``, ``car_days``, ``reinfusion_days``, ``hsct_day``
    (lists of days; ``hsct_day`` has at most one).

    From ``regimen`` (a :class:`~cartsim.scenario.Regimen` or a mapping with ``ld_days``,
    ``car_days`` and optionally ``reinfusion_days``) if given, else from the ``config``
    attribute (YAML) that :func:`cartsim.simulate` stores: the first scenario's regimen
    (a batch of scenarios with different regimens stores only the first; pass ``regimen``).
    Empty lists when neither is available.
    """
    reg = regimen
    if reg is None and ds is not None and "config" in ds.attrs:
        import yaml

        try:
            reg = (yaml.safe_load(ds.attrs["config"]) or {}).get("regimen")
        except yaml.YAMLError:
            reg = None
    if reg is None:
        return {"ld_days": [], "car_days": [], "reinfusion_days": [], "hsct_day": []}
    get = reg.get if isinstance(reg, Mapping) else (lambda k, d=None: getattr(reg, k, d))
    out = {k: [float(x) for x in (get(k, None) or [])]
           for k in ("ld_days", "car_days", "reinfusion_days")}
    hsct = get("hsct_day", None)
    out["hsct_day"] = [] if hsct is None else [float(hsct)]
    return out


def mark_regimen(ax, ds: xr.Dataset | None = None, *, regimen: Any = None,
                 text: bool = True):
    """Shade lymphodepletion and draw the CAR-T infusion day(s) on ``ax``.

    Lymphodepletion is a grey band from the first to the day after the last LD day;
    each CAR-T infusion (and re-infusion) a dashed vertical line, a planned HSCT a dotted
    purple one. With ``text``, small labels ("Flu/Cy", "CAR-T", "HSCT") sit at the top.

    Returns
    -------
    matplotlib.axes.Axes
    """
    info = regimen_info(ds, regimen)
    trans = ax.get_xaxis_transform()
    x0, x1 = ax.get_xlim()
    if info["ld_days"]:
        lo, hi = min(info["ld_days"]), max(info["ld_days"]) + 1.0
        ax.axvspan(lo, hi, color="0.85", alpha=0.6, linewidth=0, zorder=0,
                   label="_lymphodepletion")
        if text and (hi - lo) > 0.08 * abs(x1 - x0):  # a label only where it fits
            ax.text((lo + hi) / 2, 0.98, "Flu/Cy", transform=trans, ha="center", va="top",
                    fontsize=7, color="0.35")
    for i, day in enumerate(info["car_days"] + info["reinfusion_days"]):
        ax.axvline(day, color="0.25", linestyle="--", linewidth=0.9, zorder=1,
                   label="_CAR-T infusion")
        if text:
            ax.text(day, 0.98, " CAR-T" if i == 0 else " ", transform=trans, ha="left",
                    va="top", fontsize=7, color="0.25")
    for day in info["hsct_day"]:
        ax.axvline(day, color="#6c3483", linestyle=":", linewidth=1.1, zorder=1,
                   label="_HSCT")
        if text:
            ax.text(day, 0.98, " HSCT (if eligible)", transform=trans, ha="left", va="top",
                    fontsize=7, color="#6c3483")
    return ax


def patient_labels(ds: xr.Dataset, labels=None) -> list[str]:
    """One label per patient: ``labels`` if given (checked), else ``patient <id>``."""
    n = ds.sizes.get("patient", 1)
    if labels is None:
        ids = ds["patient"].values if "patient" in ds.coords else range(n)
        return [f"patient {p}" for p in ids]
    labels = [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} patients; expected one "
                         "label per patient")
    return labels


def require(ds, names, what: str) -> None:
    """Raise a ValueError naming the variables ``what`` needs and ``ds`` lacks."""
    missing = [n for n in names if n not in ds]
    if missing:
        raise ValueError(f"{what} needs the variable(s) {', '.join(missing)}, missing from the "
                         f"Dataset (it has {', '.join(map(str, list(ds.data_vars)[:12]))}...)")
