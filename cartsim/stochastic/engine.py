"""Stochastic and agent simulation of scenarios: ``simulate_stochastic(scenarios) -> Dataset``.

The call shape is :func:`cartsim.simulation.simulate`'s: scenarios are built into the same
problems (initial state, parameter vector, dose events, rules) by the same model, and the
result is assembled by the same :func:`cartsim.batch.to_dataset`, so every state and
observable (and :func:`cartsim.clinical.endpoints`) works unchanged. The differences:

* with ``replicates > 1`` (or ``replicate_dim=True``) every variable gains a ``replicate``
  dim after ``patient``; one realisation per patient keeps dims ``(patient, time)``;
* cell states are whole-number counts; extinction is real (and absorbing);
* a consolidative HSCT is decided per realisation on its own simulated marrow;
* ``status`` is per realisation (0 success, 1 max_steps, 3 nonfinite): a failed
  realisation is NaN from its failure on, never an exception;
* per-realisation outcomes (cure day, CAR-T loss day, relapse day, CD7- escape) are
  added by :func:`cartsim.stochastic.outcomes.add_outcomes`, read off every recorded time;
* the kernel records the output grid and the endpoint grid together
  (:func:`cartsim.simulation.record_times`), and the Dataset stores the output grid plus,
  where the two differ, the endpoints' observables on the endpoint grid
  (:func:`cartsim.simulation.on_output_grid`). A realisation stops at every recorded time,
  so an output grid inside the daily endpoint grid (``output.dt`` a whole number of days)
  gives the very realisations, outcomes and endpoints of the default ``dt=1``; a finer or
  shifted grid gives other realisations of the same process (equal in distribution);
* ``engine="agent"`` adds clonal diversity over time and the final clone table.

Random streams: realisation ``j = (stream_offset + patient) * replicates + replicate``
uses ``numpy.random.SeedSequence(seed, spawn_key=(rng.STREAM_DOMAIN, j))``; results do
not depend on the number of Numba threads or on how a cohort is chunked (pass ``stream_offset``).
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import xarray as xr
import yaml

from cartsim.cf import cf_conventions
from cartsim.models.cd7 import HSCT_LIMITS  # noqa: F401 (re-exported; one definition)
from cartsim.stochastic.options import StochasticOptions

__all__ = ["ENGINES", "HSCT_LIMITS", "simulate_network", "simulate_stochastic",
           "trial_simulator"]

ENGINES = ("stochastic", "agent")
"""Engines this module runs."""



def _scenarios(scenarios) -> list:
    from cartsim.batch import as_batch

    scs = as_batch(scenarios, "simulate_stochastic()", shared=("model.name", "output"))
    first = scs[0]
    if first.model.name != "cd7":
        raise ValueError(f"engine=stochastic/agent simulates the cd7 reaction network; "
                         f"model.name={first.model.name!r} is not accepted (use model=cd7)")
    return scs


CONTINUOUS_SCALES = {
    "flu_central": 0.1, "flu_periph1": 0.1, "flu_periph2": 0.1,  # mg: ~1% of a daily dose
    "cy_central": 1.0,  # mg: ~0.2% of a daily 300 mg/m2 dose
    "homeostatic_cytokine": 0.01, "macrophage_activation": 0.01,  # 1: 1% of baseline/max
    "il6": 0.5, "il10": 0.5, "ifng": 0.5, "tnfa": 0.5,  # pg/mL: ~10% of baselines
    "toci_conc": 0.01, "dex_amount": 0.01,  # mg/L, mg: far below effect levels
    "myeloid_precursor": 0.01, "myeloid_blood": 0.01,  # 1: 1% of baseline
    "flu_auc": math.inf,  # a running integral: not step-controlled
    "car_divisions": 0.1,  # e-folds: ~1% of the proliferative capacity (expansion_capacity 12)
    "allo_priming": 0.01,  # 1: 1% of full priming
}
"""Absolute scales (state units) of the continuous states' relative-change step control.
Assumption: each is small against the level at which the state acts on anything."""


def continuous_scales() -> np.ndarray:
    """``CONTINUOUS_SCALES`` in state order (continuous states only)."""
    from cartsim.models import cd7_kernel as K

    return np.array([CONTINUOUS_SCALES[n] for n in K.STATE_NAMES[K.N_CELL:]])


def _tables(model, scs):
    """Problems plus padded event (with HSCT condition flags) and rule arrays."""
    from cartsim.models import cd7_kernel as K

    problems, cond, limits = [], [], []
    for s in scs:
        pr = model.build(s)
        n_before = len(pr.events)
        limit = 0.0
        if s.regimen.hsct_day is not None:
            model.add_hsct(pr, float(s.regimen.hsct_day), s.patient.weight_kg)
            limit = HSCT_LIMITS[s.regimen.hsct_criterion]
        pr.info["hsct_day"] = np.nan
        problems.append(pr)
        cond.append([0] * n_before + [1] * (len(pr.events) - n_before))
        limits.append(limit)
    npat = len(problems)
    kmax = max([len(pr.events) for pr in problems] + [1])
    ev_t = np.zeros((npat, kmax))
    ev_kind = np.zeros((npat, kmax), np.int64)
    ev_idx = np.zeros((npat, kmax), np.int64)
    ev_val = np.zeros((npat, kmax))
    ev_cond = np.zeros((npat, kmax), np.int64)
    ev_n = np.zeros(npat, np.int64)
    for i, (pr, cf) in enumerate(zip(problems, cond)):
        if not pr.events:
            continue
        t, kind, idx, val = (np.asarray(v) for v in zip(*pr.events))
        o = np.argsort(t, kind="stable")
        k = len(o)
        ev_t[i, :k], ev_kind[i, :k], ev_idx[i, :k] = t[o], kind[o], idx[o]
        ev_val[i, :k], ev_cond[i, :k] = val[o], np.asarray(cf)[o]
        ev_n[i] = k
    rmax = max([len(pr.rules) for pr in problems] + [1])
    r_idx = np.zeros((npat, rmax), np.int64)
    r_thr = np.zeros((npat, rmax))
    r_kind = np.zeros((npat, rmax), np.int64)
    r_tgt = np.zeros((npat, rmax), np.int64)
    r_val = np.zeros((npat, rmax))
    r_n = np.zeros(npat, np.int64)
    for i, pr in enumerate(problems):
        for j, (idx, thr, kind, tgt, val) in enumerate(pr.rules):
            r_idx[i, j], r_thr[i, j], r_kind[i, j], r_tgt[i, j], r_val[i, j] = (
                idx, thr, kind, tgt, val)
        r_n[i] = len(pr.rules)
    y0 = np.stack([pr.y0 for pr in problems])
    x0 = np.exp(y0[:, :K.N_CELL])
    c0 = np.ascontiguousarray(y0[:, K.N_CELL:])
    p = np.stack([pr.p for pr in problems])
    return (problems, x0, c0, p, (ev_t, ev_kind, ev_idx, ev_val, ev_cond, ev_n),
            np.asarray(limits, dtype=np.float64), (r_idx, r_thr, r_kind, r_tgt, r_val, r_n))


def simulate_stochastic(scenarios, *, engine: str = "stochastic", replicates: int | None = None,
                        seed: int | None = None, options: StochasticOptions | None = None,
                        replicate_dim: bool | None = None, stream_offset: int = 0,
                        method: str | None = None) -> xr.Dataset:
    """Simulate scenarios with the hybrid stochastic (or clonal agent) engine.

    Parameters
    ----------
    scenarios : Scenario, DictConfig, dict, or a sequence of them (one ``patient`` each;
        same model and output grid).
    engine : ``stochastic`` (compartments) or ``agent`` (CAR-T clones,
        ``options.agent``).
    replicates : realisations per scenario; default ``options.replicates`` when
        ``options`` is given, else 1.
    seed : root seed; default ``options.seed``, else the first scenario's ``seed``.
    options : :class:`~cartsim.stochastic.options.StochasticOptions` (defaults if None).
    replicate_dim : add the ``replicate`` dim; default ``replicates > 1``.
    stream_offset : patient index of the first scenario in a larger, chunked cohort (its
        realisations then use the same streams as in one unchunked call).
    method : accepted for call compatibility with :func:`cartsim.simulate` and ignored.

    Returns
    -------
    xarray.Dataset
        Dims ``patient`` [x ``replicate``] x ``time`` (plus ``clone`` for the agent
        engine); see the module notes.
    """
    from cartsim.grid import endpoint_times, on_output_grid, output_times, record_times
    from cartsim.models import get_model
    from cartsim.stochastic.outcomes import add_outcomes

    del method
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not accepted: expected one of "
                         f"{', '.join(ENGINES)}")
    opts = options if options is not None else StochasticOptions()
    if not isinstance(opts, StochasticOptions):
        raise TypeError(f"options must be a StochasticOptions, not {type(opts).__name__}")
    nrep = int(replicates if replicates is not None
               else (opts.replicates if options is not None else 1))
    if nrep < 1:
        raise ValueError(f"replicates={replicates!r} is not accepted: expected >= 1")
    scs = _scenarios(scenarios)
    root = int(seed if seed is not None else (opts.seed if opts.seed is not None
                                                else scs[0].seed))
    model = get_model("cd7")
    problems, x0, c0, p, ev, limits, rules = _tables(model, scs)
    t_out, t_ep = output_times(scs[0]), endpoint_times(scs[0])
    t_eval = record_times(t_out, t_ep)
    t0 = min(min(pr.t0 for pr in problems), float(t_eval[0]))
    npat = len(scs)
    agent = engine == "agent"
    out = _run_kernel(x0, c0, p, ev, limits, rules, t_eval, float(t0), nrep, root,
                      int(stream_offset), opts, agent)
    nrun = npat * nrep
    pat_of = out.pat_of
    y_out, div_out, rule_time, counters = out.y, out.div, out.rule_time, out.counters
    cl_out, status, hsct_day, nk = out.clones, out.status, out.hsct_day, out.clones.shape[1]

    # assemble with the ODE path's to_dataset (same variables, units, observables)
    from cartsim.batch import patient_overrides, to_dataset

    stats = np.zeros((nrun, 4), np.int64)
    stats[:, 0] = counters[:, 0]
    stats[:, 1] = counters[:, 2]
    result = SimpleNamespace(y=y_out, status=status, stats=stats,
                             rule_time=rule_time[:, :max(len(pr.rules) for pr in problems)])
    run_problems = [dataclasses.replace(problems[i], info={**problems[i].info,
                                                           "hsct_day": float(hsct_day[j])})
                    for j, i in enumerate(pat_of)]
    run_scs = [scs[i] for i in pat_of]
    ds = to_dataset(_CountsModel(model), run_problems, t_eval, result, run_scs, method=engine)
    ds = ds.drop_vars(["n_rhs", "n_jac"])
    ds["n_steps"].attrs["long_name"] = "reaction steps (leaps and exact firings)"
    ds["n_rejected"].attrs["long_name"] = "leaps rejected for a negative population"
    ds["n_exact"] = (("patient",), counters[:, 1], {
        "units": "1", "long_name": "exact (SSA) reaction firings"})
    ds["status"].attrs["long_name"] = ("realisation status: 0 success, 1 max steps, "
                                       "3 non-finite state")
    if agent:
        names = (("clones_alive", "1", "CAR-T clones with at least one cell"),
                 ("clone_shannon", "nat", "Shannon index of CAR-T clone sizes"),
                 ("clone_inverse_simpson", "1",
                  "inverse Simpson index of CAR-T clone sizes (effective clone number)"),
                 ("top_clone_share", "1", "largest CAR-T clone's share of CAR-T cells"))
        for j, (nm, units, long_name) in enumerate(names):
            ds[nm] = (("patient", "time"), div_out[:, :, j],
                      {"units": units, "long_name": long_name})
        cl_names = (("clone_size", "cells", "CAR-T cells of the clone at the last output"),
                    ("clone_divisions", "1", "divisions in the clone since infusion"),
                    ("clone_exhaustion", "1", "exhaustion level of the clone at the end"),
                    ("clone_residual_cd7", "1", "residual surface CD7 factor of the clone"))
        for j, (nm, units, long_name) in enumerate(cl_names):
            ds[nm] = (("patient", "clone"), cl_out[:, :, j],
                      {"units": units, "long_name": long_name})
        if opts.agent.clone_sizes_over_time:
            ds["clone_size_t"] = (("patient", "time", "clone"), out.sizes, {
                "units": "cells", "long_name": "CAR-T cells of each clone at each output"})
        ds = ds.assign_coords(clone=("clone", np.arange(nk), {"long_name": "CAR-T clone"}))
    ds = on_output_grid(add_outcomes(ds, opts.relapse_blast_pct), t_out, t_ep)
    use_rep = nrep > 1 if replicate_dim is None else bool(replicate_dim)
    if use_rep:
        ds = _unflatten(ds, npat, nrep)
    else:
        ds = ds.assign_coords(patient=("patient", np.arange(npat),
                                       {"long_name": "patient index"}))
    ds.attrs.update({
        "title": f"cartsim {engine} simulation",
        "engine": engine,
        "seed": root,
        "replicates": nrep,
        "stream_offset": int(stream_offset),
        "stochastic_options": yaml.safe_dump(dataclasses.asdict(opts), sort_keys=False),
        "streams": "realisation j = (stream_offset + patient) * replicates + replicate uses "
                   "numpy.random.SeedSequence(seed, spawn_key=(0x5707C, j)) -> xoshiro256**",
        "note": "cell states are whole-number counts (exact SSA below exact_threshold cells, "
                "Cao-Gillespie-Petzold tau-leaping above); states reported after any dose "
                "event at the same time (right-continuous)",
    })
    if npat > 1:
        ds.attrs["patient_overrides"] = patient_overrides(scs)
    else:
        ds.attrs.pop("patient_overrides", None)
    return cf_conventions(ds)


def trial_simulator(engine: str = "stochastic", options: StochasticOptions | None = None,
                    seed: int | None = None):
    """The ``simulate_fn(scenarios, start)`` hook of :func:`cartsim.run_trial` and
    :func:`cartsim.run_sweep` for a stochastic engine: every virtual patient is one
    realisation (dims ``patient`` x ``time``).

    ``start`` is the global index of the first scenario in the cohort (or sweep); it
    numbers the random streams, so a patient gets the same realisation whatever the
    chunk size or the order in which chunks are (re)computed.
    """

    def simulate(scenarios, start: int = 0) -> xr.Dataset:
        return simulate_stochastic(scenarios, engine=engine, replicates=1, seed=seed,
                                   options=options, replicate_dim=False,
                                   stream_offset=int(start))

    return simulate


class _CountsModel:
    """The model with states already linear (exact whole-number counts, no ln/exp trip)."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    @staticmethod
    def to_linear(y):
        return np.array(y, dtype=np.float64, copy=True)


