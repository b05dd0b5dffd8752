"""Figures of sweeps and sensitivity analyses.

* :func:`plot_window`: a "therapeutic window": one endpoint as a heatmap over two swept axes
  (e.g. the probability of MRD-negative CR over CAR-T dose and marrow burden) with contours of
  another (e.g. the probability of surrogate CRS grade >= 3);
* :func:`plot_dose_response`: endpoints against one swept axis, with the cohort uncertainty
  band (Clopper-Pearson interval of a proportion, or the interquartile range of a median);
* :func:`plot_sensitivity`: Sobol (S1 and ST) or Morris (mu*) indices of one endpoint as
  horizontal bars sorted by importance (a tornado).

Each takes a Dataset of :func:`cartsim.sweep.run_sweep` / :func:`cartsim.sweep.run_sensitivity`
(and optionally a matplotlib Axes), returns the Axes and never calls ``plt.show()``.
A point without a value (failed solve, no evaluable patient, endpoint not estimable) is
drawn as missing, never as 0: a hatched grey cell of the window, a gap in a curve, and the
titles count such points (and the runs a sensitivity index had to fill in).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["dose_window", "plot_dose_response", "plot_sensitivity", "plot_window"]


def _axes(ax, figsize=(6.4, 4.4)):
    if ax is not None:
        return ax
    from cartsim.plot._common import one_axes

    return one_axes(None, figsize=figsize)


ENDPOINT_NAMES = {
    "mrd_neg_cr_d28": "MRD-negative CR/CRi at day 28",
    "cr_d28": "CR/CRi at day 28",
    "crs_g3plus": "CRS grade \u2265 3 (surrogate)",
    "icans_g3plus": "ICANS grade \u2265 3 (surrogate)",
    "pfs_12m": "progression-free at 12 months",
    "cmax_qpcr": "peak CAR transgene (qPCR)",
    "il6_peak": "peak IL-6",
}
"""Short clinical names of the sweep endpoints (labels); others use their ``long_name``."""

BOOLEAN_ENDPOINTS = {"mrd_neg_cr_d28", "cr_d28", "crs_g3plus", "icans_g3plus", "pfs_12m"}


def _short(da: xr.DataArray, name: str) -> str:
    """Short clinical name of a sweep variable or axis (no units)."""
    base = name.removesuffix("_ci_lo").removesuffix("_ci_hi")
    if base in ENDPOINT_NAMES:
        text = ENDPOINT_NAMES[base]
    else:
        text = str(da.attrs.get("long_name", name))
        text = text.removeprefix("proportion: ")
        if " (" in text and text.endswith(")"):  # drop the definition in brackets
            text = text[:text.index(" (")]
        if len(text) > 60:
            text = name
    return text


def _is_probability(da: xr.DataArray, name: str) -> bool:
    """A yes/no endpoint (units 1): a proportion over patients, or 0/1 for one patient."""
    long_name = str(da.attrs.get("long_name", ""))
    return da.attrs.get("units") == "1" and (
        long_name.startswith(("proportion", "lower", "upper")) or name in BOOLEAN_ENDPOINTS)


def _label(da: xr.DataArray, name: str) -> str:
    """``clinical name (units)``; ``P(clinical name)`` for a yes/no endpoint."""
    from cartsim.plot._common import pretty_units

    text = _short(da, name)
    if _is_probability(da, name.removesuffix("_ci_lo").removesuffix("_ci_hi")):
        return f"P({text})"
    units = pretty_units(da.attrs.get("units", ""))
    return f"{text} ({units})" if units else text


def _is_log(values) -> bool:
    v = np.asarray(values)
    if v.dtype.kind not in "fiu":
        return False
    v = v[np.isfinite(v)].astype(float)
    return v.size > 1 and bool((v > 0).all()) and v.max() / v.min() >= 100.0


def _edges(centres: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around the centres: midpoints, geometric on a log axis."""
    c = np.log10(centres) if log else np.asarray(centres, dtype=float)
    if c.size == 1:
        e = np.array([c[0] - 0.5, c[0] + 0.5])
    else:
        mid = 0.5 * (c[1:] + c[:-1])
        e = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    return 10.0 ** e if log else e


def _swept_dims(ds: xr.Dataset, var: str) -> list[str]:
    return [d for d in ds[var].dims]


