"""The Dataset of a fit: observations beside predictions, residuals and simulated replicates.

:func:`fit_dataset` turns a fitted :class:`~cartsim.fitting.individual.IndividualFit`
or :class:`~cartsim.fitting.population.PopulationFit` into a self-describing
``xarray.Dataset`` (the input of :mod:`cartsim.plot.gof`):

* dim ``obs`` (one entry per observation) with coordinates ``patient_id``,
  ``time`` (day), ``analyte`` and ``unit``; variables ``dv``, ``lloq``,
  ``cens``, ``ipred`` (individual prediction), ``ppred`` (population
  prediction: typical values, eta = 0; for an individual fit the model's
  default values), ``iwres`` / ``pwres`` (weighted residuals on the log
  scale, ``(ln y - ln f) / W``, NaN for censored values);
* dim ``replicate`` x ``obs``: ``sim``, observations simulated from the fitted
  model with the same design (population fit: new random effects and
  residual error; individual fit: parameter uncertainty from the covariance
  and residual error), for visual predictive checks; simulated values are not
  censored (compare them with ``lloq``);
* dims ``patient`` x ``analyte_name`` x ``curve_time``: ``ipred_curve``, the
  individual prediction on a dense grid (for plots of individual fits);
* dim ``parameter``: ``estimate``, ``se``, ``ci_low``, ``ci_high``;
* population fits: dims ``restart`` x ``iteration`` x ``quantity``: ``saem_trace``, the SAEM
  trace of every restart (typical values ``mu``, IIV variances ``omega2`` in search units,
  ``ln`` of the residual SDs), and ``restart_loglik`` / ``restart_loglik_se`` per restart
  (drawn by :func:`cartsim.plot.gof.plot_saem_trace`).

Values of different analytes are in each analyte's canonical unit (the
``unit`` coordinate); ``attrs`` hold the config, the seed and the fit summary.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import xarray as xr

from cartsim.fitting.data import ANALYTES, Observations
from cartsim.fitting.forward import ForwardModel

__all__ = ["fit_dataset"]


def _weighted_res(fit, pred: np.ndarray) -> np.ndarray:
    data = fit.data_
    sp, sa = fit._resid.sigmas(fit._x_res())
    f = np.maximum(pred, 1e-30)
    w = np.sqrt(sp ** 2 + (sa / f) ** 2)
    r = (np.log(data.dv) - np.log(f)) / w
    return np.where(data.cens, np.nan, r)


def _simulate(fit, n_rep: int, rng: np.random.Generator) -> np.ndarray:
    data = fit.data_
    n_obs = data.dv.size
    if n_rep <= 0:
        return np.empty((0, n_obs))
    pats, theta = fit._draw_parameters(n_rep, rng)
    preds = fit._fm.predict(pats, theta)
    sim = np.full((n_rep, n_obs), np.nan)
    sp, sa = fit._resid.sigmas(fit._x_res())
    n_pat = data.n_patients
    for k, (i, f) in enumerate(zip(pats, preds)):
        r = k // n_pat
        idx = fit._fm.index[i]
        fi = np.maximum(f, 1e-30)
        w = np.sqrt(sp[idx] ** 2 + (sa[idx] / fi) ** 2)
        sim[r, idx] = fi * np.exp(w * rng.standard_normal(idx.size))
    return sim


def _curves(fit, n_points: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    data = fit.data_
    analytes = data.analytes
    t_hi = float(data.time.max())
    t_lo = min(0.0, float(data.time.min()))
    grid = np.unique(np.concatenate([np.linspace(t_lo, t_hi, n_points), data.time]))
    n, na, nt = data.n_patients, len(analytes), grid.size
    pat = np.repeat(np.arange(n), na * nt)
    obs = Observations(source=data.source, ids=data.ids, patient=pat,
                       time=np.tile(grid, n * na),
                       dv=np.ones(pat.size), analyte=np.tile(np.repeat(analytes, nt), n),
                       lloq=np.full(pat.size, np.nan), cens=np.zeros(pat.size, bool),
                       row=np.zeros(pat.size, np.int64), covariates={},
                       regimens=[{}] * n)
    fm = ForwardModel(obs, fit._fm.scenarios, fit._fm.parameters, method=fit._fm.method,
                      rtol=fit._fm.rtol)
    preds = fm.predict(range(n), fit._individual_theta())
    out = np.stack([p.reshape(na, nt) for p in preds])
    return grid, analytes, out


def fit_dataset(fit, *, n_sim: int = 50, seed: int = 0, n_curve: int = 120,
                config: str = "") -> xr.Dataset:
    """The observations-vs-predictions Dataset of a fitted estimator (see the module docstring).

    Parameters
    ----------
    fit : a fitted ``IndividualFit`` or ``PopulationFit``.
    n_sim : simulated replicates of the data set for the VPC (0: none).
    seed : seed of the replicates.
    n_curve : points of the dense time grid of ``ipred_curve``.
    config : the run configuration (YAML text) stored in ``attrs["config"]``.
    """
    from cartsim import __version__

    data = fit.data_
    rng = np.random.default_rng(seed)
    units = np.array([ANALYTES[a].units for a in data.analyte], dtype=object)
    unit_note = "; ".join(f"{ANALYTES[a].units} ({a})" for a in data.analytes)
    ipred, ppred = fit.ipred_, fit.ppred_
    obs_dim = ("obs",)
    sim = _simulate(fit, n_sim, rng)
    grid, analytes, curves = _curves(fit, n_curve)
    names = list(fit.params_)
    rows = {r["name"]: r for r in _rows(fit)}
    ds = xr.Dataset(
        {
            "dv": (obs_dim, data.dv, {"units": unit_note, "long_name":
                                      "observed value (the LLOQ where censored)"}),
            "lloq": (obs_dim, data.lloq, {"units": unit_note,
                                          "long_name": "lower limit of quantification"}),
            "cens": (obs_dim, data.cens.astype(np.int8), {
                "units": "1", "long_name": "1: below the LLOQ (left-censored, M3 likelihood)"}),
            "ipred": (obs_dim, ipred, {"units": unit_note,
                                       "long_name": "individual prediction"}),
            "ppred": (obs_dim, ppred, {"units": unit_note, "long_name":
                                       "population prediction (typical values, eta = 0)"}),
            "iwres": (obs_dim, _weighted_res(fit, ipred), {
                "units": "1", "long_name": "individual weighted residual (ln y - ln ipred)/W"}),
            "pwres": (obs_dim, _weighted_res(fit, ppred), {
                "units": "1", "long_name": "population weighted residual (ln y - ln ppred)/W"}),
            "sim": (("replicate", "obs"), sim, {
                "units": unit_note, "long_name": "simulated observation (uncensored; compare "
                                                 "with lloq) from the fitted model"}),
            "ipred_curve": (("patient", "analyte_name", "curve_time"), curves, {
                "units": "; ".join(f"{ANALYTES[a].units} ({a})" for a in analytes),
                "long_name": "individual prediction on a dense time grid"}),
            "estimate": (("parameter",), np.array([fit.params_[n] for n in names]),
                         {"units": "see parameter_unit", "long_name": "estimate"}),
            "se": (("parameter",), np.array([rows[n]["se"] for n in names]),
                   {"units": "see parameter_unit", "long_name": "standard error"}),
            "ci_low": (("parameter",), np.array([rows[n]["ci_low"] for n in names]),
                       {"units": "see parameter_unit", "long_name": "95% interval, low"}),
            "ci_high": (("parameter",), np.array([rows[n]["ci_high"] for n in names]),
                        {"units": "see parameter_unit", "long_name": "95% interval, high"}),
        },
        coords={
            "obs": ("obs", np.arange(data.dv.size), {"long_name": "observation index"}),
            "patient_id": ("obs", np.array(data.ids, dtype=object)[data.patient],
                           {"long_name": "patient identifier"}),
            "time": ("obs", data.time, {"units": "day",
                                        "long_name": "days since CAR-T infusion"}),
            "analyte": ("obs", data.analyte.astype(str), {"long_name": "analyte"}),
            "unit": ("obs", units.astype(str), {"long_name": "unit of dv, lloq, predictions"}),
            "data_row": ("obs", data.row, {"long_name": "data row in the input file"}),
            "replicate": ("replicate", np.arange(sim.shape[0]),
                          {"long_name": "simulated replicate"}),
            "patient": ("patient", np.array(data.ids, dtype=str),
                        {"long_name": "patient identifier"}),
            "analyte_name": ("analyte_name", np.array(analytes, dtype=str),
                             {"long_name": "analyte"}),
            "curve_time": ("curve_time", grid, {"units": "day",
                                                "long_name": "days since CAR-T infusion"}),
            "parameter": ("parameter", np.array(names, dtype=str),
                          {"long_name": "estimated parameter"}),
            "parameter_unit": ("parameter", np.array([rows[n]["unit"] for n in names],
                                                     dtype=str), {"long_name": "unit"}),
        },
        attrs={
            "title": "cartsim fit: observations vs predictions",
            "fit_method": "population (SAEM)" if hasattr(fit, "omega_") else "individual (ML)",
            "model": fit._fm.model_name,
            "data_source": data.source,
            "loglik": float(fit.loglik_), "aic": float(fit.aic_), "bic": float(fit.bic_),
            "converged": int(fit.converged_), "status": fit.status_,
            "seed": int(seed), "config": config, "cartsim_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "conventions": "CF-1.8 style units and long_name on every variable",
        },
    )
    ds["patient_id"] = ds["patient_id"].astype(str)
    if hasattr(fit, "restarts_"):
        ds = ds.assign(_saem_variables(fit))
        ds.attrs.update(loglik_se=float(fit.loglik_se_), n_explore=int(fit.n_explore),
                        restart_spread_se=float(fit.restart_spread_se_),
                        init_from=fit.init_from_)
    else:
        ds.attrs.update(n_hits=int(fit.n_hits_),
                        failed_checks=", ".join(k for k, v in fit.checks_.items() if not v))
    return ds


def _saem_variables(fit) -> dict:
    """The SAEM traces and log-likelihoods of a population fit's restarts."""
    names = ([f"mu_{n}" for n in fit.parameters] + [f"omega2_{n}" for n in fit.parameters]
             + [f"ln_{n}" for n in fit._resid.names])
    trace = np.stack([r["trace"] for r in fit._runs])
    coords = {"restart": ("restart", np.arange(trace.shape[0]), {"long_name": "SAEM restart"}),
              "iteration": ("iteration", np.arange(trace.shape[1]),
                            {"long_name": "SAEM iteration"}),
              "quantity": ("quantity", np.array(names, dtype=str),
                           {"long_name": "population quantity (search units)"})}
    return {
        "saem_trace": xr.DataArray(trace, dims=("restart", "iteration", "quantity"),
                                   coords=coords, attrs={
                                       "units": "search units (log/logit of the parameter)",
                                       "long_name": "SAEM trace: typical value mu, IIV "
                                                    "variance omega2, ln residual SD"}),
        "restart_loglik": xr.DataArray(
            np.array([r["loglik"] for r in fit._runs]), dims=("restart",),
            coords={"restart": coords["restart"]},
            attrs={"units": "1", "long_name": "importance-sampling log-likelihood (of ln Y)"}),
        "restart_loglik_se": xr.DataArray(
            np.array([r["loglik_se"] for r in fit._runs]), dims=("restart",),
            coords={"restart": coords["restart"]},
            attrs={"units": "1", "long_name": "Monte Carlo SE of restart_loglik"}),
    }


def _rows(fit):
    from cartsim.fitting.report import parameter_rows

    return parameter_rows(fit)
