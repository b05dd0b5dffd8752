"""A non-compartmental read of one patient's curve, and the start values it implies.

The read takes the quantified (uncensored) values only and gives what a
pharmacometrician reads off a plot of ln C against time:

* the observed peak ``c_peak`` and its day ``t_peak``;
* the expansion rate ``ln(c_peak / c_first) / (t_peak - t_first)`` from the first
  quantified value before the peak (NaN when the peak is the first value);
* the early decline rate ``-(ln c_next - ln c_peak) / (t_next - t_peak)`` to the next
  quantified value after the peak;
* the terminal slope: least squares of ``ln C`` on time over the last three quantified
  values after the peak (NaN with fewer than three);
* ``lloq``: the smallest limit of quantification of the censored values (NaN if none).

:func:`start_values` maps a read to start values of a model's parameters
(:data:`START_RULES` holds the models that have a mapping; the others start from
their scenario values). For ``stein2019`` (Stein et al. 2019, CPT:PSP 8:285)::

    Tmax = t_peak,  Cmax = c_peak,  foldx = exp(growth * Tmax),
    alpha = early decline,  beta = terminal decline,
    FB = (terminal line extrapolated back to t_peak) / c_peak

each clipped into the parameter's bounds (``alpha > beta`` kept), with assumed values
where the data cannot say (below).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["NCARead", "START_RULES", "nca_read", "start_values"]


@dataclass(frozen=True)
class NCARead:
    """Non-compartmental features of one curve (times in day, levels in the analyte's unit)."""

    n_quantified: int
    c_peak: float
    t_peak: float
    growth_rate: float
    early_decline: float
    terminal_decline: float
    t_last: float
    c_last: float
    t_next: float
    lloq: float


def nca_read(time, dv, cens) -> NCARead | None:
    """The non-compartmental read of one patient's observations (None: nothing quantified)."""
    time = np.asarray(time, dtype=np.float64)
    dv = np.asarray(dv, dtype=np.float64)
    cens = np.asarray(cens, dtype=bool)
    q = ~cens & (dv > 0)
    lloq = float(np.min(dv[cens])) if cens.any() else math.nan
    if not q.any():
        return None
    order = np.argsort(time[q], kind="stable")
    t, c = time[q][order], dv[q][order]
    k = int(np.argmax(c))
    t_pk, c_pk = float(t[k]), float(c[k])
    growth = math.nan
    if k > 0 and t_pk > t[0] and c_pk > c[0]:
        growth = math.log(c_pk / c[0]) / (t_pk - t[0])
    early, t_next = math.nan, math.nan
    if k + 1 < t.size:
        t_next = float(t[k + 1])
        early = -math.log(c[k + 1] / c_pk) / (t[k + 1] - t_pk)
    terminal = math.nan
    if t.size - k - 1 >= 3:
        slope = np.polyfit(t[-3:], np.log(c[-3:]), 1)[0]
        terminal = -float(slope)
    return NCARead(int(q.sum()), c_pk, t_pk, growth, early, terminal, float(t[-1]),
                   float(c[-1]), t_next, lloq)


FOLDX_DEFAULT = 1000.0
"""foldx start (-) when the data show no rise to the peak: assumption, the order of the
expansion of a CAR-T product from infusion to peak (Stein 2019 typical 3900)."""
ALPHA_DEFAULT = 0.2
"""alpha start (1/day) when no value follows the peak: assumption (Stein 2019 typical 0.16)."""
FB_DEFAULT = 0.01
"""FB start (-) without a terminal phase in the data: assumption (Stein 2019 typical 0.0079)."""


def _stein2019(read: NCARead, bounds: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    def clip(name, v):
        lo, hi = bounds[name]
        span = hi - lo
        return float(min(max(v, lo + 1e-6 * span), hi - 1e-6 * span))

    tmax = clip("Tmax", read.t_peak)
    foldx = math.exp(read.growth_rate * tmax) if math.isfinite(read.growth_rate) else math.nan
    if not (math.isfinite(foldx) and foldx > 2.0):
        foldx = FOLDX_DEFAULT
    alpha = read.early_decline if (math.isfinite(read.early_decline)
                                   and read.early_decline > 0) else ALPHA_DEFAULT
    beta = read.terminal_decline
    fb = FB_DEFAULT
    if math.isfinite(beta) and 0 < beta < alpha:
        back = read.c_last * math.exp(beta * (read.t_last - read.t_peak))
        fb = min(max(back / read.c_peak, 1e-4), 0.5)
    else:
        beta = min(alpha / 20.0, 0.01)
    alpha = max(alpha, 2.0 * beta)
    return {"foldx": clip("foldx", foldx), "Tmax": tmax, "Cmax": clip("Cmax", read.c_peak),
            "alpha": clip("alpha", alpha), "FB": clip("FB", fb), "beta": clip("beta", beta)}


START_RULES: dict[str, Callable[[NCARead, Mapping[str, tuple[float, float]]], dict]] = {
    "stein2019": _stein2019,
}
"""Model name -> function of (read, parameter bounds) giving start values (model units)."""


def start_values(model: str, read: NCARead | None,
                 bounds: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Start values implied by ``read`` for ``model`` (empty: no rule or no read)."""
    rule = START_RULES.get(model)
    if rule is None or read is None:
        return {}
    return rule(read, bounds)
