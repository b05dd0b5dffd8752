"""Shared by the endpoint modules: vectorised read-outs along time, and output variables.

Every read-out takes a time vector ``t`` (days, shape (T,), strictly increasing,
shared by all patients) and arrays of shape (patient, T), and returns one value
per patient, with NaN where the read-out does not exist (no crossing, no observed
time). Conditions arrive already masked by what was observed (alive, followed
up, inside a window), so one mask decides what counts everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

NOT_EVALUABLE = -1
"""Value of a categorical (int) endpoint for a patient whose solve failed, or whose follow-up
does not reach the endpoint's assessment (see :data:`FOLLOW_UP_ATTR`)."""

FOLLOW_UP_ATTR = "needs_follow_up_day"
"""Attribute of an endpoint read at an assessment day or over a window from day 0: the day
(since infusion) the follow-up must reach for it to be estimable. Where the follow-up ends
earlier the endpoint is not estimable: it holds its fill value (NaN / False / -1) for every
patient, as for a failed solve, and :func:`cartsim.clinical.estimable` is False."""


class Track(NamedTuple):
    """Post-infusion trajectories and what of them was observed.

    Attributes
    ----------
    t : output times from day 0 on (days), shape (T,).
    x : observables by name, each of shape (patient, T).
    observed : (patient, T) bool: the patient's solve succeeded and the time is at or
        before death (events after death do not count).
    until : (patient,) last observed day: the death day or the end of follow-up.
    """

    t: np.ndarray
    x: dict[str, np.ndarray]
    observed: np.ndarray
    until: np.ndarray

    def seen_at(self, day: float) -> np.ndarray:
        """(patient,) bool: an assessment on ``day`` happened (on the grid, before death)."""
        return (self.t[0] <= day) & (day <= self.until)


class Var(NamedTuple):
    """One output variable: per-patient values, CF attributes, value for non-evaluable patients."""

    data: np.ndarray
    attrs: dict
    fill: object = None  # None: NaN for floats, False for bools, NOT_EVALUABLE for ints


def needs_follow_up(var: Var, day: float) -> Var:
    """``var`` marked as estimable only when the follow-up reaches ``day``."""
    return var._replace(attrs={**var.attrs, FOLLOW_UP_ATTR: float(day)})


def day_var(data, long_name: str) -> Var:
    """A time in days since CAR-T infusion (NaN: did not happen)."""
    return Var(np.asarray(data, dtype=float), {"units": "day", "long_name": long_name})


def flag_var(data, long_name: str) -> Var:
    """A yes/no endpoint."""
    return Var(np.asarray(data, dtype=bool), {"units": "1", "long_name": long_name})


def category_var(data, long_name: str, meanings: dict[int, str], fill: int = NOT_EVALUABLE) -> Var:
    """An integer category with CF ``flag_values`` / ``flag_meanings``."""
    if fill not in meanings:
        meanings = {fill: "not_evaluable", **meanings}
    return Var(np.asarray(data, dtype=np.int64),
               {"units": "1", "long_name": long_name,
                "flag_values": np.array(list(meanings), dtype=np.int64),
                "flag_meanings": " ".join(meanings.values())}, fill)


def day0_grid(t: np.ndarray, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Restrict to output times >= 0, interpolating day 0 in when it falls between two times.

    Returns the post-infusion time vector and the arrays on it.
    """
    keep = t >= 0.0
    if keep.sum() < 2:
        raise ValueError(f"endpoints need at least two output times at or after day 0 (CAR-T "
                         f"infusion); the Dataset's time runs {t[0]:g}..{t[-1]:g}")
    i = int(np.argmax(keep))  # t increases: the kept times are t[i:] (views, not copies)
    if i == 0 or t[i] == 0.0:
        return t[i:], {k: v[:, i:] for k, v in arrays.items()}
    w = -t[i - 1] / (t[i] - t[i - 1])
    tt = np.concatenate([[0.0], t[i:]])
    return tt, {k: np.concatenate([v[:, i - 1:i] + w * (v[:, i:i + 1] - v[:, i - 1:i]),
                                   v[:, i:]], axis=1) for k, v in arrays.items()}


def first_time(t: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """First time where ``cond`` holds, per patient (NaN: never)."""
    return np.where(cond.any(axis=1), t[np.argmax(cond, axis=1)], np.nan)


def last_time(t: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """Last time where ``cond`` holds, per patient (NaN: never)."""
    k = cond.shape[1] - 1 - np.argmax(cond[:, ::-1], axis=1)
    return np.where(cond.any(axis=1), t[k], np.nan)


def at_time(t: np.ndarray, x: np.ndarray, when: np.ndarray) -> np.ndarray:
    """``x`` at per-patient output times ``when`` (exact grid times; NaN where ``when`` is NaN)."""
    ok = np.isfinite(when)
    k = np.clip(np.searchsorted(t, np.where(ok, when, t[0])), 0, t.size - 1)
    return np.where(ok, x[np.arange(x.shape[0]), k], np.nan)


def interp_columns(t: np.ndarray, x: np.ndarray, tq: np.ndarray) -> np.ndarray:
    """Linear interpolation of every row of ``x`` at times ``tq`` (inside ``[t[0], t[-1]]``)."""
    tq = np.asarray(tq, dtype=float)
    j = np.clip(np.searchsorted(t, tq, side="right") - 1, 0, t.size - 2)
    w = (tq - t[j]) / (t[j + 1] - t[j])
    return x[:, j] * (1.0 - w) + x[:, j + 1] * w


def value_at(t: np.ndarray, x: np.ndarray, day: float) -> np.ndarray:
    """``x`` at ``day`` (linear between output times; NaN if ``day`` is outside the grid)."""
    if not t[0] <= day <= t[-1]:
        return np.full(x.shape[0], np.nan)
    return interp_columns(t, x, np.array([day]))[:, 0]


def peak(t: np.ndarray, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum of ``x`` where ``mask`` holds and its (first) time, per patient (NaN: no time)."""
    k = np.argmax(np.where(mask, x, -np.inf), axis=1)
    seen = mask.any(axis=1)
    return (np.where(seen, x[np.arange(x.shape[0]), k], np.nan), np.where(seen, t[k], np.nan))


def window_integral(t: np.ndarray, x: np.ndarray, a: float, b: float) -> np.ndarray:
    """Trapezoid integral of the piecewise-linear ``x`` over ``[a, b]`` (clipped to the grid)."""
    a, b = max(a, t[0]), min(b, t[-1])
    if b <= a:
        return np.zeros(x.shape[0])
    nodes = np.concatenate([[a], t[(t > a) & (t < b)], [b]])
    return cumulative_integral(nodes, interp_columns(t, x, nodes))[:, -1]


def cumulative_integral(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral of ``x`` from ``t[0]``, shape (patient, T), starting at 0."""
    inc = 0.5 * (x[:, 1:] + x[:, :-1]) * np.diff(t)
    return np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(inc, axis=1)], axis=1)


def duration(t: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """Time (days) during which ``cond`` holds: the trapezoid integral of its indicator.

    On a daily grid a condition true on n consecutive inner days counts n days.
    """
    return cumulative_integral(t, cond.astype(float))[:, -1]


def run_length(t: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """How long ``cond`` keeps holding from each output time on (days; 0 where it does not hold).

    A run ends at the next time ``cond`` fails; a run that lasts to the end of the
    grid is credited one more grid step (on a daily grid, n true points are n days).
    """
    t_end = t[-1] + (t[-1] - t[-2])
    nxt = np.where(cond, np.inf, t)
    nxt = np.minimum.accumulate(nxt[:, ::-1], axis=1)[:, ::-1]
    return np.where(cond, np.minimum(nxt, t_end) - t, 0.0)


def grade(peak_value: np.ndarray, thresholds) -> np.ndarray:
    """Number of ``thresholds`` (increasing) that ``peak_value`` reaches (0 for NaN)."""
    thr = np.asarray(thresholds, dtype=float)
    return (np.nan_to_num(peak_value, nan=-np.inf)[:, None] >= thr[None, :]).sum(axis=1)
