"""Per-realisation outcomes and the probabilities derived from them, with exact binomial CIs.

Definitions (each realisation, from its simulated counts):

* **cure** (leukemia extinction) by day ``d``: no CD7+ blast, CD7- blast or
  extramedullary cell left at ``d`` (extinction of an integer population is absorbing:
  nothing in a scenario adds blasts). ``cure_day`` is the first output day with none.
* **CAR-T loss** (loss of persistence) by day ``d``: CAR-T cells were present after an
  infusion and none are left at ``d``. ``car_loss_day`` is the first such output day.
* **relapse**: after a remission (marrow blasts below ``relapse_blast_pct``, from day 0 on),
  the first output day with marrow blasts at or above it; ``relapse_day`` (NaN: none).
  Its distribution over realisations is the time-to-relapse distribution.
* **CD7- escape**: a relapse in which CD7-negative blasts are the majority
  (``blast_cd7neg_pct >= 50`` on the relapse day).

Probabilities over the realisations of each patient use the exact Clopper-Pearson interval
(:func:`cartsim.stats.binomial_ci`); only realisations with ``status == 0`` count.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["add_outcomes", "outcome_probabilities"]


def _first_day(mask: np.ndarray, t: np.ndarray) -> np.ndarray:
    """First ``t`` where ``mask`` holds along the last axis (NaN if never)."""
    hit = mask.any(axis=-1)
    idx = np.argmax(mask, axis=-1)
    return np.where(hit, t[idx], np.nan)


def add_outcomes(ds: xr.Dataset, relapse_blast_pct: float = 5.0) -> xr.Dataset:
    """Add ``cure_day``, ``car_loss_day``, ``relapse_day``, ``cd7neg_relapse`` to ``ds``.

    ``ds`` has dims (patient, time) (one row per realisation); returns a new Dataset.
    """
    t = np.asarray(ds["time"].values, dtype=float)
    dims = ("patient", "time")
    leuk = sum(np.asarray(ds[v].transpose(*dims).values) for v in
               ("blast_cd7pos", "blast_cd7neg", "em_mass"))
    car = sum(np.asarray(ds[v].transpose(*dims).values) for v in
              ("car_eff", "car_mem", "car_exh"))
    after0 = t >= 0.0
    with np.errstate(invalid="ignore"):
        cure = _first_day((leuk <= 0.0), t)
        seen = np.maximum.accumulate(car > 0.0, axis=-1)
        loss = _first_day(seen & (car <= 0.0), t)
        pct = np.asarray(ds["marrow_blast_pct"].transpose(*dims).values)
        rem = np.maximum.accumulate((pct < relapse_blast_pct) & after0, axis=-1)
        rel_mask = rem & (pct >= relapse_blast_pct)
        relapse = _first_day(rel_mask, t)
        neg = np.asarray(ds["blast_cd7neg_pct"].transpose(*dims).values)
        idx = np.argmax(rel_mask, axis=-1)
        neg_at = np.take_along_axis(neg, idx[:, None], axis=-1)[:, 0]
        cd7neg = np.isfinite(relapse) & (neg_at >= 50.0)
    out = ds.copy()
    out["cure_day"] = (("patient",), cure, {
        "units": "day", "long_name": "first output day without any leukemic cell (NaN: never)"})
    out["car_loss_day"] = (("patient",), loss, {
        "units": "day", "long_name": "first output day without CAR-T cells after they were "
                                     "present (NaN: never)"})
    out["relapse_day"] = (("patient",), relapse, {
        "units": "day", "long_name": f"first day marrow blasts >= {relapse_blast_pct:g}% after "
                                     f"a remission (NaN: no relapse)"})
    out["cd7neg_relapse"] = (("patient",), cd7neg, {
        "units": "1", "long_name": "relapse with CD7-negative blasts in the majority"})
    return out


def outcome_probabilities(ds: xr.Dataset, days=None, alpha: float = 0.05) -> xr.Dataset:
    """Probabilities of cure, CAR-T loss, relapse and CD7- escape by each day, with CIs.

    Parameters
    ----------
    ds : a :func:`~cartsim.stochastic.simulate_stochastic` Dataset with a ``replicate``
        dim (probabilities are over replicates, per patient).
    days : days at which to evaluate (default: the ``report_days`` of the run's options,
        else day 28 and the last output day).
    alpha : one minus the confidence level of the Clopper-Pearson intervals.

    Returns
    -------
    xarray.Dataset
        Dims ``patient`` x ``day``; for each outcome ``p_<outcome>`` with
        ``p_<outcome>_lo``/``_hi`` and the evaluable count ``n_evaluable``.
    """
    import yaml

    from cartsim.stats import binomial_ci

    if "replicate" not in ds.dims:
        raise ValueError("outcome_probabilities needs a Dataset with a 'replicate' dim "
                         "(simulate_stochastic(..., replicate_dim=True))")
    if days is None:
        opts = yaml.safe_load(ds.attrs.get("stochastic_options", "{}")) or {}
        days = opts.get("report_days", [28.0, float(ds["time"].values[-1])])
    days = np.asarray(days, dtype=float).reshape(-1)
    ok = np.asarray(ds["status"].transpose("patient", "replicate").values) == 0
    events = {
        "cure": ("cure_day", "leukemia extinction (cure) by the day"),
        "car_loss": ("car_loss_day", "CAR-T extinction (loss of persistence) by the day"),
        "relapse": ("relapse_day", "relapse (cumulative incidence) by the day"),
    }
    npat = ok.shape[0]
    data = {}
    n_ok = ok.sum(axis=1)
    for key, (var, long_name) in events.items():
        d = np.asarray(ds[var].transpose("patient", "replicate").values, dtype=float)
        _fill(data, key, long_name, [[(ok[i] & (d[i] <= day)).sum() for day in days]
                                     for i in range(npat)], n_ok, alpha, binomial_ci)
    rel = np.asarray(ds["relapse_day"].transpose("patient", "replicate").values, dtype=float)
    neg = np.asarray(ds["cd7neg_relapse"].transpose("patient", "replicate").values, dtype=bool)
    _fill(data, "cd7neg_escape", "CD7-negative relapse (escape) by the day",
          [[(ok[i] & neg[i] & (rel[i] <= day)).sum() for day in days] for i in range(npat)],
          n_ok, alpha, binomial_ci)
    data["n_evaluable"] = (("patient",), n_ok, {
        "units": "1", "long_name": "realisations that completed (status 0)"})
    coords = {"patient": ds["patient"].values,
              "day": ("day", days, {"units": "day", "long_name": "days since CAR-T infusion"})}
    attrs = {"confidence_level": 1.0 - alpha,
             "interval": "exact Clopper-Pearson (Clopper & Pearson 1934 Biometrika 26:404)"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _fill(data, key, long_name, counts, n_ok, alpha, binomial_ci):
    counts = np.asarray(counts, dtype=np.int64)
    p = np.where(n_ok[:, None] > 0, counts / np.maximum(n_ok[:, None], 1), np.nan)
    lo = np.empty(counts.shape)
    hi = np.empty(counts.shape)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            lo[i, j], hi[i, j] = binomial_ci(int(counts[i, j]), int(n_ok[i]), alpha)
    dims = ("patient", "day")
    data[f"p_{key}"] = (dims, p, {"units": "1", "long_name": f"probability of {long_name}"})
    data[f"p_{key}_lo"] = (dims, lo, {"units": "1", "long_name": f"lower bound, {long_name}"})
    data[f"p_{key}_hi"] = (dims, hi, {"units": "1", "long_name": f"upper bound, {long_name}"})
