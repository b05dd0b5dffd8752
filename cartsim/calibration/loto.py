"""Leave-one-trial-out: what the model predicts for a trial it was not calibrated to.

For each trial in turn, the stored design points (``source == "design"``, without point 0:
the refinement steps were steered by every trial, the held-out one included, and point 0
holds the start values, usually the previous calibration's best, so both are left out) are
ranked by the likelihood of the *other* trials' targets; the best one predicts the held-out
trial's figures (out of sample), beside the best point under all targets (in sample).
Nothing is simulated: the design store already holds every point's figure for every
target.

:func:`coverage` asks whether the ensemble's uncertainty is honest: for each held-out
trial the ensemble is rebuilt from the other trials (:func:`~cartsim.calibration.ensemble.
plausible`), and the observed figure is compared with the members' 95% interval (model
uncertainty only) and with the 95% predictive interval (the members' figures plus the
sampling of a trial of the published size, :func:`~cartsim.calibration.likelihood.sample`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cartsim.calibration.design import loglik_matrix
from cartsim.calibration.ensemble import plausible
from cartsim.calibration.likelihood import fmt_figure as _f
from cartsim.calibration.likelihood import sample, zscore
from cartsim.calibration.targets import TARGETS, Target, trials

__all__ = ["coverage", "format_loto", "leave_one_trial_out", "refine_out_of_sample"]


def _design(df: pd.DataFrame) -> pd.DataFrame:
    """The candidates out of sample: the space-filling design points, without point 0.

    Point 0 holds the start values (:func:`~cartsim.calibration.design.run_design`), in
    practice the previous calibration's best point, which was tuned to every trial, the
    held-out one included; like the refinement steps it would leak the held-out trial.
    """
    d = df[(df["source"] == "design") & (df["id"] != 0)].reset_index(drop=True)
    if d.empty:
        raise ValueError("the design store holds no design points beyond the start values: "
                         "run the design first")
    return d


def leave_one_trial_out(df: pd.DataFrame, targets: Sequence[Target] = TARGETS) -> list[dict]:
    """Rows (trial, figure, observed, in-sample and out-of-sample prediction and z)."""
    d = _design(df)
    ll = loglik_matrix(d, targets)
    best_all = int(np.argmax(ll.sum(axis=1)))
    rows = []
    for trial in trials(targets):
        held = np.array([t.trial == trial for t in targets])
        best_out = int(np.argmax(ll[:, ~held].sum(axis=1)))
        for j in np.flatnonzero(held):
            t = targets[j]
            v_in, m_in = d.at[best_all, t.key], int(d.at[best_all, t.key + "#m"])
            v_out, m_out = d.at[best_out, t.key], int(d.at[best_out, t.key + "#m"])
            rows.append({"trial": trial, "name": t.name, "observed": t.observed,
                         "observed_label": t.observed_label, "in_sample": float(v_in),
                         "z_in": zscore(t, v_in, m_in), "out_of_sample": float(v_out),
                         "z_out": zscore(t, v_out, m_out), "point_in": int(d.at[best_all, "id"]),
                         "point_out": int(d.at[best_out, "id"])})
    return rows


def refine_out_of_sample(df: pd.DataFrame, space, rows: list[dict], *, maxiter: int = 10,
                         replicates: float = 5, fixed: Sequence[str] = (),
                         targets: Sequence[Target] = TARGETS, simulate_for=None) -> list[dict]:
    """A short Nelder-Mead from each trial's out-of-sample design point, without that trial.

    Adds ``refined`` and ``z_refined`` to ``rows`` (from :func:`leave_one_trial_out`): the
    held-out figures simulated at the refined point. Costs ``maxiter`` + 1 simulations of
    the trials per held-out trial. ``simulate_for(targets)`` makes the
    :data:`~cartsim.calibration.design.Simulator` of a target subset (default: the trials).
    """
    from cartsim.calibration.design import default_simulator, nelder_mead

    def make(ts):
        return simulate_for(ts) if simulate_for else default_simulator(ts, replicates, fixed)

    ids = df.set_index("id")
    for trial in trials(targets):
        keep = [t for t in targets if t.trial != trial]
        held = [t for t in targets if t.trial == trial]
        mine = [r for r in rows if r["trial"] == trial]
        x0 = ids.loc[mine[0]["point_out"], list(space.keys)].to_numpy(float)
        x = nelder_mead(space, x0, keep, make(keep), maxiter=maxiter)
        values, _ = make(held)(space.overrides(x))
        for r, t in zip(mine, held):
            v, m = values[t.key]
            r.update(refined=float(v), z_refined=zscore(t, v, m))
    return rows


def coverage(df: pd.DataFrame, targets: Sequence[Target] = TARGETS, *, cut: float = 3.0,
             fallback: int = 5, level: float = 0.95, draws: int = 400,
             seed: int = 0) -> list[dict]:
    """Per held-out figure: the out-of-sample model and predictive intervals, and whether the
    observed figure falls inside each."""
    d = _design(df)
    rng = np.random.default_rng(seed)
    q = ((1 - level) / 2, (1 + level) / 2)
    rows = []
    for trial in trials(targets):
        keep_t = [t for t in targets if t.trial != trial]
        mask, met = plausible(d, keep_t, cut=cut, fallback=fallback)
        for t in (t for t in targets if t.trial == trial):
            sims = d.loc[mask, t.key].to_numpy(float)
            sims = sims[np.isfinite(sims)]
            if not sims.size:
                lo = hi = plo = phi = math.nan
            else:
                lo, hi = np.quantile(sims, q)
                pred = sample(t, sims, rng, draws).ravel()
                plo, phi = np.quantile(pred, q)
            rows.append({"trial": trial, "name": t.name, "observed": t.observed,
                         "members": int(mask.sum()), "cut_met": met,
                         "model": (float(lo), float(hi)), "predictive": (float(plo), float(phi)),
                         "in_model": bool(lo <= t.observed <= hi),
                         "in_predictive": bool(plo <= t.observed <= phi)})
    return rows


def format_loto(rows: Sequence[dict], cover: Sequence[dict] | None = None) -> str:
    """The leave-one-trial-out table (with the coverage columns when given)."""
    refined = bool(rows) and "refined" in rows[0]
    head = (f"{'trial':<19} {'figure':<40} {'observed':<22} {'in-sample':>9} {'z':>6} "
            f"{'out-of-sample':>13} {'z':>6}")
    if refined:
        head += f" {'refined':>9} {'z':>6}"
    if cover is not None:
        head += f"  {'model 95% (out)':<18} {'predictive 95%':<18}"
    lines = [head]
    for i, r in enumerate(rows):
        line = (f"{r['trial']:<19} {r['name'][:40]:<40} {r['observed_label'][:22]:<22} "
                f"{_f(r['in_sample']):>9} {r['z_in']:>6.2f} {_f(r['out_of_sample']):>13} "
                f"{r['z_out']:>6.2f}")
        if refined:
            line += f" {_f(r['refined']):>9} {r['z_refined']:>6.2f}"
        if cover is not None:
            c = cover[i]
            line += (f"  {_f(c['model'][0]) + '-' + _f(c['model'][1]):<18} "
                     f"{_f(c['predictive'][0]) + '-' + _f(c['predictive'][1]):<18}")
        lines.append(line)
    z_out = np.array([abs(r["z_out"]) for r in rows], float)
    lines.append(f"out of sample: |z| > 2 in {int(np.sum(z_out > 2))}/{len(rows)}, |z| > 3 in "
                 f"{int(np.sum(z_out > 3))}/{len(rows)} (NaN: {int(np.isnan(z_out).sum())})")
    if refined:
        z_ref = np.array([abs(r["z_refined"]) for r in rows], float)
        lines.append(f"refined out of sample: |z| > 2 in {int(np.sum(z_ref > 2))}/{len(rows)}, "
                     f"|z| > 3 in {int(np.sum(z_ref > 3))}/{len(rows)}")
    if cover is not None:
        n = len(cover)
        lines.append(f"coverage: observed inside the out-of-sample model interval in "
                     f"{sum(c['in_model'] for c in cover)}/{n}, inside the predictive "
                     f"(model + cohort) 95% interval in {sum(c['in_predictive'] for c in cover)}"
                     f"/{n} (nominal 95%)")
    return "\n".join(lines)
