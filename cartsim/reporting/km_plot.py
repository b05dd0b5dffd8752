"""Kaplan-Meier figure of a virtual trial: PFS and OS with 95% bands and numbers at risk.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot global state), so
it is safe in batch jobs and threads; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import math

import numpy as np

from cartsim.stats import KaplanMeier

COLOURS = ("#1f77b4", "#d62728")  # PFS, OS


def _steps(km: KaplanMeier, scale: float) -> tuple[np.ndarray, ...]:
    """Step-curve vertices from time 0 (S = 1) to the last observed time, in ``1/scale`` units."""
    x = np.concatenate(([0.0], km.time, [km.max_time])) / scale
    s, lo, hi = (np.concatenate(([1.0], a, a[-1:] if a.size else [1.0]))
                 for a in (km.survival, km.lower, km.upper))
    return x, s, lo, hi


def km_figure(curves: dict[str, KaplanMeier], *, scale: float, unit: str = "months",
              title: str = "", step: float = 6.0):
    """Draw Kaplan-Meier curves with log-log 95% bands, censoring ticks and numbers at risk.

    Parameters
    ----------
    curves : dict of str to KaplanMeier
        Curves by label (e.g. ``{"PFS": ..., "OS": ...}``), times in days.
    scale : float
        Days per x-axis unit (30.4375 for months).
    unit : str
        Label of the x-axis unit.
    title : str
        Figure title.
    step : float
        Spacing of the number-at-risk columns and x ticks, in x units.

    Returns
    -------
    matplotlib.figure.Figure
        A figure attached to an Agg canvas.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax, risk = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (5, 1)})
    end = max((km.max_time for km in curves.values() if km.n), default=0.0) / scale
    ticks = np.arange(0.0, (math.floor(end / step) + 1) * step, step) if end > 0 else [0.0]
    for row, ((label, km), colour) in enumerate(zip(curves.items(), COLOURS * len(curves))):
        if km.n:
            x, s, lo, hi = _steps(km, scale)
            ax.step(x, s, where="post", color=colour, label=f"{label} (n={km.n})")
            ax.fill_between(x, lo, hi, step="post", color=colour, alpha=0.15, linewidth=0)
            cens = km.censored_time
            ax.plot(cens / scale, km.at(cens)[0], linestyle="none", marker="|",
                    markersize=8, color=colour)
        at_risk = km.n_at_risk_at(np.asarray(ticks) * scale)
        for xt, n in zip(ticks, at_risk):
            risk.text(xt, -row, str(int(n)), ha="center", va="center", color=colour,
                      fontsize=8)
    ax.set(ylim=(0.0, 1.02), ylabel="probability", title=title)
    ax.grid(alpha=0.3)
    if any(km.n for km in curves.values()):
        ax.legend(loc="lower left", frameon=False)
    else:
        ax.text(0.5, 0.5, "no evaluable patients", ha="center", transform=ax.transAxes)
    risk.set(ylim=(-len(curves) + 0.5, 0.5), yticks=-np.arange(len(curves)),
             xlabel=f"time since CAR-T infusion ({unit})", title="number at risk")
    risk.set_yticklabels(list(curves))
    risk.title.set_fontsize(8)
    risk.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        risk.spines[side].set_visible(False)
    risk.set_xticks(ticks)
    risk.set_xlim(-0.02 * max(end, step), max(end, step) * 1.02)
    return fig