def _run_kernel(x0, c0, p, ev, limits, rules, t_eval, t0, nrep, root, offset, opts, agent):
    """Run the compiled batch: ``nrep`` realisations of every patient (patient-major)."""
    from cartsim.models import cd7_kernel as K
    from cartsim.stochastic import kernel as KS
    from cartsim.stochastic.rng import seed_states

    npat = x0.shape[0]
    nrun = npat * nrep
    pat_of = np.repeat(np.arange(npat, dtype=np.int64), nrep)
    states = seed_states(root, nrun, offset=offset * nrep)
    ao = opts.agent
    nk = ao.n_clones if agent else 1
    fopt = np.array([opts.epsilon, min(opts.threshold(), 1e300), opts.langevin_threshold,
                     opts.dt_max, ao.cd7_log_sd, ao.exhaustion_gain, opts.continuous_rtol])
    iopt = np.array([opts.max_steps, nk, int(agent and ao.clone_cd7),
                     int(agent and ao.exhaustion)], dtype=np.int64)
    t_eval = np.ascontiguousarray(t_eval, dtype=np.float64)
    nt = t_eval.shape[0]
    out = SimpleNamespace(
        pat_of=pat_of, y=np.empty((nrun, nt, K.N_STATE)), div=np.zeros((nrun, nt, KS.N_DIV)),
        rule_time=np.full((nrun, rules[0].shape[1]), np.nan),
        counters=np.zeros((nrun, 3), np.int64), clones=np.zeros((nrun, nk, 4)),
        sizes=np.zeros((nrun, nt if agent and ao.clone_sizes_over_time else 1, nk)),
        status=np.zeros(nrun, np.int64), hsct_day=np.full(nrun, np.nan))
    KS.run_batch(pat_of, np.ascontiguousarray(x0, dtype=np.float64),
                 np.ascontiguousarray(c0, dtype=np.float64),
                 np.ascontiguousarray(p, dtype=np.float64), t_eval, float(t0),
                 float(t_eval[-1]), *ev, limits, *rules, states, fopt, iopt,
                 continuous_scales(), out.y, out.div, out.sizes, out.rule_time, out.counters,
                 out.clones, out.status, out.hsct_day)
    return out


def simulate_network(x0, c0, p, t_eval, *, t0: float | None = None, replicates: int = 1,
                     seed: int = 0, options: StochasticOptions | None = None,
                     engine: str = "stochastic") -> SimpleNamespace:
    """Full-control layer: realisations of the cd7 network from given arrays, no events.

    Parameters
    ----------
    x0 : (N_CELL,) cell counts (whole numbers after stochastic rounding).
    c0 : (N_STATE - N_CELL,) continuous states.
    p : (N_P,) kernel parameter vector (``cartsim.models.cd7_kernel`` layout).
    t_eval : output days (non-decreasing); ``t0`` defaults to ``t_eval[0]``.

    Returns
    -------
    SimpleNamespace
        ``y[replicate, time, state]`` (linear units), ``status``, ``counters`` (steps,
        exact firings, rejected leaps), ``div`` and ``clones`` (agent engine).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not accepted: expected one of "
                         f"{', '.join(ENGINES)}")
    opts = options if options is not None else StochasticOptions()
    t_eval = np.asarray(t_eval, dtype=np.float64).reshape(-1)
    ev = (np.zeros((1, 1)), np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64),
          np.zeros((1, 1)), np.zeros((1, 1), np.int64), np.zeros(1, np.int64))
    rules = (np.zeros((1, 1), np.int64), np.zeros((1, 1)), np.zeros((1, 1), np.int64),
             np.zeros((1, 1), np.int64), np.zeros((1, 1)), np.zeros(1, np.int64))
    start = float(t_eval[0]) if t0 is None else float(t0)
    return _run_kernel(np.atleast_2d(x0), np.atleast_2d(c0), np.atleast_2d(p), ev,
                       np.zeros(1), rules, t_eval, start, int(replicates), int(seed), 0, opts,
                       engine == "agent")


def _unflatten(ds: xr.Dataset, npat: int, nrep: int) -> xr.Dataset:
    """Flat ``patient`` (patient-major runs) -> dims ``patient`` x ``replicate``."""
    out = {}
    for name, var in ds.data_vars.items():
        if "patient" in var.dims:
            ax = var.dims.index("patient")
            arr = np.asarray(var.values)
            shape = arr.shape[:ax] + (npat, nrep) + arr.shape[ax + 1:]
            dims = var.dims[:ax] + ("patient", "replicate") + var.dims[ax + 1:]
            out[name] = (dims, arr.reshape(shape), var.attrs)
        else:
            out[name] = var
    coords = {k: v for k, v in ds.coords.items() if k != "patient"}
    coords["patient"] = ("patient", np.arange(npat), {"long_name": "patient index"})
    coords["replicate"] = ("replicate", np.arange(nrep),
                           {"long_name": "stochastic realisation"})
    return xr.Dataset(out, coords=coords, attrs=ds.attrs)
