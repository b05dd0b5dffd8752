"""Cohort statistics in O(n) memory: Kaplan-Meier and the whole trial summary on cohorts whose
pairwise (event times x patients) tables would take hundreds of MB.

Memory is measured with :mod:`tracemalloc`, which sees NumPy's buffers; the bounds are a few
times what the sorted implementation needs and far below the pairwise tables (KM of 20,000
patients with 12,000 distinct event times: a 240 MB boolean table; the 22,000-patient
summary: 330 MB with it, 15 MB without)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import xarray as xr
from test_report import make_endpoints

from cartsim.report import survival_curves, trial_summary
from cartsim.stats import kaplan_meier

MB = 1e6


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_kaplan_meier_of_a_large_cohort_stays_linear_in_memory():
    rng = np.random.default_rng(3)
    n = 20_000
    time = rng.exponential(300.0, n)
    event = rng.random(n) < 0.6
    km, peak = _peak(lambda: kaplan_meier(time, event))
    assert km.time.size > 11_000  # the pairwise table would be > 11,000 x 20,000
    assert peak < 20 * MB, f"kaplan_meier of {n} patients peaked at {peak / MB:.0f} MB"
    at_risk, peak = _peak(lambda: km.n_at_risk_at(np.linspace(0.0, 3000.0, 20_000)))
    assert peak < 20 * MB, f"n_at_risk_at peaked at {peak / MB:.0f} MB"
    assert at_risk[0] == n and at_risk[-1] == (time >= 3000.0).sum()


def test_trial_summary_of_22000_patients_stays_linear_in_memory():
    base = make_endpoints()
    ep = xr.concat([base] * 1000, dim="patient")
    n = ep.sizes["patient"]
    ep = ep.assign_coords(patient=np.arange(n))
    rng = np.random.default_rng(0)
    for v in ("pfs_day", "os_day", "dor_day"):  # distinct times: thousands of event times
        ep[v] = ep[v] + rng.uniform(0.0, 1.0, n)
    (rows, curves), peak = _peak(lambda: (trial_summary(ep), survival_curves(ep)))
    assert curves["PFS"].time.size > 5_000
    assert peak < 60 * MB, f"trial_summary of {n} patients peaked at {peak / MB:.0f} MB"
    # the statistics are those of the 20-patient design, repeated: rates unchanged
    small = {r["endpoint"]: r for r in trial_summary(base)}
    big = {r["endpoint"]: r for r in rows}
    assert big["CR at day 28"]["value"] == small["CR at day 28"]["value"]
    assert big["Evaluable (solver succeeded)"]["n"] == 1000 * small[
        "Evaluable (solver succeeded)"]["n"]
