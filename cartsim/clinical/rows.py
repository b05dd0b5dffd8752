"""One row of a trial summary table: a rate, a median with range, or a Kaplan-Meier read-out.

A row is a plain ``dict`` with the keys :data:`ROW_KEYS`, so it goes straight into a CSV,
a DataFrame or a Markdown table:

* ``section``, ``endpoint`` - where the row sits and what it reports;
* ``stat`` - how to read ``value``/``lo``/``hi``: ``"count"``; ``"proportion"`` (value
  ``n/N``, exact Clopper-Pearson 95% CI); ``"median_range"`` (median, min, max of the ``n``
  patients with a value); ``"km_survival"`` (Kaplan-Meier ``S(t)`` with log-log 95% CI;
  ``n`` at risk at ``t``); ``"km_median"`` (median time with Brookmeyer-Crowley 95% CI;
  ``n`` events);
* ``unit`` - unit of ``value``/``lo``/``hi`` (``"1"`` for proportions and counts);
* ``n``, ``N`` - numerator and denominator (ints); ``text`` - the formatted cell.
"""

from __future__ import annotations

import math

import numpy as np

from cartsim.stats import KaplanMeier, binomial_ci

ROW_KEYS = ("section", "endpoint", "stat", "unit", "n", "N", "value", "lo", "hi", "text")
NAN = float("nan")


def fmt_num(x: float) -> str:
    """A number for a table cell: thousands separators from 1,000, one decimal from 1."""
    if not math.isfinite(x):
        return "NA"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 1 or x == 0:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _row(section, endpoint, stat, unit, n, N, value, lo, hi, text) -> dict:
    return dict(zip(ROW_KEYS, (section, endpoint, stat, unit, int(n), int(N), float(value),
                               float(lo), float(hi), text)))


def count_row(section: str, endpoint: str, n: int, N: int, text: str | None = None) -> dict:
    """A plain count ``n`` (of ``N``); ``value`` is ``n``."""
    return _row(section, endpoint, "count", "1", n, N, n, NAN, NAN,
                text if text is not None else f"{n}")


def rate_row(section: str, endpoint: str, n: int, N: int) -> dict:
    """``n/N`` with its exact 95% interval, e.g. ``"18/20 (90.0%; 95% CI 68.3-98.8)"``."""
    if N == 0:
        return _row(section, endpoint, "proportion", "1", n, N, NAN, NAN, NAN,
                    "0/0 (not applicable)")
    lo, hi = binomial_ci(n, N)
    text = f"{n}/{N} ({100 * n / N:.1f}%; 95% CI {100 * lo:.1f}-{100 * hi:.1f})"
    return _row(section, endpoint, "proportion", "1", n, N, n / N, lo, hi, text)


def median_row(section: str, endpoint: str, values, N: int, unit: str,
               unit_text: str = "") -> dict:
    """Median (range) over the finite ``values``; NaN means "did not happen" and is not counted.

    E.g. ``"median 12.0 days (range 10.0-21.0); n=14/20"``: ``n`` is the number of finite
    values, so the text shows how many patients had one.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return _row(section, endpoint, "median_range", unit, 0, N, NAN, NAN, NAN,
                    f"none (n=0/{N})")
    med, lo, hi = float(np.median(v)), float(v.min()), float(v.max())
    text = (f"median {fmt_num(med)}{unit_text} (range {fmt_num(lo)}-{fmt_num(hi)}); "
            f"n={v.size}/{N}")
    return _row(section, endpoint, "median_range", unit, v.size, N, med, lo, hi, text)


def _omitted(km: KaplanMeier) -> str:
    return f"; {km.n_omitted} without a time omitted" if km.n_omitted else ""


def km_survival_row(section: str, endpoint: str, km: KaplanMeier, t_day: float) -> dict:
    """Kaplan-Meier ``S(t_day)`` with its 95% CI, e.g. ``"36.8% (95% CI 13.8-59.8); 7 at risk"``.

    Not estimable (NaN) past the largest observed time; the text then says where follow-up
    ends.
    """
    s, lo, hi = km.at(t_day)
    at_risk = int(km.n_at_risk_at(t_day))
    if km.n == 0:
        text = "no patients"
    elif not math.isfinite(s):
        text = f"not estimable (follow-up ends day {km.max_time:g} < day {t_day:g})"
    else:
        text = (f"{100 * s:.1f}% (95% CI {_pct(lo)}-{_pct(hi)}); {at_risk} at risk"
                f"{_omitted(km)}")
    return _row(section, endpoint, "km_survival", "1", at_risk, km.n, s, lo, hi, text)


def km_median_row(section: str, endpoint: str, km: KaplanMeier, scale: float,
                  unit: str) -> dict:
    """Kaplan-Meier median time (divided by ``scale``, e.g. days per month) with its 95% CI."""
    med, lo, hi = (v / scale for v in km.median())
    n_events = int(km.n_events.sum())
    if km.n == 0:
        text = "no patients"
    else:
        head = f"{fmt_num(med)} {unit}" if math.isfinite(med) else "not reached"
        text = (f"{head} (95% CI {_nr(lo)}-{_nr(hi)}); {n_events} events in {km.n}"
                f"{_omitted(km)}")
    return _row(section, endpoint, "km_median", unit, n_events, km.n, med, lo, hi, text)


def _pct(p: float) -> str:
    return f"{100 * p:.1f}" if math.isfinite(p) else "NA"


def _nr(x: float) -> str:
    return fmt_num(x) if math.isfinite(x) else "NR"
