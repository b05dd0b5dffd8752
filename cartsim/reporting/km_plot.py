"""Kaplan-Meier figure of a virtual trial: PFS and OS with 95% bands and numbers at risk.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot global state), so
it is safe in batch jobs and threads; matplotlib is imported only when a figure is drawn.
The drawing itself lives in :mod:`cartsim.plot.km` (shared with notebooks).
"""

from __future__ import annotations

from cartsim.plot.km import draw_at_risk, draw_km, km_end, km_ticks
from cartsim.stats import KaplanMeier

COLOURS = ("#1f77b4", "#d62728")  # PFS, OS


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
    ticks = km_ticks(curves, scale, step)
    draw_km(ax, curves, scale=scale, colours=COLOURS)
    draw_at_risk(risk, curves, ticks, scale=scale, colours=COLOURS)
    ax.set(ylabel="probability", title=title)
    risk.set_xlabel(f"time since CAR-T infusion ({unit})")
    risk.set_xticks(ticks)
    end = max(km_end(curves, scale), step)
    risk.set_xlim(-0.02 * end, end * 1.02)
    return fig
