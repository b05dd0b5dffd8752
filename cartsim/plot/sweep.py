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

__all__ = ["plot_dose_response", "plot_sensitivity", "plot_window"]


def _axes(ax, figsize=(6.4, 4.4)):
    if ax is not None:
        return ax
    from cartsim.plot._common import one_axes

    return one_axes(None, figsize=figsize)


def _label(da: xr.DataArray, name: str) -> str:
    units = da.attrs.get("units", "")
    text = da.attrs.get("long_name", name)
    if len(text) > 60:
        text = name
    return f"{text} ({units})" if units and units != "1" else text


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
                levels=(0.05, 0.1, 0.2, 0.3), ax=None, cmap: str = "viridis"):
    """Heatmap of ``endpoint`` over two swept axes, with contours of ``contour``.

    Parameters
    ----------
    ds : a grid sweep Dataset with (at least) two swept dims; other dims must be selected
        first (``ds.sel(...)``).
    endpoint : variable drawn as colours (e.g. P(MRD-negative CR at day 28)).
    contour : variable drawn as labelled contour lines (e.g. P(CRS >= 3)); None = none.
    x, y : the swept dims on the axes (default: the endpoint's first dim on x, second on y).
    levels : contour levels, in ``contour``'s unit.
    ax : matplotlib Axes to draw into (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
    """
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
        if np.isfinite(c).sum() >= 4 and min(len(xs), len(ys)) >= 2:
            cs = ax.contour(xs, ys, c, levels=sorted(levels), colors="white", linewidths=1.2)
            ax.clabel(cs, fmt=lambda v: f"{contour} {v:g}", fontsize=7)
    for vals, log, setter, ticks in ((xv, xlog, ax.set_xscale, ax.set_xticks),
                                     (yv, ylog, ax.set_yscale, ax.set_yticks)):
        if log:
            setter("log")
        if vals.dtype.kind not in "fiu":
            ticks(np.arange(vals.size), [str(v) for v in vals])
    ax.set_xlabel(_label(ds[x], x))
    ax.set_ylabel(_label(ds[y], y))
    ax.set_title(f"{endpoint}" + (f" (contours: {contour})" if contour else "")
                 + (f"\n{_missing_text(ds[endpoint], n_missing, values.size)}"
                    if n_missing else ""), fontsize=9)
    return ax


def _missing_text(da: xr.DataArray, n: int, total: int) -> str:
    why = da.attrs.get("not_estimable")
    return (f"hatched: {n} of {total} points without a value ("
            + (f"not estimable: {why}" if why else "failed solve or no evaluable patient")
            + ")")


def _band(ds: xr.Dataset, name: str):
    for lo, hi in ((f"{name}_ci_lo", f"{name}_ci_hi"), (f"{name}_q25", f"{name}_q75")):
        if lo in ds and hi in ds:
            return ds[lo], ds[hi]
    return None


def plot_dose_response(ds: xr.Dataset, endpoints=("mrd_neg_cr_d28", "crs_g3plus"), *,
                       x: str | None = None, hue: str | None = None, ax=None):
    """Endpoints against one swept axis, with cohort uncertainty bands.

    Parameters
    ----------
    ds : a sweep Dataset. With a population per point the band is the Clopper-Pearson
        interval (``X_ci_lo``/``X_ci_hi``) of a proportion or the interquartile range
        (``X_q25``/``X_q75``) of a median; without one, no band.
    endpoints : variables to draw (one line each, or one per ``hue`` value).
    x : the swept dim on the x axis (default: the first endpoint's first dim).
    hue : another swept dim drawn as one line per value; other dims must be selected first.
    ax : matplotlib Axes (default: a new figure).

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
    ax = _axes(ax)
    xv = ds[x].values
    hues = [None] if hue is None else list(ds[hue].values)
    for e in endpoints:
        for h in hues:
            sub = ds if h is None else ds.sel({hue: h})
            label = e if h is None else f"{e}, {hue}={h:g}" if isinstance(h, float) \
                else f"{e}, {hue}={h}"
            y = np.asarray(sub[e].values, float)
            if not np.isfinite(y).all():  # a gap, not a zero
                label += f" ({int((~np.isfinite(y)).sum())} points without a value)"
            (line,) = ax.plot(xv, y, marker="o", ms=3, label=label)
            band = _band(sub, e)
            if band is not None:
                ax.fill_between(xv, np.asarray(band[0].values, float),
                                np.asarray(band[1].values, float), color=line.get_color(),
                                alpha=0.2, linewidth=0)
    if _is_log(xv):
        ax.set_xscale("log")
    ax.set_xlabel(_label(ds[x], x))
    units = {ds[e].attrs.get("units", "") for e in endpoints}
    ax.set_ylabel(_label(ds[endpoints[0]], endpoints[0]) if len(endpoints) == 1 else
                  ("proportion" if units == {"1"} else ", ".join(sorted(units))))
    ax.legend(fontsize=7)
    return ax


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
    ax.set_yticks(pos, [names[i] for i in order])
    n_bad = int(sub["n_nonfinite"]) if "n_nonfinite" in sub else 0
    n_runs = ds.sizes.get("sample", 0)
    ax.set_title(endpoint + (f"\n{n_bad} of {n_runs} runs without a value (filled with the "
                             "mean)" if n_bad else ""), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax
