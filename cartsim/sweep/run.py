"""Dense sweeps inside one job: points -> compiled batches in chunks -> endpoints -> one Dataset.

:func:`run_sweep` is the entry point of ``cartsim task=sweep`` and of notebooks::

    from cartsim.sweep import SweepAxis, SweepSpec, run_sweep
    spec = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", space="logspace",
                                     start=1e5, stop=1e7, num=9)])
    ds = run_sweep(Scenario(), spec)
    ds["mrd_neg_cr_d28"]          # one value per dose

How it runs
-----------
Every point (times its virtual population) is one patient of a compiled parallel batch
(:func:`cartsim.simulate`); ``chunk_size`` patients are integrated at a time and reduced to
the kept endpoints at once, so memory is bounded by the chunk, never the whole
time-resolved sweep. Each completed chunk is written atomically into the chunk directory;
a re-run with the same spec skips the chunks already there (see
:mod:`cartsim.sweep.store`), and a chunk whose evaluation raised is left out and reported,
while the sweep goes on. A sharded run (``shard.count``, :mod:`cartsim.shard.sweep`) splits
the chunks among launcher jobs that share one chunk directory and gathers them into this
same Dataset.

Randomness (as :func:`cartsim.run_trial`; :mod:`cartsim.randomness`): the run seed is split
into the cohort stream and the death-model seed (:func:`cartsim.randomness.stream_seeds`). Every
point draws its population from a fresh copy of the same cohort stream and its deaths with
the same seed, keyed by the patient's index within the point: common random numbers, so a
point's result is exactly ``run_trial`` of that point's scenario (or, without a population,
``endpoints(simulate(scenario))``, whose default death draws are the run seed's death
stream), and differences between points are not sampling noise.

A chunk whose evaluation raises is reported (``errors`` attribute, its points status -1)
and the sweep goes on, except for the first chunk a run evaluates: an exception there is
most likely a setup error that every chunk would repeat, so it is raised at once.

Status per point: 0 every patient solved; 1-4 the solver status of the (first) failed
patient; -1 not computed (its chunk is missing: interrupted or raised); -2 the point is not
a valid scenario (e.g. memory + exhausted fractions > 1).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from cartsim.scenario import Scenario, ScenarioError
from cartsim.sweep.axes import Axis, apply_point, grid_points, resolve_axes, resolve_groups
from cartsim.sweep.options import SweepSpec

__all__ = ["MISSING", "INVALID", "PointsJob", "SweepPlan", "plan_sweep", "prepare_sweep",
           "run_points", "run_sweep"]

MISSING = -1
"""Point status: not computed (its chunk is missing)."""
INVALID = -2
"""Point status: the swept values do not make a valid scenario."""


@dataclasses.dataclass
class SweepPlan:
    """A resolved sweep: axes, the list of points, and how they are grouped into chunks."""

    axes: list[Axis]
    points: list[tuple]
    shape: tuple[int, ...] | None  # grid shape, None for sampled sweeps
    groups: dict
    per_point: int  # patients per point

    @property
    def n_points(self) -> int:
        return len(self.points)


@dataclasses.dataclass
class PointsJob:
    """A sweep or sensitivity analysis ready to evaluate: its points and how they are reduced.

    :func:`prepare_sweep` and :func:`cartsim.sweep.sensitivity.prepare_sensitivity` build
    one; :func:`run_sweep` is ``job.finish(job.evaluate(...))``. A sharded run
    (:mod:`cartsim.shard.sweep`) evaluates a slice of the chunks per job (``chunks=``) and
    gathers by loading every chunk (``load_only=True``) through the same two calls, so the
    gathered result is the one job's.

    Attributes
    ----------
    base, plan, names, pop, settings, seed, death_seed, chunk_size, save_trajectories,
    ci_level, resume : what :func:`run_points` takes.
    description : what determines the result; its hash (:attr:`hash`) names the chunk files.
    finish : the flat ``point`` Dataset of :func:`run_points` -> the result Dataset.
    """

    base: Scenario
    plan: SweepPlan
    names: list[str]
    pop: object
    settings: object
    seed: int
    death_seed: int
    chunk_size: int
    description: dict
    finish: Callable[[xr.Dataset], xr.Dataset]
    save_trajectories: bool = False
    ci_level: float = 0.95
    resume: bool = True

    @property
    def per_chunk(self) -> int:
        """Points per chunk: ``chunk_size // per_point`` (at least 1)."""
        return max(1, self.chunk_size // self.plan.per_point)

    @property
    def n_chunks(self) -> int:
        """Chunks of the whole run (the last one may be shorter)."""
        return -(-self.plan.n_points // self.per_chunk)

    @property
    def hash(self) -> str:
        """The hash of :attr:`description` (the chunk files' and the shard records')."""
        from cartsim.sweep.store import spec_hash

        return spec_hash(self.description)

    def evaluate(self, *, chunk_dir=None, simulate_fn=None, progress=None, chunks=None,
                 load_only: bool = False, known_errors=()) -> xr.Dataset:
        """:func:`run_points` on this job (the flat ``point`` Dataset)."""
        return run_points(self.base, self.plan, self.names, self.pop, self.settings,
                          seed=self.seed, death_seed=self.death_seed,
                          chunk_size=self.chunk_size, chunk_dir=chunk_dir,
                          description=self.description, simulate_fn=simulate_fn,
                          progress=progress, save_trajectories=self.save_trajectories,
                          ci_level=self.ci_level, resume=self.resume, chunks=chunks,
                          load_only=load_only, known_errors=known_errors)


def plan_sweep(base: Scenario, spec: SweepSpec, *, seed: int = 0,
               group_resolver=None) -> SweepPlan:
    """Resolve the axes (unknown names are errors) and list the points of a sweep."""
    from cartsim.sweep.axes import sample_points

    spec = dataclasses.replace(spec)  # re-validate: fields may have changed since it was built
    sampled = spec.method != "grid"
    axes = resolve_axes(spec.axes, base, numeric=sampled)
    groups = resolve_groups(axes, group_resolver)
    if sampled:
        pts = [tuple(r) for r in sample_points(axes, spec.method, spec.n_samples, seed).tolist()]
        shape = None
    else:
        pts = grid_points(axes)
        shape = tuple(len(a.values) for a in axes)
        for a in axes:  # a bad value alone is a config error, not a point status
            for v in a.values:
                apply_point(base, [a], [v], groups)
    return SweepPlan(axes, pts, shape, groups, max(1, spec.population_n))


def run_sweep(base: Scenario, spec: SweepSpec | None = None, population=None, settings=None,
              *, seed: int | None = None, chunk_dir=None, simulate_fn: Callable | None = None,
              group_resolver=None, progress: Callable[[int, int], None] | None = None,
              engine: dict | None = None) -> xr.Dataset:
    """Run a sweep and return one Dataset (one dim per grid axis, or a ``sample`` dim).

    Parameters
    ----------
    base : the scenario every point starts from.
    spec : :class:`~cartsim.sweep.options.SweepSpec` (default: no axes, one point).
    population : :class:`~cartsim.population.PopulationSpec` of the per-point virtual
        population (used when ``spec.population_n > 0``; its ``n`` is replaced by
        ``population_n``). A covariate that is also swept (or lies in the section of a swept
        config group) is taken from the point, not drawn.
    settings : :class:`~cartsim.clinical.EndpointSettings` (default: its defaults).
    seed : run seed (default ``base.seed``): sample points, cohorts and death draws.
    chunk_dir : directory of the chunk files (resumable); None = nothing written.
    simulate_fn : ``simulate_fn(scenarios, start) -> Dataset`` (default :func:`cartsim.simulate`,
        one batch); ``start`` is the global index of the first patient (see
        ``_simulate_points``); ``cartsim.tasks.common.engine_simulator`` gives the stochastic
        engines'; the one place the simulator is called (another engine plugs in here).
    group_resolver : ``resolver(group, option) -> section`` for group axes (default: compose
        ``conf/``).
    progress : called as ``progress(points_done, n_points)`` after each chunk.
    engine : description of a non-ODE ``simulate_fn`` (e.g. ``{"engine": "stochastic",
        "stochastic": {...}}``): part of what the chunk files are checked against, so a
        resumed sweep never mixes engines. None for the ODE.

    Returns
    -------
    xarray.Dataset
        Kept endpoints per point (per-point summaries with a population), ``status`` per
        point; coordinates: the swept values (with units); attrs: config, spec, seed,
        version, ``n_missing``, ``n_failed``, ``n_invalid``, ``errors``.

    Raises
    ------
    ScenarioError
        Bad spec, unknown axis name or endpoint, a bad axis value, or a chunk directory of
        another sweep (:class:`~cartsim.sweep.store.SweepMismatchError`).
    """
    job = prepare_sweep(base, spec, population, settings, seed=seed,
                        group_resolver=group_resolver, engine=engine)
    return job.finish(job.evaluate(chunk_dir=chunk_dir, simulate_fn=simulate_fn,
                                   progress=progress))


def prepare_sweep(base: Scenario, spec: SweepSpec | None = None, population=None,
                  settings=None, *, seed: int | None = None, group_resolver=None,
                  engine: dict | None = None) -> PointsJob:
    """Check a sweep and list its points, evaluating nothing (:func:`run_sweep`'s first
    half; the parameters are its own). Raises what :func:`run_sweep` raises for bad input."""
    from cartsim.clinical import EndpointSettings
    from cartsim.randomness import stream_seeds

    spec = SweepSpec() if spec is None else dataclasses.replace(spec)
    from cartsim.budget import check_sweep
    check_sweep(base, spec)  # from the axes' lengths: 1e10 points are refused in ms
    settings = EndpointSettings() if settings is None else settings
    seed = int(base.seed if seed is None else seed)
    plan = plan_sweep(base, spec, seed=seed, group_resolver=group_resolver)
    from cartsim.sweep.endpoints import check_endpoints

    check_endpoints(spec.endpoints, settings=settings)
    check_follow_up(base, spec.endpoints, "sweep.endpoints")
    pop = _point_population(population, spec, plan.axes)
    desc = describe(base, spec, pop, settings, seed)
    if engine is not None:
        desc["engine"] = engine

    def finish(ds: xr.Dataset) -> xr.Dataset:
        ds = shape_result(ds, plan)
        ds.attrs.update(_attrs(base, spec, pop, settings, seed, desc))
        return ds

    return PointsJob(base, plan, list(spec.endpoints), pop, settings, seed,
                     stream_seeds(seed)[1], spec.chunk_size, desc, finish,
                     save_trajectories=spec.save_trajectories, ci_level=spec.ci_level,
                     resume=spec.resume)


def check_follow_up(base: Scenario, names, key: str) -> None:
    """``pfs_12m`` needs the output grid to reach its landmark (day 365)."""
    from cartsim.grid import output_times
    from cartsim.sweep.endpoints import PFS_DAY

    end = float(output_times(base)[-1])
    if "pfs_12m" in names and end < PFS_DAY - 1e-9:
        raise ScenarioError(f"{key}={list(names)!r} is not accepted with output.t_end={end:g}: "
                            f"pfs_12m needs follow-up to day {PFS_DAY:g}; drop it or set "
                            f"output.t_end >= {PFS_DAY:g}")


def _point_population(population, spec: SweepSpec, axes: Sequence[Axis]):
    """The population spec drawn at every point (swept covariates removed), or None."""
    if spec.population_n == 0:
        return None
    from cartsim.population import PopulationSpec
    from cartsim.population.spec import COVARIATE_FIELDS

    pop = population or PopulationSpec()
    swept = {a.name for a in axes} | {a.section for a in axes if a.kind == "group"}
    keep = {k: v for k, v in pop.covariates.items()
            if COVARIATE_FIELDS[k].key not in swept
            and COVARIATE_FIELDS[k].key.split(".")[0] not in swept}
    return dataclasses.replace(pop, n=spec.population_n, covariates=keep)


def describe(base: Scenario, spec: SweepSpec, pop, settings, seed: int) -> dict:
    """Everything that determines a sweep's result (hashed to name its chunk files)."""
    from cartsim import __version__
    from cartsim.batch import scenario_yaml as _yaml

    s = dataclasses.asdict(spec)
    for k in ("resume", "resume_dir", "save_trajectories", "name"):
        s.pop(k)
    return {"base": _yaml(base), "spec": s, "seed": int(seed),
            "population": None if pop is None else dataclasses.asdict(pop),
            "settings": settings.to_dict(), "cartsim_version": __version__}


def run_points(base: Scenario, plan: SweepPlan, names: Sequence[str], pop, settings, *,
               seed: int, death_seed: int, chunk_size: int, chunk_dir=None,
               description: dict | None = None, simulate_fn=None, progress=None,
               save_trajectories: bool = False, ci_level: float = 0.95,
               resume: bool = True, chunks: Sequence[int] | None = None,
               load_only: bool = False, known_errors: Sequence[dict] = ()) -> xr.Dataset:
    """Evaluate every point of ``plan`` chunk by chunk; returns dim ``point`` (flat).

    ``resume=False`` recomputes (and overwrites) chunks already in ``chunk_dir``.
    ``chunks``: evaluate only these chunk numbers (in order; a shard's slice); the Dataset
    then holds only their points. ``load_only``: compute nothing, load every chunk from
    ``chunk_dir`` (a sharded run's gather); a chunk that is not there is a
    :class:`~cartsim.sweep.store.MissingChunksError` naming them all, unless
    ``known_errors`` holds its ``errors`` entry (a chunk whose evaluation raised in the job
    that owned it), which is reported as one job reports it.
    """
    from cartsim.sweep.store import ChunkStore, MissingChunksError

    if save_trajectories and chunk_dir is None:
        raise ScenarioError("sweep.save_trajectories=True needs a chunk directory "
                            "(sweep.resume_dir or the task's output dir) to write them into")
    if load_only and chunk_dir is None:
        raise ScenarioError("load_only=True needs the chunk directory to load from")
    store = ChunkStore(chunk_dir, description or {}) if chunk_dir is not None else None
    per_chunk = max(1, chunk_size // plan.per_point)
    n = plan.n_points
    starts = list(range(0, n, per_chunk))
    order = list(range(len(starts))) if chunks is None else [int(k) for k in chunks]
    if any(not 0 <= k < len(starts) for k in order):
        raise ScenarioError(f"chunks={chunks!r} is not accepted: expected chunk numbers in "
                            f"0..{len(starts) - 1}")
    wanted = set(order)
    failed_before = {int(e["chunk"]): e for e in known_errors}
    parts, errors, invalid, absent = [], [], {}, []
    tried = False  # has a chunk been evaluated (not loaded) in this run?
    loaded, started = {}, {}

    def chunk_idx(k):
        return np.arange(starts[k], min(n, starts[k] + per_chunk))

    def load(k):
        if k not in loaded:
            use = store is not None and (resume or load_only)
            then = "left out" if load_only else "recomputing it"
            loaded[k] = store.load(k, chunk_idx(k), then) if use else None
        return loaded[k]

    # ODE chunks run as a pipeline: while the compiled solver (GIL released) integrates
    # chunk k in a worker thread, this thread builds chunk k+1 and reduces chunk k-1.
    executor = None
    if simulate_fn is None and len(order) > 1 and not load_only:
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartsim-solve")

    def start(k):
        if executor is not None and k in wanted and k not in started and load(k) is None:
            started[k] = _Started(base, plan, chunk_idx(k), pop, seed, executor)

    try:
        for pos, k in enumerate(order):
            idx = chunk_idx(k)
            part = load(k)
            loaded.pop(k, None)
            if part is None and load_only:
                if k in failed_before:
                    errors.append(failed_before[k])
                else:
                    absent.append(k)
            elif part is None:
                start(k)
                if pos + 1 < len(order):
                    start(order[pos + 1])
                try:
                    part, traj = _evaluate(base, plan, idx, names, pop, settings, seed=seed,
                                           death_seed=death_seed, simulate_fn=simulate_fn,
                                           ci_level=ci_level, keep=save_trajectories,
                                           started=started.pop(k, None))
                except (KeyboardInterrupt, SystemExit, MemoryError):
                    raise
                except Exception as exc:  # failure is data: report the chunk, go on
                    if not tried:  # the first chunk: most likely a setup error, fail fast
                        raise
                    errors.append({"chunk": k, "points": [int(idx[0]), int(idx[-1])],
                                   "error": f"{type(exc).__name__}: {exc}"})
                    warnings.warn(f"sweep chunk {k} (points {idx[0]}-{idx[-1]}) failed: "
                                  f"{type(exc).__name__}: {exc}; its points are reported "
                                  "missing (status -1), the sweep goes on", stacklevel=2)
                    part = None
                else:
                    if store is not None:
                        if traj is not None:
                            from cartsim.io import write_netcdf

                            write_netcdf(traj, store.path(k, "trajectories"))
                        store.save(k, part)
                tried = True
            if part is not None:
                invalid.update(json.loads(part.attrs.pop("invalid", "{}")))
                parts.append(part)
            if progress is not None:
                progress(int(idx[-1]) + 1, n)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    if absent:
        raise MissingChunksError(absent, store.directory)
    if chunks is None:
        ds = _complete(parts, n)
    else:  # only these chunks' points: a shard of a 1e7-point sweep holds its own slice
        ds = _complete(parts, None, np.concatenate([chunk_idx(k) for k in order])
                       if order else np.arange(0))
    ds.attrs["errors"] = json.dumps(errors)
    ds.attrs["invalid"] = json.dumps(dict(list(invalid.items())[:50]))
    if store is not None:
        ds.attrs["chunk_dir"] = str(store.directory)
        ds.attrs["spec_hash"] = store.hash
    return ds


def _simulate_points(scenarios, valid, per, simulate_fn, variables=None):
    """Simulate the valid points' scenarios (``per`` each, in order) as one Dataset.

    The default (ODE) is one compiled batch. A ``simulate_fn(scenarios, start)`` is called
    once per run of consecutive points with ``start = point * per``, the global index of the
    run's first patient: a stochastic engine numbers its random streams by it, so a point's
    result does not depend on the chunking or on which points a resumed run recomputes.
    """
    if simulate_fn is None:
        from cartsim.simulation import simulate

        return simulate(scenarios, variables=variables)
    parts, first = [], 0
    for k in range(1, len(valid) + 1):
        if k == len(valid) or valid[k] != valid[k - 1] + 1:
            parts.append(simulate_fn(scenarios[first * per:k * per], valid[first] * per))
            first = k
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, dim="patient", combine_attrs="override")


def _point_scenarios(base, plan: SweepPlan, idx, pop, seed):
    """The scenarios of points ``idx`` (``per_point`` each): (scenarios, valid, invalid)."""
    from cartsim.randomness import stream_seeds

    scenarios, valid, invalid = [], [], {}
    for p in idx:
        try:
            sc = apply_point(base, plan.axes, plan.points[p], plan.groups)
            if pop is not None:
                from cartsim.population import draw_cohort

                cohort = draw_cohort(sc, pop, stream_seeds(seed)[0])
                scs = cohort.scenarios
            else:
                scs = [sc]
        except ScenarioError as exc:
            invalid[int(p)] = str(exc)
            continue
        scenarios.extend(dataclasses.replace(s, seed=seed) if s.seed != seed else s
                         for s in scs)
        valid.append(int(p))
    return scenarios, valid, invalid


class _Started:
    """A chunk whose ODE solve was handed to the solver thread (``_start``)."""

    def __init__(self, base, plan, idx, pop, seed, executor):
        from cartsim.simulation import prepare, solve_prepared

        self.error = None
        self.future = None
        try:
            self.scenarios, self.valid, self.invalid = _point_scenarios(base, plan, idx, pop,
                                                                        seed)
            if self.valid:
                self.batch = prepare(self.scenarios)
                self.future = executor.submit(solve_prepared, self.batch)
        except Exception as exc:  # re-raised when the chunk's turn comes (_evaluate)
            self.error = exc

    def dataset(self, variables):
        from cartsim.simulation import finish

        return finish(self.batch, self.future.result(), variables=variables)


def _evaluate(base, plan: SweepPlan, idx, names, pop, settings, *, seed, death_seed,
              simulate_fn, ci_level, keep, started=None):
    """One chunk: build the points' scenarios, simulate them as one batch, reduce.

    ``started``: the chunk's ``_Started`` when its solve already runs in the solver thread.
    """
    from cartsim.clinical import endpoints
    from cartsim.clinical.endpoints import REQUIRED
    from cartsim.sweep.endpoints import select, single, summarise

    # endpoints only: a lean Dataset of what they read, unless trajectories are kept
    variables = None if keep else REQUIRED
    if started is not None:
        if started.error is not None:
            raise started.error
        scenarios, valid, invalid = started.scenarios, started.valid, started.invalid
    else:
        scenarios, valid, invalid = _point_scenarios(base, plan, idx, pop, seed)
    per = plan.per_point
    traj = None
    if valid:
        if started is not None:
            ds = started.dataset(variables)
        else:
            ds = _simulate_points(scenarios, valid, per, simulate_fn, variables=variables)
        ds = ds.assign_coords(patient=("patient", np.tile(np.arange(per), len(valid)),
                                       ds["patient"].attrs))
        ep = endpoints(ds, settings, seed=death_seed)
        if pop is not None:
            part = summarise(select(ep, names), names, len(valid), ci_level)
        else:
            part = single(ep, names)
        part = part.assign_coords(point=("point", np.array(valid)))
        if keep:
            traj = ds.assign_coords(point=("patient", np.repeat(valid, per)))
    else:
        part = None
    full = _complete([part] if part is not None else [], None, idx)
    if invalid:
        pos = np.searchsorted(idx, list(invalid))
        st = full["status"].values.copy()
        st[pos] = INVALID
        full["status"] = full["status"].copy(data=st)
        full.attrs["invalid"] = json.dumps(invalid)
    return full, traj


def _fill_value(da: xr.DataArray):
    kind = da.dtype.kind
    return False if kind == "b" else (-1 if kind in "iu" else ("" if kind in "US" else np.nan))


def _complete(parts: list[xr.Dataset], n: int | None, index=None) -> xr.Dataset:
    """Concatenate chunk parts and fill the points none of them holds (status -1)."""
    index = np.arange(n) if index is None else np.asarray(index)
    if not parts:
        return xr.Dataset({"status": (("point",), np.full(index.size, MISSING, np.int64),
                                      {"units": "1", "long_name": "point status"})},
                          coords={"point": index})
    ds = xr.concat(parts, dim="point", combine_attrs="drop_conflicts") if len(parts) > 1 \
        else parts[0]
    have = ds["point"].values
    if have.size == index.size and np.array_equal(have, index):
        return ds
    pos = np.searchsorted(index, have)
    out = {}
    for name, da in ds.data_vars.items():
        fill = MISSING if name == "status" else _fill_value(da)
        arr = np.full((index.size, *da.shape[1:]), fill, dtype=da.dtype)
        arr[pos] = da.values
        out[name] = (da.dims, arr, da.attrs)
    return xr.Dataset(out, coords={"point": index}, attrs=ds.attrs)


def shape_result(ds: xr.Dataset, plan: SweepPlan) -> xr.Dataset:
    """Flat ``point`` -> one dim per grid axis, or ``sample`` with the values as coordinates."""
    status = ds["status"].values
    counts = {"n_points": plan.n_points, "n_missing": int((status == MISSING).sum()),
              "n_invalid": int((status == INVALID).sum()),
              "n_failed": int((status > 0).sum())}
    axes = plan.axes
    coords = {}
    if plan.shape is None:
        dims = ("sample",)
        pts = np.array(plan.points, dtype=float).reshape(plan.n_points, len(axes))
        coords["sample"] = ("sample", np.arange(plan.n_points), {"long_name": "sample index"})
        for j, a in enumerate(axes):
            coords[a.name] = ("sample", pts[:, j], {"units": a.units, "long_name": a.long_name})
        shape = (plan.n_points,)
    else:
        dims = tuple(a.name for a in axes)
        shape = plan.shape
        for a in axes:
            coords[a.name] = (a.name, np.asarray(a.values), {"units": a.units,
                                                             "long_name": a.long_name})
    out = {}
    for name, da in ds.data_vars.items():
        out[name] = (dims, da.values.reshape(shape), da.attrs)
    res = xr.Dataset(out, coords=coords, attrs={k: v for k, v in ds.attrs.items()})
    res.attrs.update(counts)
    res.attrs["swept"] = json.dumps([a.name for a in axes])
    if "status" in res:
        res["status"].attrs["long_name"] = (
            "point status: 0 every patient solved; 1-4 solver status of the (first) failed "
            "patient (1 max steps, 2 step-size underflow, 3 non-finite state, 4 singular "
            "matrix); -1 not computed (chunk missing); -2 not a valid scenario")
        res["status"].attrs["units"] = "1"
    return res


def _attrs(base, spec, pop, settings, seed, desc) -> dict:
    from cartsim import __version__
    from cartsim.batch import scenario_yaml as _yaml
    from cartsim.clinical.safety import surrogate_note
    from cartsim.sweep.store import spec_hash

    return {
        "title": f"cartsim sweep {spec.name}",
        "sweep_name": spec.name,
        "method": spec.method,
        "population_n": int(spec.population_n),
        "seed": int(seed),
        "cartsim_version": __version__,
        "model": base.model.name,
        "config": _yaml(base),
        "sweep_spec": yaml.safe_dump(dataclasses.asdict(spec), sort_keys=False),
        "population_spec": "" if pop is None else yaml.safe_dump(dataclasses.asdict(pop),
                                                                 sort_keys=False),
        "endpoint_settings": yaml.safe_dump(settings.to_dict(), sort_keys=False),
        "spec_hash": spec_hash(desc),
        "surrogate_note": surrogate_note(settings),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "conventions": "CF-1.8 style units and long_name on every variable; status -1: "
                       "missing, -2: invalid scenario, > 0: solver failure",
    }


def default_chunk_dir(spec: SweepSpec, output_dir) -> Path:
    """``spec.resume_dir`` if set, else ``<output_dir>/sweep_chunks``."""
    if spec.resume_dir:
        return Path(spec.resume_dir).expanduser()
    return Path(output_dir) / "sweep_chunks"