def plot_window(ds: xr.Dataset, endpoint: str = "mrd_neg_cr_d28", contour: str | None =
                "crs_g3plus", *, x: str | None = None, y: str | None = None,
                levels=(0.05, 0.1, 0.2, 0.3), ax=None, cmap: str = "viridis",
                window: tuple[float, float] | None = None):
    """Heatmap of ``endpoint`` over two swept axes, with contours of ``contour``.

    With ``window=(min_endpoint, max_contour)`` the therapeutic window, the cells where
    ``endpoint >= min_endpoint`` and ``contour <= max_contour`` (e.g. P(MRD-negative CR)
    >= 0.5 and P(CRS grade >= 3) <= 0.2), is drawn hatched and outlined in white (gid
    ``"therapeutic_window"``); a cell without a value is never in the window.

    Parameters
    ----------
    ds : a grid sweep Dataset with (at least) two swept dims; other dims must be selected
        first (``ds.sel(...)``).
    endpoint : variable drawn as colours (e.g. P(MRD-negative CR at day 28)).
    contour : variable drawn as labelled contour lines (e.g. P(CRS >= 3)); None = none.
    x, y : the swept dims on the axes (default: the endpoint's first dim on x, second on y).
    levels : contour levels, in ``contour``'s unit.
    ax : matplotlib Axes to draw into (default: a new figure).
    window : (lowest ``endpoint``, highest ``contour``) of the therapeutic window; None = no
        window. Needs ``contour``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if window is not None and contour is None:
        raise ValueError("plot_window: a window needs contour (the toxicity endpoint)")
    if endpoint not in ds:
        raise ValueError(f"plot_window: endpoint {endpoint!r} is not in the Dataset; "
                         f"variables: {', '.join(ds.data_vars)}")
    dims = _swept_dims(ds, endpoint)
    if len(dims) != 2 or "sample" in dims:
        raise ValueError(f"plot_window needs a grid sweep with exactly two swept dims; "
                         f"{endpoint!r} has dims {dims}: select the others first "
                         "(ds.sel(...)) or run a two-axis grid")
    x = x or dims[0]
    y = y or [d for d in dims if d != x][0]
    if {x, y} != set(dims):
        raise ValueError(f"plot_window: x={x!r}, y={y!r} must be the dims {dims}")
    ax = _axes(ax)
    z = ds[endpoint].transpose(y, x)
    xv, yv = ds[x].values, ds[y].values
    xs = np.arange(xv.size) if xv.dtype.kind not in "fiu" else xv.astype(float)
    ys = np.arange(yv.size) if yv.dtype.kind not in "fiu" else yv.astype(float)
    xlog, ylog = _is_log(xv), _is_log(yv)
    vmin, vmax = (0.0, 1.0) if ds[endpoint].attrs.get("units") == "1" and \
        np.nanmax(np.asarray(z, float), initial=0) <= 1 else (None, None)
    import matplotlib

    values = np.ma.masked_invalid(np.asarray(z.values, dtype=float))
    n_missing = int(values.mask.sum()) if values.mask.ndim else int(bool(values.mask))
    if n_missing:  # hatched grey behind the masked cells: missing, not a low value
        ax.pcolormesh(_edges(xs, xlog), _edges(ys, ylog), np.zeros(values.shape),
                      shading="flat", cmap=matplotlib.colors.ListedColormap(["0.85"]),
                      hatch="//", edgecolor="0.6", linewidth=0.0)
    mesh = ax.pcolormesh(_edges(xs, xlog), _edges(ys, ylog), values,
                         shading="flat", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.figure.colorbar(mesh, ax=ax, label=_label(ds[endpoint], endpoint))
    if contour is not None:
        if contour not in ds:
            raise ValueError(f"plot_window: contour {contour!r} is not in the Dataset")
        c = np.asarray(ds[contour].transpose(y, x).values, dtype=float)
        if np.isfinite(c).sum() >= 4 and min(len(xs), len(ys)) >= 2 and \
                np.nanmax(c) > min(levels) and np.nanmin(c) < max(levels):
            cs = ax.contour(xs, ys, c, levels=sorted(levels), colors="white", linewidths=1.2)
            name = _short(ds[contour], contour)
            ax.clabel(cs, fmt=lambda v: f"{name} {v:g}", fontsize=7)
        if window is not None:
            inside = (np.asarray(values.filled(np.nan)) >= window[0]) & (c <= window[1])
            _draw_window(ax, inside, _edges(xs, xlog), _edges(ys, ylog))
    for vals, log, setter, ticks in ((xv, xlog, ax.set_xscale, ax.set_xticks),
                                     (yv, ylog, ax.set_yscale, ax.set_yticks)):
        if log:
            setter("log")
        if vals.dtype.kind not in "fiu":
            ticks(np.arange(vals.size), [str(v) for v in vals])
    ax.set_xlabel(_label(ds[x], x))
    ax.set_ylabel(_label(ds[y], y))
    title = _label(ds[endpoint], endpoint)
    if window is not None:
        title += (f"\nhatched: therapeutic window, P \u2265 {window[0]:g} and "
                  f"{_label(ds[contour], contour)} \u2264 {window[1]:g}")
    elif contour:
        title += f"\nlines: {_label(ds[contour], contour)}"
    ax.set_title(title + (f"\n{_missing_text(ds[endpoint], n_missing, values.size)}"
                    if n_missing else ""), fontsize=9)
    return ax


def _draw_window(ax, inside: np.ndarray, xe: np.ndarray, ye: np.ndarray) -> None:
    """Hatch the cells ``inside[j, i]`` (y, x) and outline the region they make."""
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Rectangle

    cells = [Rectangle((xe[i], ye[j]), xe[i + 1] - xe[i], ye[j + 1] - ye[j])
             for j, i in zip(*np.nonzero(inside))]
    hatch = PatchCollection(cells, facecolor="none", edgecolor="white", hatch="xx",
                            linewidth=0.0, zorder=3, label="therapeutic window")
    hatch.set_gid("therapeutic_window")
    ax.add_collection(hatch)
    pad = np.pad(inside, 1, constant_values=False)
    segments = []
    for j in range(inside.shape[0] + 1):  # horizontal edges between in and out
        for i in range(inside.shape[1]):
            if pad[j, i + 1] != pad[j + 1, i + 1]:
                segments.append([(xe[i], ye[j]), (xe[i + 1], ye[j])])
    for j in range(inside.shape[0]):  # vertical edges
        for i in range(inside.shape[1] + 1):
            if pad[j + 1, i] != pad[j + 1, i + 1]:
                segments.append([(xe[i], ye[j]), (xe[i], ye[j + 1])])
    outline = LineCollection(segments, colors="white", linewidths=2.5, zorder=4)
    outline.set_gid("therapeutic_window_outline")
    ax.add_collection(outline)
    if not cells:
        ax.text(0.5, 0.5, "no therapeutic window in this range", transform=ax.transAxes,
                ha="center", va="center", color="white", fontsize=9,
                bbox={"facecolor": "0.2", "alpha": 0.7, "linewidth": 0})


def _missing_text(da: xr.DataArray, n: int, total: int) -> str:
    why = da.attrs.get("not_estimable")
    return (f"hatched: {n} of {total} points without a value ("
            + (f"not estimable: {why}" if why else "failed solve or no evaluable patient")
            + ")")


def _band(ds: xr.Dataset, name: str, level: float = 0.95):
    """(low, high) of the cohort uncertainty of ``name``: its stored Clopper-Pearson bounds
    or interquartile range, else the Clopper-Pearson interval computed from the proportion
    and ``n_evaluable`` (patients per point); None without a population."""
    for lo, hi in ((f"{name}_ci_lo", f"{name}_ci_hi"), (f"{name}_q25", f"{name}_q75")):
        if lo in ds and hi in ds:
            return np.asarray(ds[lo].values, float), np.asarray(ds[hi].values, float)
    if "n_evaluable" in ds and _is_probability(ds[name], name):
        from cartsim.stats import binomial_ci

        p = np.asarray(ds[name].values, float).ravel()
        n = np.broadcast_to(np.asarray(ds["n_evaluable"].values), ds[name].shape).ravel()
        bounds = np.array([binomial_ci(int(round(pi * ni)), int(ni), 1 - level)
                           if np.isfinite(pi) and ni > 0 else (np.nan, np.nan)
                           for pi, ni in zip(p, n)], dtype=float)
        return (bounds[:, 0].reshape(ds[name].shape), bounds[:, 1].reshape(ds[name].shape))
    return None


def dose_window(ds: xr.Dataset, x: str, efficacy: str = "mrd_neg_cr_d28",
                toxicity: str = "crs_g3plus", window: tuple[float, float] = (0.5, 0.2)):
    """The swept values of ``x`` where ``efficacy >= window[0]`` and ``toxicity <=
    window[1]`` (a 1-D sweep): a boolean array over ``ds[x]``."""
    e = np.asarray(ds[efficacy].values, float)
    t = np.asarray(ds[toxicity].values, float)
    return (e >= window[0]) & (t <= window[1])


def plot_dose_response(ds: xr.Dataset, endpoints=("mrd_neg_cr_d28", "crs_g3plus"), *,
                       x: str | None = None, hue: str | None = None, ax=None,
                       window: tuple[float, float] | None = None, level: float = 0.95):
    """Endpoints against one swept axis, with cohort uncertainty bands.

    Parameters
    ----------
    ds : a sweep Dataset. With a population per point the band is the Clopper-Pearson
        interval (``X_ci_lo``/``X_ci_hi``, else computed at ``level`` from the proportion and
        ``n_evaluable``) of a proportion or the interquartile range (``X_q25``/``X_q75``) of
        a median; with one patient per point there is no band (the legend says so).
    endpoints : variables to draw (one line each, or one per ``hue`` value).
    x : the swept dim on the x axis (default: the first endpoint's first dim).
    hue : another swept dim drawn as one line per value; other dims must be selected first.
    ax : matplotlib Axes (default: a new figure).
    window : (lowest P(efficacy), highest P(toxicity)): shade the x range where the first
        endpoint is >= the first value and the second <= the second (the therapeutic
        window; gid ``"therapeutic_window"``). Needs two endpoints and no ``hue``.
    level : confidence level of a computed band.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    missing = [e for e in endpoints if e not in ds]
    if missing:
        raise ValueError(f"plot_dose_response: {missing} not in the Dataset; variables: "
                         f"{', '.join(ds.data_vars)}")
    dims = _swept_dims(ds, endpoints[0])
    x = x or dims[0]
    other = [d for d in dims if d != x]
    if x not in dims or (other and other != [hue]):
        raise ValueError(f"plot_dose_response: the endpoint has dims {dims}; choose x among "
                         "them and draw at most one other as hue (select the rest first)")
    if window is not None and (len(endpoints) < 2 or hue is not None):
        raise ValueError("plot_dose_response: a window needs two endpoints (efficacy, "
                         "toxicity) and no hue")
    ax = _axes(ax)
    xv = ds[x].values
    hues = [None] if hue is None else list(ds[hue].values)
    no_band = []
    for e in endpoints:
        for h in hues:
            sub = ds if h is None else ds.sel({hue: h})
            name = _label(ds[e], e)
            hname = _short(ds[hue], hue) if hue else ""
            label = name if h is None else f"{name}, {hname} {h:g}" if isinstance(h, float) \
                else f"{name}, {hname} {h}"
            y = np.asarray(sub[e].values, float)
            if not np.isfinite(y).all():  # a gap, not a zero
                label += f" ({int((~np.isfinite(y)).sum())} points without a value)"
            (line,) = ax.plot(xv, y, marker="o", ms=3, label=label)
            band = _band(sub, e, level)
            if band is not None:
                ax.fill_between(xv, band[0], band[1], color=line.get_color(), alpha=0.2,
                                linewidth=0, label=f"{label}: {_band_name(sub, e, level)}")
            else:
                no_band.append(e)
    if window is not None:
        ok = dose_window(ds, x, endpoints[0], endpoints[1], window)
        edges = _edges(np.asarray(xv, float), _is_log(xv))
        what = (f"therapeutic window: {_label(ds[endpoints[0]], endpoints[0])} \u2265 "
                f"{window[0]:g}, {_label(ds[endpoints[1]], endpoints[1])} \u2264 {window[1]:g}")
        first = True
        for i in np.nonzero(ok)[0]:
            span = ax.axvspan(edges[i], edges[i + 1], facecolor="#27ae60", alpha=0.12,
                              hatch="//", edgecolor="#27ae60", linewidth=0, zorder=0,
                              label=what if first else None)
            span.set_gid("therapeutic_window")
            first = False
        if not ok.any():
            ax.text(0.5, 0.97, "no therapeutic window in this range", transform=ax.transAxes,
                    ha="center", va="top", fontsize=8)
    if _is_log(xv):
        ax.set_xscale("log")
    ax.set_xlabel(_label(ds[x], x))
    probs = all(_is_probability(ds[e], e) for e in endpoints)
    units = {ds[e].attrs.get("units", "") for e in endpoints}
    ax.set_ylabel(_label(ds[endpoints[0]], endpoints[0]) if len(endpoints) == 1 else
                  ("probability over the cohort" if probs else
                   "proportion" if units == {"1"} else ", ".join(sorted(units))))
    if no_band:
        ax.set_title("no uncertainty band: one patient per point (run with a population)",
                     fontsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    return ax


def _band_name(ds: xr.Dataset, name: str, level: float) -> str:
    if f"{name}_q25" in ds and f"{name}_ci_lo" not in ds:
        return "interquartile range over patients"
    n = np.asarray(ds["n_evaluable"].values) if "n_evaluable" in ds else np.array([])
    over = f" (n = {int(n.min())} patients per point)" if n.size and n.min() == n.max() \
        else ""
    pct = f"{100 * level:g}%"
    if f"{name}_ci_lo" in ds:  # stored: "lower 95% Clopper-Pearson bound: ..."
        words = str(ds[f"{name}_ci_lo"].attrs.get("long_name", "")).split()
        pct = words[1] if len(words) > 1 and words[1].endswith("%") else "stored"
    return f"{pct} Clopper-Pearson interval{over}"


def parameter_label(name: str, ds: xr.Dataset | None = None, width: int = 34) -> str:
    """Clinical name with units of a swept or sensitivity input (``model.params.k_kill`` ->
    ``maximal per-target killing rate by CAR-T effectors (1/day)``), wrapped at ``width``.

    From the Dataset's ``parameter_long_name``/``parameter_units`` if it has them, else the
    sweep's table of scenario fields, else the model's parameter table (model from
    ``ds.attrs["model"]``, default cd7); the raw name if none knows it."""
    import textwrap

    from cartsim.plot._common import pretty_units

    text, units = name, ""
    if ds is not None and "parameter_long_name" in ds and name in ds["parameter"].values:
        row = ds.sel(parameter=name)
        text = str(row["parameter_long_name"].values)
        units = str(row["parameter_units"].values) if "parameter_units" in ds else ""
    else:
        from cartsim.sweep.axes import FIELD_UNITS

        if name in FIELD_UNITS:
            units, text = FIELD_UNITS[name]
        elif name.startswith("model.params."):
            from cartsim.models import get_model

            model = str((ds.attrs.get("model") if ds is not None else None) or "cd7")
            try:
                ps = get_model(model).parameters
            except Exception:  # an unknown model name: keep the raw name
                ps = None
            pname = name.removeprefix("model.params.")
            if ps is not None and pname in ps.index:
                text = ps[pname].description or pname
                units = "" if ps[pname].unit == "-" else ps[pname].unit
    units = pretty_units(units)
    full = f"{text} ({units})" if units else text
    return textwrap.fill(full, width)


def plot_sensitivity(ds: xr.Dataset, endpoint: str | None = None, *, ax=None):
    """Sobol (S1, ST) or Morris (mu*) indices of one endpoint as sorted horizontal bars.

    Parameters
    ----------
    ds : a Dataset of :func:`cartsim.sweep.run_sensitivity` or
        :func:`cartsim.sweep.sensitivity_indices`.
    endpoint : which endpoint (default: the first).
    ax : matplotlib Axes (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
    """
    eps = [str(e) for e in ds["endpoint"].values]
    endpoint = endpoint or eps[0]
    if endpoint not in eps:
        raise ValueError(f"plot_sensitivity: endpoint {endpoint!r} not analysed; "
                         f"analysed: {', '.join(eps)}")
    sub = ds.sel(endpoint=endpoint)
    names = [str(p) for p in ds["parameter"].values]
    ax = _axes(ax)
    pos = np.arange(len(names))
    if "ST" in ds:
        order = np.argsort(np.nan_to_num(sub["ST"].values, nan=-1.0))
        h = 0.38
        ax.barh(pos + h / 2, sub["ST"].values[order], h, xerr=sub["ST_conf"].values[order],
                label="total (ST)", color="#1f5fa8", capsize=2)
        ax.barh(pos - h / 2, sub["S1"].values[order], h, xerr=sub["S1_conf"].values[order],
                label="first order (S1)", color="#e67e22", capsize=2)
        ax.set_xlabel("Sobol index (share of output variance)")
        ax.axvline(0.0, color="0.3", lw=0.8)
    else:
        order = np.argsort(np.nan_to_num(sub["mu_star"].values, nan=-1.0))
        ax.barh(pos, sub["mu_star"].values[order], 0.6, xerr=sub["mu_star_conf"].values[order],
                color="#1f5fa8", capsize=2, label="mu*")
        ax.plot(sub["sigma"].values[order], pos, "o", color="#c0392b", label="sigma")
        unit = ds.attrs.get(f"units_{endpoint}", "")
        ax.set_xlabel(f"Morris elementary effect ({unit} per normalised range)"
                      if unit and unit != "1" else "Morris elementary effect (per normalised "
                      "range)")
    ax.set_yticks(pos, [parameter_label(names[i], ds) for i in order], fontsize=8)
    n_bad = int(sub["n_nonfinite"]) if "n_nonfinite" in sub else 0
    n_runs = ds.sizes.get("sample", 0)
    long_name = ds.attrs.get(f"long_name_{endpoint}")
    what = _label(xr.DataArray(0, attrs={"units": ds.attrs.get(f"units_{endpoint}", "1"),
                                         "long_name": long_name or endpoint}), endpoint)
    ax.set_title(what + (f"\n{n_bad} of {n_runs} runs without a value (filled with the "
                             "mean)" if n_bad else ""), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax
