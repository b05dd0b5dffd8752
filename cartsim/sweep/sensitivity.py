"""Global sensitivity of endpoints to parameters: Sobol and Morris indices with SALib.

:func:`run_sensitivity` is the entry point of ``cartsim task=sensitivity``; the two halves
:func:`sensitivity_design` (inputs to evaluate) and :func:`sensitivity_indices` (indices of
the outputs) also work on any function, e.g. the Ishigami test function of the tests.

Inputs are sampled in the unit hypercube and mapped to each parameter's range, uniformly
(``space: linspace``) or log-uniformly (``space: logspace``), so the indices are those of
the endpoints with respect to the parameters *as distributed on those ranges*.

* Sobol (variance-based): Saltelli sampling of a scrambled Sobol sequence,
  ``N (D + 2)`` runs (``N (2D + 2)`` with second order); first-order ``S1_i =
  V[E(Y|X_i)] / V(Y)``, total ``ST_i = E[V(Y|X_~i)] / V(Y)`` and second-order ``S2_ij``
  by the Saltelli 2010 / Jansen estimators, with bootstrap confidence intervals
  (Sobol 2001 Math Comput Simul 55:271; Saltelli et al. 2010 Comput Phys Commun 181:259).
* Morris (elementary effects): ``r`` one-at-a-time trajectories on a ``p``-level grid,
  ``r (D + 1)`` runs; ``mu*`` (mean absolute effect, importance) and ``sigma``
  (interaction or non-linearity), with effects per unit of the *normalised* input range
  (Morris 1991 Technometrics 33:161; Campolongo et al. 2007 Environ Model Softw 22:1509).

Implemented with SALib (Herman & Usher 2017 J Open Source Softw 2:97; Iwanaga et al. 2022
Socio-Environ Syst Model 4:18155), imported lazily.

A model run without a value (a failed solve, an invalid scenario, a population point with
no evaluable patient, or an endpoint the follow-up does not reach) is NaN, never 0: the
estimators need every design row, so such a value is replaced by the mean of the finite
ones and counted per endpoint (``n_nonfinite``); :func:`run_sensitivity` also counts the
failed runs (``n_failed``, ``status``) and says so in a :class:`cartsim.CartsimWarning`,
which the ``task=sensitivity`` console shows. Indices resting on many replaced values are
to be read with care.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr
import yaml

from cartsim.scenario import Scenario, ScenarioError
from cartsim.sweep.options import SensitivityOptions

__all__ = ["prepare_sensitivity", "run_sensitivity", "sensitivity_design",
           "sensitivity_indices"]


def _problem(params: Sequence) -> dict:
    d = len(params)
    return {"num_vars": d, "names": [p.name for p in params], "bounds": [[0.0, 1.0]] * d}


def _to_range(params: Sequence, u: np.ndarray) -> np.ndarray:
    from cartsim.sweep.axes import unit_to_range

    return unit_to_range(params, u)


def design_size(n_params: int, options: SensitivityOptions) -> int:
    """Rows of :func:`sensitivity_design` for ``n_params`` parameters, without drawing it:
    Saltelli's N (2D + 2) with second-order indices, N (D + 2) without; Morris N (D + 1)."""
    if options.method == "sobol":
        return options.n_base * ((2 * n_params + 2) if options.second_order else (n_params + 2))
    return options.n_base * (n_params + 1)


def sensitivity_design(params: Sequence, options: SensitivityOptions, seed: int = 0
                       ) -> np.ndarray:
    """Input samples (n, D) in the parameters' units for ``options.method``.

    Parameters
    ----------
    params : objects with ``name``, ``space`` (``linspace``/``logspace``), ``start``,
        ``stop`` (e.g. :class:`~cartsim.sweep.options.SweepAxis`).
    options : :class:`~cartsim.sweep.options.SensitivityOptions`.
    seed : seed of the (scrambled) sequence or the Morris trajectories.
    """
    if len(params) < 1:
        raise ScenarioError("sensitivity.parameters=[] is not accepted: expected at least one "
                            "parameter range")
    problem = _problem(params)
    if options.method == "sobol":
        from SALib.sample import sobol as sobol_sample

        u = sobol_sample.sample(problem, options.n_base, calc_second_order=options.second_order,
                                scramble=True, seed=int(seed))
    else:
        from SALib.sample import morris as morris_sample

        u = morris_sample.sample(problem, options.n_base, num_levels=options.num_levels,
                                 seed=int(seed))
    return _to_range(params, u)


