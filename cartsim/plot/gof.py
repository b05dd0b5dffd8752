"""Goodness-of-fit plots of a fit Dataset (:func:`cartsim.fitting.fit_dataset`).

Every function takes the Dataset (and optionally a matplotlib Axes or Figure),
draws, and returns the Axes or Figure; none calls ``plt.show()``. Figures are
created with :class:`matplotlib.figure.Figure` (no pyplot state).

Censored (BLQ) observations are never drawn as if they were measured: they
appear as open downward triangles at the LLOQ (the value is somewhere below),
are left out of residual plots (their residual is not defined), and the
visual predictive check treats them as censored:

* percentiles (5th, 50th, 95th by default) of observed and of simulated data
  are computed per time bin with every value below its LLOQ ranked below all
  quantified values (the order statistics above the BLQ fraction are exact);
  a percentile that falls below the LLOQ is not drawn (observed) or its
  prediction interval is cut at the LLOQ (simulated), instead of being
  imputed;
* a second panel compares the observed fraction below the LLOQ per bin with
  the prediction interval of that fraction across simulated replicates
  (Bergstrand et al. 2009, AAPS J 11:371; Bergstrand et al. 2011, AAPS J 13:143).
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_gof", "plot_individual_fits", "plot_obs_vs_pred", "plot_residual_panels",
           "plot_residuals", "plot_saem_trace", "plot_vpc", "vpc_statistics"]

_COLORS = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"]


def _figure(fig=None, figsize=(8, 6)):
    if fig is not None:
        return fig
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _axes(ax=None):
    if ax is not None:
        return ax
    return _figure(figsize=(4.5, 4)).subplots()


def _analytes(ds, analyte):
    names = list(dict.fromkeys(ds["analyte"].values.tolist()))
    if analyte is None:
        return names
    if analyte not in names:
        raise ValueError(f"analyte {analyte!r} is not in the Dataset (it has {', '.join(names)})")
    return [analyte]


def plot_obs_vs_pred(ds, pred: str = "ipred", ax=None, analyte: str | None = None):
    """Observed vs predicted (log-log) with the line of identity.

    Parameters
    ----------
    ds : fit Dataset. pred : ``ipred`` (individual) or ``ppred`` (population).
    ax : Axes to draw into. analyte : one analyte (default all, one colour each).
    """
    ax = _axes(ax)
    lo, hi = np.inf, -np.inf
    for k, a in enumerate(_analytes(ds, analyte)):
        m = ds["analyte"].values == a
        f = ds[pred].values[m]
        y = ds["dv"].values[m]
        c = ds["cens"].values[m].astype(bool)
        unit = ds["unit"].values[m][0]
        col = _COLORS[k % len(_COLORS)]
        ax.scatter(f[~c], y[~c], s=14, color=col, alpha=0.7, label=f"{a} [{unit}]")
        if c.any():
            ax.scatter(f[c], y[c], s=24, marker="v", facecolors="none", edgecolors=col,
                       label=f"{a}: < LLOQ (at LLOQ)")
        ok = np.concatenate([f[f > 0], y[y > 0]])
        if ok.size:
            lo, hi = min(lo, ok.min()), max(hi, ok.max())
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("individual prediction" if pred == "ipred" else "population prediction")
    ax.set_ylabel("observed")
    ax.legend(fontsize=7)
    return ax


def plot_residuals(ds, x: str = "time", res: str = "iwres", ax=None, analyte: str | None = None):
    """Weighted residuals (``iwres`` or ``pwres``) vs ``time`` or the prediction (``pred``).

    Censored observations have no residual and are left out (their number is in the title).
    """
    ax = _axes(ax)
    pred = "ipred" if res == "iwres" else "ppred"
    for k, a in enumerate(_analytes(ds, analyte)):
        m = (ds["analyte"].values == a) & ~ds["cens"].values.astype(bool)
        xv = ds["time"].values[m] if x == "time" else ds[pred].values[m]
        ax.scatter(xv, ds[res].values[m], s=14, alpha=0.7, color=_COLORS[k % len(_COLORS)],
                   label=a)
    for v, st in ((0, "-"), (1.96, ":"), (-1.96, ":")):
        ax.axhline(v, color="k", lw=1, ls=st)
    if x != "time":
        ax.set_xscale("log")
    ax.set_xlabel("time (day)" if x == "time" else
                  ("individual" if pred == "ipred" else "population") + " prediction")
    ax.set_ylabel(f"{res.upper()} (ln scale, -)")
    n_c = int(ds["cens"].values.sum())
    ax.set_title(f"{n_c} censored values not shown" if n_c else "", fontsize=8)
    ax.legend(fontsize=7)
    return ax


def plot_gof(ds, fig=None):
    """2x2 overview: observed vs individual and population predictions, IWRES vs time and
    vs individual prediction. Returns the Figure."""
    fig = _figure(fig, figsize=(9, 8))
    axs = fig.subplots(2, 2)
    plot_obs_vs_pred(ds, "ipred", axs[0, 0])
    plot_obs_vs_pred(ds, "ppred", axs[0, 1])
    plot_residuals(ds, "time", "iwres", axs[1, 0])
    plot_residuals(ds, "pred", "iwres", axs[1, 1])
    return fig


def plot_residual_panels(ds, fig=None):
    """2x2 residual panels: IWRES and PWRES vs time and vs prediction. Returns the Figure."""
    fig = _figure(fig, figsize=(9, 8))
    axs = fig.subplots(2, 2)
    plot_residuals(ds, "time", "iwres", axs[0, 0])
    plot_residuals(ds, "pred", "iwres", axs[0, 1])
    plot_residuals(ds, "time", "pwres", axs[1, 0])
    plot_residuals(ds, "pred", "pwres", axs[1, 1])
    return fig


def plot_individual_fits(ds, patients=None, analyte: str | None = None, ncols: int = 4,
                         fig=None):
    """Per patient: the individual prediction curve, observations, and BLQ values as open
    downward triangles at their LLOQ (dashed line). Returns the Figure."""
    ids = list(ds["patient"].values) if patients is None else [str(p) for p in patients]
    ids = ids[:24]
    names = _analytes(ds, analyte)
    nrows = int(np.ceil(len(ids) / ncols))
    ncol = min(ncols, len(ids))
    fig = _figure(fig, figsize=(3.2 * ncol, 2.6 * nrows))
    axs = np.atleast_1d(fig.subplots(nrows, ncol, squeeze=False)).ravel()
    pid = ds["patient_id"].values
    for ax, p in zip(axs, ids):
        for k, a in enumerate(names):
            col = _COLORS[k % len(_COLORS)]
            m = (pid == p) & (ds["analyte"].values == a)
            if a in ds["analyte_name"].values:
                # the unit the data declare (e.g. cells/uL for flow data fitted by stein2019)
                unit = ds["unit"].values[ds["analyte"].values == a][0]
                curve = ds["ipred_curve"].sel(patient=p, analyte_name=a)
                ax.plot(ds["curve_time"].values, curve.values, color=col, lw=1.2,
                        label=f"{a} [{unit}]")
            c = ds["cens"].values[m].astype(bool)
            t, y = ds["time"].values[m], ds["dv"].values[m]
            ax.scatter(t[~c], y[~c], s=14, color=col)
            if c.any():
                ax.scatter(t[c], y[c], s=28, marker="v", facecolors="none", edgecolors=col)
            lloq = ds["lloq"].values[m]
            if np.isfinite(lloq).any():
                ax.axhline(np.nanmax(lloq), color=col, ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(f"ID {p}", fontsize=9)
        ax.set_xlabel("day")
    for ax in axs[len(ids):]:
        ax.set_visible(False)
    if len(ids):
        axs[0].legend(fontsize=6)
    return fig


def _bins(t: np.ndarray, n_bins: int | None):
    u = np.unique(t)
    if n_bins is None and u.size <= 15:
        edges = np.concatenate([[u[0] - 0.5], (u[1:] + u[:-1]) / 2, [u[-1] + 0.5]])
    else:
        edges = np.unique(np.quantile(t, np.linspace(0, 1, (n_bins or 10) + 1)))
        edges[-1] += 1e-9
    return edges


def vpc_statistics(ds, analyte: str | None = None, percentiles=(5, 50, 95), level: float = 0.9,
                   n_bins: int | None = None) -> dict:
    """Binned statistics of a censoring-aware VPC (see the module docstring).

    Returns
    -------
    dict
        ``t`` (bin mid-times, day); ``lloq`` per bin; ``obs_pct`` (bins x
        percentiles, NaN where below the LLOQ); ``sim_pct`` (lower, median,
        upper of each simulated percentile: 3 x bins x percentiles, the lower
        limit cut at the LLOQ); ``obs_blq`` (observed fraction below the
        LLOQ); ``sim_blq`` (lower, median, upper of the simulated fraction).
    """
    a = _analytes(ds, analyte)[0]
    m = ds["analyte"].values == a
    t = ds["time"].values[m]
    y = ds["dv"].values[m]
    c = ds["cens"].values[m].astype(bool)
    lloq = ds["lloq"].values[m]
    lq = np.where(np.isfinite(lloq), lloq, 0.0)
    sim = ds["sim"].values[:, m]
    if sim.shape[0] == 0:
        raise ValueError("the Dataset has no simulated replicates (fit_dataset(n_sim=0))")
    edges = _bins(t, n_bins)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    q = np.asarray(percentiles, float)
    tail = (1 - level) / 2 * 100
    out = {k: [] for k in ("t", "lloq", "obs_pct", "sim_pct", "obs_blq", "sim_blq", "n")}
    for b in range(len(edges) - 1):
        k = which == b
        if not k.any():
            continue
        limit = float(lq[k].max())
        y_c = np.where(c[k], 0.0, y[k])  # BLQ ranked below every quantified value
        o = np.percentile(y_c, q)
        o = np.where(o < limit, np.nan, o)
        s = sim[:, k]
        s_blq = s < lq[k]
        s_c = np.where(s_blq, 0.0, s)
        sp = np.percentile(s_c, q, axis=1).T  # replicate x percentile
        band = np.percentile(sp, [tail, 50, 100 - tail], axis=0)  # 3 x percentile
        band = np.where(band < limit, limit if limit > 0 else np.nan, band)
        frac = s_blq.mean(axis=1)
        out["t"].append(float(np.median(t[k])))
        out["lloq"].append(limit)
        out["obs_pct"].append(o)
        out["sim_pct"].append(band)
        out["obs_blq"].append(float(c[k].mean()))
        out["sim_blq"].append(np.percentile(frac, [tail, 50, 100 - tail]))
        out["n"].append(int(k.sum()))
    res = {k: np.asarray(v) for k, v in out.items()}
    res["sim_pct"] = np.transpose(res["sim_pct"], (1, 0, 2))
    res["sim_blq"] = res["sim_blq"].T
    res["percentiles"] = q
    res["analyte"] = a
    return res


def plot_vpc(ds, analyte: str | None = None, percentiles=(5, 50, 95), level: float = 0.9,
             n_bins: int | None = None, fig=None):
    """Visual predictive check with BLQ handled as censored (two panels). Returns the Figure.

    Top: observed percentiles (points and lines, not drawn below the LLOQ) over
    the ``level`` prediction intervals of the same percentiles of simulated
    replicates (bands, cut at the LLOQ). Bottom: observed fraction below the
    LLOQ vs its simulated prediction interval.
    """
    st = vpc_statistics(ds, analyte, percentiles, level, n_bins)
    fig = _figure(fig, figsize=(7, 7))
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    t = st["t"]
    for j, p in enumerate(st["percentiles"]):
        col = "C0" if p == 50 else "C1"
        ax.fill_between(t, st["sim_pct"][0, :, j], st["sim_pct"][2, :, j], color=col,
                        alpha=0.25, lw=0,
                        label=f"{int(level * 100)}% PI of simulated P{p:g}")
        ax.plot(t, st["obs_pct"][:, j], "o-" if p == 50 else "o--", color="k", ms=3, lw=1,
                label=f"observed P{p:g}")
    a = st["analyte"]
    m = ds["analyte"].values == a
    c = ds["cens"].values[m].astype(bool)
    ax.scatter(ds["time"].values[m][~c], ds["dv"].values[m][~c], s=6, color="0.5", alpha=0.5)
    if c.any():
        ax.scatter(ds["time"].values[m][c], ds["dv"].values[m][c], s=12, marker="v",
                   facecolors="none", edgecolors="0.4", label="< LLOQ (at LLOQ)")
    if np.any(st["lloq"] > 0):
        ax.step(t, st["lloq"], where="mid", color="r", ls="--", lw=1, label="LLOQ")
    ax.set_yscale("log")
    unit = ds["unit"].values[m][0]
    ax.set_ylabel(f"{a} [{unit}]")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"VPC ({ds.sizes['replicate']} replicates), BLQ treated as censored",
                 fontsize=9)
    ax2.fill_between(t, st["sim_blq"][0], st["sim_blq"][2], color="C3", alpha=0.3, lw=0,
                     label=f"{int(level * 100)}% PI simulated")
    ax2.plot(t, st["sim_blq"][1], color="C3", lw=1)
    ax2.plot(t, st["obs_blq"], "ko-", ms=3, lw=1, label="observed")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel("fraction < LLOQ")
    ax2.set_xlabel("time (day)")
    ax2.legend(fontsize=6)
    return fig


def plot_saem_trace(ds, fig=None, ncols: int = 3):
    """SAEM traces of a population fit, one panel per quantity, one line per restart.

    A dashed vertical line marks the end of the exploration phase (step 1) and the start of
    the smoothing phase (step ``1/k``): converged restarts run flat and together in the
    smoothing phase. The legend gives each restart's log-likelihood and its Monte Carlo SE.
    """
    if "saem_trace" not in ds:
        raise ValueError("the Dataset has no saem_trace: plot_saem_trace draws population "
                         "(SAEM) fits")
    tr = ds["saem_trace"]
    names = [str(q) for q in tr["quantity"].values]
    nrows = -(-len(names) // ncols)
    fig = _figure(fig, figsize=(3.2 * ncols, 2.2 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    it = tr["iteration"].values
    n_explore = int(ds.attrs.get("n_explore", 0))
    for k, (ax, q) in enumerate(zip(axes, names)):
        for r in tr["restart"].values:
            ll = float(ds["restart_loglik"].sel(restart=r))
            se = float(ds["restart_loglik_se"].sel(restart=r))
            ax.plot(it, tr.sel(restart=r, quantity=q).values, color=_COLORS[int(r) % 8], lw=1,
                    label=f"restart {int(r)}: LL {ll:.1f} (MC SE {se:.1f})")
        if n_explore:
            ax.axvline(n_explore, color="grey", ls="--", lw=0.8)
        ax.set_title(q, fontsize=9)
        if k == 0:
            ax.legend(fontsize=6)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.supxlabel("SAEM iteration")
    return fig
