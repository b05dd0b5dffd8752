"""Kaplan-Meier curves with log-log 95% bands, censoring ticks and numbers at risk.

:func:`kaplan_meier` draws PFS/OS (or any ``<stem>_day``/``<stem>_event`` pair) of one or
several endpoints Datasets; :func:`draw_km` and :func:`draw_at_risk` are the pieces the
trial report's figure (:func:`cartsim.reporting.km_plot.km_figure`) is built from.
Estimates come from :func:`cartsim.stats.kaplan_meier` (evaluable patients only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from cartsim.plot._common import PALETTE, one_axes
from cartsim.stats import KaplanMeier
from cartsim.stats import kaplan_meier as _km

MONTH_DAYS = 365.25 / 12.0
STEM_NAMES = {"pfs": "PFS", "os": "OS", "dor": "DOR"}
KM_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _steps(km: KaplanMeier, scale: float) -> tuple[np.ndarray, ...]:
    """Step-curve vertices from time 0 (S = 1) to the last observed time, in ``1/scale`` units."""
    x = np.concatenate(([0.0], km.time, [km.max_time])) / scale
    s, lo, hi = (np.concatenate(([1.0], a, a[-1:] if a.size else [1.0]))
                 for a in (km.survival, km.lower, km.upper))
    return x, s, lo, hi


def km_end(curves: Mapping[str, KaplanMeier], scale: float) -> float:
    """Longest follow-up of ``curves`` in ``1/scale`` units (0 for empty curves)."""
    return max((km.max_time for km in curves.values() if km.n), default=0.0) / scale


def km_ticks(curves: Mapping[str, KaplanMeier], scale: float, step: float) -> np.ndarray:
    """x ticks (in ``1/scale`` units) every ``step`` up to the longest follow-up."""
    end = km_end(curves, scale)
    return np.arange(0.0, (math.floor(end / step) + 1) * step, step) if end > 0 else \
        np.array([0.0])


def draw_km(ax, curves: Mapping[str, KaplanMeier], *, scale: float, ci: bool = True,
            colours: Sequence[str] = KM_COLOURS):
    """Draw step curves, 95% bands and censoring ticks of ``curves`` (times in days)."""
    for (name, km), colour in zip(curves.items(), list(colours) * len(curves)):
        if not km.n:
            continue
        x, s, lo, hi = _steps(km, scale)
        ax.step(x, s, where="post", color=colour, linewidth=1.8, label=f"{name} (n={km.n})")
        if ci:
            ax.fill_between(x, lo, hi, step="post", color=colour, alpha=0.15, linewidth=0)
        cens = km.censored_time
        ax.plot(cens / scale, km.at(cens)[0], linestyle="none", marker="|", markersize=8,
                color=colour)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    if any(km.n for km in curves.values()):
        ax.legend(loc="lower left", frameon=False, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no evaluable patients", ha="center", transform=ax.transAxes)
    return ax


def draw_at_risk(risk_ax, curves: Mapping[str, KaplanMeier], ticks, *, scale: float,
                 colours: Sequence[str] = KM_COLOURS):
    """A number-at-risk table on its own (short) Axes below the curves."""
    for row, (km, colour) in enumerate(zip(curves.values(), list(colours) * len(curves))):
        at_risk = km.n_at_risk_at(np.asarray(ticks) * scale)
        for xt, n in zip(ticks, at_risk):
            risk_ax.text(xt, -row, str(int(n)), ha="center", va="center", color=colour,
                         fontsize=8)
    risk_ax.set(ylim=(-len(curves) + 0.5, 0.5), yticks=-np.arange(len(curves)))
    risk_ax.set_yticklabels(list(curves))
    risk_ax.set_title("number at risk", fontsize=8)
    risk_ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        risk_ax.spines[side].set_visible(False)
    return risk_ax


def survival_curves(endpoints, which: Sequence[str] = ("pfs", "os")) -> dict[str, KaplanMeier]:
    """Kaplan-Meier curves of the evaluable patients, labelled ``PFS``, ``OS`` (one
    Dataset) or ``<name> PFS`` (a mapping name -> endpoints Dataset)."""
    sets = {"": endpoints} if isinstance(endpoints, xr.Dataset) else dict(endpoints)
    curves = {}
    for name, ep in sets.items():
        if not isinstance(ep, xr.Dataset):
            raise TypeError(f"kaplan_meier() needs endpoints Datasets, got {type(ep).__name__}")
        ok = np.asarray(ep["evaluable"].values, dtype=bool) if "evaluable" in ep else \
            np.ones(ep.sizes["patient"], dtype=bool)
        for stem in which:
            for v in (f"{stem}_day", f"{stem}_event"):
                if v not in ep:
                    raise ValueError(f"kaplan_meier() needs {v!r} in the endpoints Dataset "
                                     "(cartsim.endpoints provides pfs, os and dor)")
            t = np.asarray(ep[f"{stem}_day"].values, dtype=float)[ok]
            e = np.asarray(ep[f"{stem}_event"].values, dtype=bool)[ok]
            keep = np.isfinite(t)  # dor_day is NaN for non-responders
            label = " ".join(p for p in (name, STEM_NAMES.get(stem, stem)) if p)
            curves[label] = _km(t[keep], e[keep])
    return curves


def kaplan_meier(endpoints, ax=None, *, which: Sequence[str] = ("pfs", "os"),
                 unit: str = "months", ci: bool = True, at_risk: bool = True,
                 step: float | None = None, title: str | None = None):
    """Kaplan-Meier curves of a virtual trial with 95% bands, censoring ticks, numbers at risk.

    Parameters
    ----------
    endpoints : xarray.Dataset or mapping of str to xarray.Dataset
        :func:`cartsim.endpoints` / ``TrialResult.endpoints``; a mapping draws each cohort
        (e.g. two regimens) with its name in the legend.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    which : sequence of str
        Endpoint stems: ``pfs``, ``os``, ``dor``.
    unit : {"months", "days"}
        Unit of the time axis (a month is 30.4375 days).
    ci : bool
        Shade the log-log 95% confidence bands.
    at_risk : bool
        Write the number at risk under the x axis at each tick.
    step : float, optional
        Tick spacing (default 6 months or 90 days).
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if unit not in ("months", "days"):
        raise ValueError(f"unit={unit!r} is not accepted: expected months or days")
    scale = MONTH_DAYS if unit == "months" else 1.0
    step = step or (6.0 if unit == "months" else 90.0)
    curves = survival_curves(endpoints, which)
    ax = one_axes(ax, figsize=(6.4, 4.8) if at_risk else (6.4, 4.0))
    colours = KM_COLOURS if len(curves) > 1 or len(which) > 1 else PALETTE
    draw_km(ax, curves, scale=scale, ci=ci, colours=colours)
    ticks = km_ticks(curves, scale, step)
    ax.set_xticks(ticks)
    end = max(km_end(curves, scale), step)
    ax.set_xlim(-0.02 * end, end * 1.02)
    ax.set_xlabel(f"time since CAR-T infusion ({unit})")
    ax.set_ylabel("probability")
    if title:
        ax.set_title(title)
    if at_risk:
        _at_risk_below(ax, curves, ticks, scale, colours)
    return ax


def _at_risk_below(ax, curves, ticks, scale, colours) -> None:
    """Numbers at risk as rows of text under the x axis label (offsets in points)."""
    def put(text, x, row, colour, **kw):
        ax.annotate(text, xy=(x, 0.0), xycoords=("data", "axes fraction"),
                    xytext=(kw.pop("dx", 0), -46 - 10 * row), textcoords="offset points",
                    va="center", fontsize=7, color=colour, annotation_clip=False, **kw)

    ax.annotate("number at risk", xy=(0.0, 0.0), xycoords="axes fraction", xytext=(0, -46),
                textcoords="offset points", va="center", fontsize=7, color="0.3")
    for row, ((name, km), colour) in enumerate(zip(curves.items(),
                                                   list(colours) * len(curves)), start=1):
        ax.annotate(name, xy=(0.0, 0.0), xycoords="axes fraction", xytext=(-4, -46 - 10 * row),
                    textcoords="offset points", ha="right", va="center", fontsize=7,
                    color=colour)
        for xt, n in zip(ticks, km.n_at_risk_at(np.asarray(ticks) * scale)):
            put(str(int(n)), xt, row, colour, ha="center")