def _unit(params: Sequence, x: np.ndarray) -> np.ndarray:
    u = np.empty_like(x, dtype=float)
    for j, p in enumerate(params):
        if p.space == "logspace":
            lo, hi = np.log10(p.start), np.log10(p.stop)
            u[:, j] = (np.log10(x[:, j]) - lo) / (hi - lo)
        else:
            u[:, j] = (x[:, j] - p.start) / (p.stop - p.start)
    return u


def sensitivity_indices(params: Sequence, options: SensitivityOptions, x: np.ndarray,
                        outputs: dict, seed: int = 0, units: dict | None = None,
                        long_names: dict | None = None) -> xr.Dataset:
    """Sobol or Morris indices of each output with respect to each parameter.

    Parameters
    ----------
    params, options, seed : as given to :func:`sensitivity_design` (same seed: bootstrap).
    x : the inputs of :func:`sensitivity_design`, (n, D).
    outputs : output name -> values (n,), one per input row (booleans as 0/1). Non-finite
        values (failed solves) are replaced by the mean of the finite ones and counted in
        ``n_nonfinite``; an output without one finite value gets NaN indices.
    units, long_names : per output, for the attributes.

    Returns
    -------
    xarray.Dataset
        Dims ``endpoint`` x ``parameter`` (``parameter_2`` for S2); Sobol: ``S1``,
        ``S1_conf``, ``ST``, ``ST_conf`` (and ``S2``, ``S2_conf``); Morris: ``mu``,
        ``mu_star``, ``sigma``, ``mu_star_conf``; ``n_nonfinite`` per endpoint.
    """
    problem = _problem(params)
    names = list(outputs)
    d = len(params)
    if options.method == "sobol":
        keys = ["S1", "S1_conf", "ST", "ST_conf"]
        keys += ["S2", "S2_conf"] if options.second_order else []
    else:
        keys = ["mu", "mu_star", "sigma", "mu_star_conf"]
    res = {k: np.full((len(names), d, d) if k.startswith("S2") else (len(names), d), np.nan)
           for k in keys}
    nonfinite = []
    for e, name in enumerate(names):
        y = np.asarray(outputs[name], dtype=float).ravel()
        if y.size != x.shape[0]:
            raise ValueError(f"output {name!r} has {y.size} values for {x.shape[0]} inputs")
        bad = ~np.isfinite(y)
        nonfinite.append(int(bad.sum()))
        if bad.all():  # no value at all: no index (NaN), never an index of zeros
            continue
        if bad.any():
            y = np.where(bad, y[~bad].mean(), y)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            if options.method == "sobol":
                from SALib.analyze import sobol as sobol_analyze

                # a Generator, not the int: SALib takes seed=0 as "no seed" and would draw
                # the bootstrap from NumPy's global RNG (default_rng(g) is g, so a nonzero
                # seed gives the resamples it always gave)
                si = sobol_analyze.analyze(problem, y, calc_second_order=options.second_order,
                                           num_resamples=options.num_resamples,
                                           conf_level=options.conf_level,
                                           print_to_console=False,
                                           seed=np.random.default_rng(int(seed)))
            else:
                from SALib.analyze import morris as morris_analyze

                si = morris_analyze.analyze(problem, _unit(params, x), y,
                                            num_resamples=options.num_resamples,
                                            conf_level=options.conf_level,
                                            num_levels=options.num_levels,
                                            print_to_console=False, seed=int(seed))
        for k in keys:
            res[k][e] = np.asarray(si[k], dtype=float)
    pct = f"{100 * options.conf_level:g}%"
    meaning = {
        "S1": "first-order Sobol index (share of output variance due to the parameter alone)",
        "ST": "total-order Sobol index (share of output variance involving the parameter)",
        "S2": "second-order Sobol index (share of variance due to the pair's interaction)",
        "mu": "Morris mean elementary effect (per unit of the normalised input range)",
        "mu_star": "Morris mean absolute elementary effect mu* (importance)",
        "sigma": "Morris SD of the elementary effects (interaction or non-linearity)",
    }
    data = {}
    for k, v in res.items():
        base = k.replace("_conf", "")
        long_name = meaning[base] if base == k else f"half-width of the bootstrap {pct} " \
                                                     f"interval of {base}"
        dims = ("endpoint", "parameter", "parameter_2") if base == "S2" else \
            ("endpoint", "parameter")
        unit = "1" if k.startswith("S") else "endpoint units"
        data[k] = (dims, v, {"units": unit, "long_name": long_name})
    data["n_nonfinite"] = (("endpoint",), np.array(nonfinite, dtype=np.int64), {
        "units": "1", "long_name": "outputs that were not finite (failed solves), replaced by "
                                   "the mean of the finite ones"})
    data["inputs"] = (("sample", "parameter"), np.asarray(x, dtype=float), {
        "units": "parameter units", "long_name": "evaluated inputs"})
    data["outputs"] = (("sample", "endpoint"),
                       np.column_stack([np.asarray(outputs[n], float) for n in names]), {
                           "units": "endpoint units", "long_name": "evaluated outputs"})
    coords = {"endpoint": ("endpoint", names, {"long_name": "analysed output"}),
              "parameter": ("parameter", [p.name for p in params],
                            {"long_name": "varied input"}),
              "sample": ("sample", np.arange(x.shape[0]), {"long_name": "model run"})}
    if options.method == "sobol" and options.second_order:
        coords["parameter_2"] = ("parameter_2", [p.name for p in params],
                                 {"long_name": "second input of a pair"})
    ds = xr.Dataset(data, coords=coords)
    for n in names:
        ds.attrs[f"units_{n}"] = (units or {}).get(n, "1")
        if long_names and n in long_names:
            ds.attrs[f"long_name_{n}"] = long_names[n]
    ds.attrs.update({
        "method": options.method,
        "ranges": json.dumps({p.name: [p.space, p.start, p.stop] for p in params}),
        "seed": int(seed),
        "options": yaml.safe_dump(dataclasses.asdict(options), sort_keys=False),
    })
    return ds


def run_sensitivity(base: Scenario, options: SensitivityOptions, population=None,
                    settings=None, *, seed: int | None = None, chunk_dir=None,
                    simulate_fn=None, progress=None) -> xr.Dataset:
    """Sobol or Morris indices of endpoints of the cartsim model (see the module docstring).

    The design's points are evaluated as a sampled sweep (:func:`cartsim.sweep.run_sweep`
    machinery: compiled batches in chunks, resumable through ``chunk_dir``); with
    ``options.population_n > 0`` every point is a virtual population and boolean endpoints
    are analysed as proportions.

    Returns
    -------
    xarray.Dataset
        See :func:`sensitivity_indices`; attrs add the config, seed and version.
    """
    job = prepare_sensitivity(base, options, population, settings, seed=seed)
    return job.finish(job.evaluate(chunk_dir=chunk_dir, simulate_fn=simulate_fn,
                                   progress=progress))


def prepare_sensitivity(base: Scenario, options: SensitivityOptions, population=None,
                        settings=None, *, seed: int | None = None):
    """Check a sensitivity analysis and draw its design, evaluating nothing: a
    :class:`~cartsim.sweep.run.PointsJob` whose ``finish`` computes the indices
    (:func:`run_sensitivity`'s first half; the parameters are its own)."""
    from cartsim.clinical import EndpointSettings
    from cartsim.randomness import stream_seeds
    from cartsim.sweep.axes import resolve_axes
    from cartsim.sweep.endpoints import check_endpoints
    from cartsim.sweep.options import SweepSpec
    from cartsim.sweep.run import (
        PointsJob,
        SweepPlan,
        _point_population,
        check_follow_up,
        describe,
    )

    options = dataclasses.replace(options)
    settings = EndpointSettings() if settings is None else settings
    seed = int(base.seed if seed is None else seed)
    if not options.parameters:
        raise ScenarioError("sensitivity.parameters=[] is not accepted: expected at least one "
                            "parameter range, e.g. {name: model.params.k_kill, space: "
                            "logspace, start: 0.2, stop: 3.2}")
    axes = resolve_axes(options.parameters, base, key="sensitivity.parameters", numeric=True)
    check_endpoints(options.endpoints, key="sensitivity.endpoints", settings=settings)
    check_follow_up(base, options.endpoints, "sensitivity.endpoints")
    from cartsim.budget import check_sweep

    spec = SweepSpec(name="sensitivity", axes=list(options.parameters), method="lhs",
                     n_samples=design_size(len(options.parameters), options),
                     population_n=options.population_n,
                     endpoints=list(options.endpoints), chunk_size=options.chunk_size)
    check_sweep(base, spec)  # before the design is drawn: it fits in memory, or a clean error
    x = sensitivity_design(options.parameters, options, seed)
    plan = SweepPlan(axes, [tuple(r) for r in x.tolist()], None, {},
                     max(1, options.population_n))
    pop = _point_population(population, spec, axes)
    desc = describe(base, spec, pop, settings, seed) | {"sensitivity":
                                                        dataclasses.asdict(options)}

    def finish(ds: xr.Dataset) -> xr.Dataset:
        return _indices_of(ds, base, options, x, seed)

    return PointsJob(base, plan, list(options.endpoints), pop, settings, seed,
                     stream_seeds(seed)[1], options.chunk_size, desc, finish)


def _indices_of(ds: xr.Dataset, base: Scenario, options: SensitivityOptions, x: np.ndarray,
                seed: int) -> xr.Dataset:
    """The indices (:func:`sensitivity_indices`) of the evaluated design ``ds`` (flat
    ``point``), with the runs' status, the failure warning and the attributes."""
    from cartsim import __version__
    from cartsim.batch import scenario_yaml as _yaml

    status = np.asarray(ds["status"].values)
    # sweep values are NaN where a run gave none (failed solve with one patient per point,
    # no evaluable patient, not estimable); a point that did not run at all (-1 missing,
    # -2 invalid scenario) has no value either
    outputs = {n: np.where(status < 0, np.nan, ds[n].values.astype(float))
               for n in options.endpoints}
    units = {n: ds[n].attrs.get("units", "1") for n in options.endpoints}
    long_names = {n: ds[n].attrs.get("long_name", n) for n in options.endpoints}
    out = sensitivity_indices(options.parameters, options, x, outputs, seed, units, long_names)
    out["status"] = (("sample",), ds["status"].values, {
        "units": "1", "long_name": "status of each model run (0 ok, > 0 solver failure, -1 "
                                   "missing, -2 invalid scenario)"})
    n_failed = int((status != 0).sum())
    missing = {n: int(v) for n, v in zip(options.endpoints, out["n_nonfinite"].values) if v}
    if n_failed or missing:
        from cartsim import CartsimWarning

        failed = "failed solve" if options.population_n == 0 else \
            "a failed solve among the point's patients"
        why = [f"{n}: {ds[n].attrs['not_estimable']}" for n in options.endpoints
               if "not_estimable" in ds[n].attrs]
        warnings.warn(
            f"sensitivity: {n_failed} of {x.shape[0]} model runs did not succeed ({failed}, "
            "invalid or missing point; see 'status'); missing values, replaced by the mean "
            "of the finite ones in the indices (no index where none is finite): "
            + (", ".join(f"{n} {k}/{x.shape[0]}" for n, k in missing.items()) or "none")
            + (f" (not estimable: {'; '.join(why)})" if why else ""),
            CartsimWarning, stacklevel=2)
    out.attrs.update({
        "title": f"cartsim global sensitivity ({options.method})",
        "cartsim_version": __version__,
        "model": base.model.name,
        "config": _yaml(base),
        "population_n": int(options.population_n),
        "n_runs": int(x.shape[0]),
        "n_failed": n_failed,
        "errors": ds.attrs.get("errors", "[]"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "conventions": "CF-1.8 style units and long_name on every variable",
    })
    return out
