"""Simulate scenarios: scenario(s) -> model problems -> compiled batch solve -> xarray Dataset.

:func:`simulate` is the one entry point. It takes one :class:`~cartsim.scenario.Scenario`
(or a Hydra config / dict that converts to one), or a list of scenarios sharing a
model and an output grid, and returns a self-describing ``xarray.Dataset`` with
dims ``patient`` and ``time`` (days since CAR-T infusion): one variable per
state and per observable, each with ``units`` and ``long_name``; the solver
status per patient; the resolved config, seed, model and package version in
the attributes. A failed solve is data (NaN from the failure on, plus its
status), never an exception.

Two time grids. The *output grid* (``output.t_start/t_end/dt`` or ``output.times``) is
what the Dataset stores. The *endpoint grid* (:func:`endpoint_times`: every
:data:`ENDPOINT_STEP_DAYS` = 1 day from the first to the last output time, the daily
assessments the clinical endpoints are defined on) is what the endpoints read, whatever
the output grid: the engines record the union of both grids, and when the output grid is
not the endpoint grid itself the Dataset also carries the observables the endpoints read
(:data:`ENDPOINT_VARIABLES`) on the endpoint grid, as ``endpoint_<name>`` over the dim
``endpoint_time`` (:func:`on_endpoint_grid` gives them back under their own names). So
``output.dt`` changes only what is stored: an ODE solution does not depend on the output
times (dense output between the solver's own steps), hence the endpoints of ``dt=30`` and
``dt=0.1`` are those of the default ``dt=1`` exactly. At the default settings the two grids
coincide and nothing is added.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import xarray as xr

from cartsim.batch import STATUS_DESCRIPTION as STATUS_DESCRIPTION  # re-exported
from cartsim.batch import _plain as _plain
from cartsim.batch import as_batch as as_batch
from cartsim.batch import patient_overrides as patient_overrides
from cartsim.batch import scenario_yaml as scenario_yaml
from cartsim.batch import to_dataset as to_dataset
from cartsim.cf import cf_conventions
from cartsim.grid import ENDPOINT_STEP_DAYS as ENDPOINT_STEP_DAYS  # re-exported
from cartsim.grid import ENDPOINT_VARIABLES as ENDPOINT_VARIABLES
from cartsim.grid import endpoint_times as endpoint_times
from cartsim.grid import on_endpoint_grid as on_endpoint_grid
from cartsim.grid import on_output_grid as on_output_grid
from cartsim.grid import output_times as output_times
from cartsim.grid import record_times as record_times
from cartsim.models import get_model
from cartsim.models.base import Model, Problem
from cartsim.scenario import Scenario

_yaml = scenario_yaml  # the name sweeps and fits used before cartsim.batch


def simulate(scenarios, *, method: str | None = None,
             variables: Sequence[str] | None = None,
             state_dtype: str = "float64") -> xr.Dataset:
    """Simulate one scenario or a batch of scenarios (one ``patient`` each).

    Parameters
    ----------
    scenarios : Scenario, DictConfig, dict, or a sequence of them.
        All scenarios of a batch must use the same model and output grid and
        the same solver settings (they are integrated as one compiled,
        parallel batch).
    method : overrides ``scenario.solver.method`` (``rodas4``, ``dp5``, ``bdf`` or
        ``dp5_bdf``).
    variables : the (patient, time) variables to keep, states or observables; ``None``
        keeps all. Per-patient variables (``status``, solver statistics, rule days) are
        always kept. A lean result for callers that reduce it at once (a sweep keeping
        endpoints only): it does not record ``patient_overrides`` either.
    state_dtype : ``"float64"`` (default) or ``"float32"``, opt-in: the states stored as
        float32, half the memory of the result's largest part (25 states x 371 days x
        10,000 patients: 742 MB in float64, 371 MB in float32), a large batch's peak
        included (solved block by block, each block rounded once). Rounding to float32
        changes a state by at most 6e-8 of its value (2**-24), 17x below the solver's
        default ``rtol`` of 1e-6; the observables are computed in float64 from the rounded
        states (float64 variables). Values are no longer those of the float64 run bit for
        bit, so an endpoint on a threshold (a response, a rule) can flip where a patient
        sits within that rounding of it.

    Returns
    -------
    xarray.Dataset
        Dims ``patient`` x ``time`` (the output grid). See the README for the variables.
        When the output grid is not the daily endpoint grid, also ``endpoint_<name>`` for
        the :data:`ENDPOINT_VARIABLES` over dim ``endpoint_time`` (module notes), so that
        ``cartsim.endpoints`` of the result does not depend on ``output.dt``.
    """
    from cartsim.batch import state_dtype_of

    dtype = state_dtype_of(state_dtype)
    scs = as_batch(scenarios, "simulate()")
    if len(scs) > PIPELINE_CHUNK and not _has_hsct(scs):
        return _simulate_pipelined(scs, method, variables, dtype)
    batch = prepare(scs, method=method)
    return finish(batch, solve_prepared(batch), variables=variables, state_dtype=dtype.name)


PIPELINE_CHUNK = 500
"""Patients in the first block of :func:`simulate`'s pipeline (:func:`_simulate_pipelined`),
small so that the solver starts early; each next block is twice the one before, up to
:data:`PIPELINE_GROWTH` times this (float64 states; float32: every block this size, each
being solved into a float64 block of its own), so that a large batch is solved in a few
parallel loops (each ends on its slower thread)."""

PIPELINE_GROWTH = 4

PIPELINE_AHEAD = 2
"""Blocks of :func:`simulate`'s pipeline built and not yet taken back: the one solving and
the next, built while it solves. A block's problems (3.7 kB a ``cd7`` patient, most of it
the event lists) are dropped once it is solved, so that the next blocks are built in the
memory they held: a 10,000-patient batch holds the problems of two blocks at once, not of
all 10,000 (37 MB), at its peak."""


def _blocks(n: int, first: int, largest: int) -> dict[int, int]:
    """``{start: end}`` of the pipeline's blocks of ``n`` patients (:data:`PIPELINE_CHUNK`)."""
    out, start, size = {}, 0, first
    while start < n:
        out[start] = min(n, start + size)
        start, size = out[start], min(2 * size, largest)
    return out


@dataclasses.dataclass
class PreparedBatch:
    """Scenarios built into solver problems, ready for ``solve_prepared`` (see ``prepare``)."""

    model: Model
    scenarios: list[Scenario]
    problems: list[Problem]
    t_eval: np.ndarray
    method: str
    opts: dict
    t_endpoint: np.ndarray | None = None  # the endpoint grid (None: the output grid)

    @property
    def t_record(self) -> np.ndarray:
        """The times the solver writes: output and endpoint grids together."""
        return self.t_eval if self.t_endpoint is None else record_times(self.t_eval,
                                                                          self.t_endpoint)


def prepare(scenarios, *, method: str | None = None) -> PreparedBatch:
    """The Python half of :func:`simulate` before the compiled solve: validate, build.

    ``simulate(s) == finish(b, solve_prepared(b))`` with ``b = prepare(s)``. The three
    steps let a caller (the sweep) build the next batch and reduce the previous one
    while the compiled solver, which releases the GIL, runs in another thread.
    """
    batch = _unbuilt(as_batch(scenarios, "simulate()"), method)
    batch.problems.extend(batch.model.build(s) for s in batch.scenarios)
    _plan_hsct(batch.model, batch.scenarios, batch.problems, batch.opts)
    return batch


def _unbuilt(scs: list[Scenario], method: str | None) -> PreparedBatch:
    """The batch of validated scenarios ``scs`` with its model, grids and solver options,
    before any problem is built (``problems`` empty)."""
    first = scs[0]
    model = get_model(first.model.name)
    solver = first.solver
    meth = method or solver.method
    if meth == "auto":
        meth = model.default_method
    opts = dict(method=meth, rtol=solver.rtol, atol=model.atol * solver.atol_scale,
                max_steps=solver.max_steps)
    return PreparedBatch(model, scs, [], output_times(first), meth, opts, endpoint_times(first))


def solve_prepared(batch: PreparedBatch):
    """The compiled, parallel solve of a prepared batch (a ``BatchResult``)."""
    return solve_problems(batch.model, batch.problems, batch.t_record, **batch.opts)


def finish(batch: PreparedBatch, result, *, variables: Sequence[str] | None = None,
           problems=None, **assembly) -> xr.Dataset:
    """The Dataset of a solved batch (``variables``: see :func:`simulate`), on the output
    grid, with the endpoint grid's observables when the grids differ (module notes).

    The Dataset is built on ``result.y`` itself (``to_dataset(copy=False)``): the result
    is consumed, its ``y`` left read-only (its log states exponentiated as the Dataset is
    read, or in place first: see :func:`cartsim.batch.to_dataset`). ``assembly``: the
    ``linear``, ``overrides`` and ``state_dtype`` of :func:`cartsim.batch.to_dataset`.
    ``problems``: the :class:`~cartsim.batch.ProblemArrays` of the batch's problems where
    the caller kept those only (None: ``batch.problems``)."""
    t_ep = batch.t_eval if batch.t_endpoint is None else batch.t_endpoint
    ds = to_dataset(batch.model, batch.problems if problems is None else problems,
                    batch.t_record, result, batch.scenarios,
                    method=batch.method, variables=variables, optional=ENDPOINT_VARIABLES,
                    copy=False, **assembly)
    out = on_output_grid(ds, batch.t_eval, t_ep, variables)
    return out if out is ds else cf_conventions(out)  # to_dataset's is CF already


def _has_hsct(scs: list[Scenario]) -> bool:
    return any(s.regimen.hsct_day is not None for s in scs)


def _simulate_pipelined(scs: list[Scenario], method: str | None,
                        variables: Sequence[str] | None, dtype: np.dtype) -> xr.Dataset:
    """:func:`simulate` of a large batch as a pipeline, with the same Dataset bitwise.

    The scenarios are built block by block (:data:`PIPELINE_CHUNK`); each is solved, in
    one worker thread (the compiled solver releases the GIL, on Numba's threads as many
    as the caller's ``numba.get_num_threads()``), while this thread builds the next block
    (:data:`PIPELINE_AHEAD`) and writes ``patient_overrides``. In float64 a block is solved
    into its rows of the Dataset's state buffer (its log states exponentiated when the
    Dataset is read); in float32 into a block of its own, taken linear
    (``exp_log_states``), rounded into the buffer and freed. A block's problems are dropped
    once it is solved. Patients are independent in the solver, so a block's rows are those
    of the whole batch's solve, which starts at the earliest start of any problem: a block
    solved before an earlier start was built (a later patient with earlier events) is
    built and solved again from it. A batch with transplants (``regimen.hsct_day``,
    planned on the whole batch) is not pipelined; nor is a failing block: the whole batch
    is then run as :func:`prepare` and :func:`solve_prepared` would, which raises the same
    error.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from cartsim.batch import ProblemArrays, exp_log_states
    from cartsim.solvers.api import BatchResult

    batch = _unbuilt(scs, method)
    model, n = batch.model, len(scs)
    t_record = batch.t_record
    y = np.empty((n, t_record.size, len(model.states)), dtype)
    in_place = dtype == np.float64  # solved into y itself
    ends = _blocks(n, PIPELINE_CHUNK, PIPELINE_CHUNK * (PIPELINE_GROWTH if in_place else 1))
    t0 = [np.inf]  # the batch's start: the earliest of the problems built so far
    threads = numba.get_num_threads()  # thread-local in Numba: the worker takes the caller's
    built: dict[int, list] = {}  # block start -> its problems, until the block is solved
    kept: dict[int, ProblemArrays] = {}  # block start -> what the Dataset keeps of them
    parts: dict[int, tuple] = {}  # block start -> (t0 it was solved from, status, stats, rules)

    def build(a: int) -> list:
        return [model.build(s) for s in scs[a:ends[a]]]

    def solve(a: int):
        numba.set_num_threads(threads)
        t_start = t0[0]
        return a, t_start, solve_problems(model, built[a], t_record, t0=t_start,
                                          y_out=y[a:ends[a]] if in_place else None,
                                          **batch.opts)

    def solved(a: int, t_start: float, res) -> None:
        """The block's states into ``y``, linear where the model allows (this thread); its
        problems dropped (built again if it must be solved again)."""
        if not in_place:  # float32: rounded once from the linear float64 states
            y[a:ends[a]] = res.y if exp_log_states(model, res.y) else model.to_linear(res.y)
        parts[a] = (t_start, res.status, res.stats, res.rule_time)
        del built[a]

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartsim-solve")
    try:
        pending = deque()
        for a in ends:
            while len(pending) >= PIPELINE_AHEAD or (pending and pending[0].done()):
                solved(*pending.popleft().result())
            built[a] = build(a)
            kept[a] = ProblemArrays.of(built[a])
            t0[0] = min(t0[0], min(pr.t0 for pr in built[a]))
            pending.append(executor.submit(solve, a))
        overrides = patient_overrides(scs) if variables is None else None
        while pending:
            solved(*pending.popleft().result())
        for a, part in list(parts.items()):
            if part[0] != t0[0]:
                built[a] = build(a)
                solved(*solve(a))
    except ValueError:
        executor.shutdown(cancel_futures=True)
        batch = prepare(scs, method=method)  # the error of the unpipelined run, if any
        return finish(batch, solve_prepared(batch), variables=variables,
                      state_dtype=dtype.name)
    finally:
        executor.shutdown(cancel_futures=True)
    order = sorted(parts)
    width = max(parts[a][3].shape[1] for a in order)
    rule_time = np.full((n, width), np.nan)
    for a in order:
        rule_time[a:ends[a], :parts[a][3].shape[1]] = parts[a][3]
    result = BatchResult(y=y, status=np.concatenate([parts[a][1] for a in order]),
                         stats=np.concatenate([parts[a][2] for a in order]),
                         rule_time=rule_time)
    return finish(batch, result, variables=variables, linear=not in_place, overrides=overrides,
                  state_dtype=dtype.name, problems=ProblemArrays.concat([kept[a] for a in order]))


def _plan_hsct(model: Model, scs: list[Scenario], problems: list[Problem], opts: dict) -> None:
    """Add transplant events for patients who meet their HSCT criterion on ``hsct_day``.

    The decision needs the simulated marrow on that day, so patients with an HSCT day
    are first integrated up to it (one batch per distinct day and criterion, output at
    that day only); the eligible ones get the transplant events of ``model.add_hsct``.
    """
    groups: dict[tuple[float, str], list[int]] = {}
    for i, s in enumerate(scs):
        if s.regimen.hsct_day is not None:
            groups.setdefault((float(s.regimen.hsct_day), s.regimen.hsct_criterion), []).append(i)
    if not groups:
        return
    if not getattr(model, "supports_hsct", False):
        raise ValueError(f"regimen.hsct_day is set but model {model.name!r} has no transplant "
                         f"model; use model=cd7")
    for (day, criterion), idx in groups.items():
        pre = solve_problems(model, [problems[i] for i in idx], np.array([day]), **opts)
        y = model.to_linear(np.asarray(pre.y)[:, 0, :])
        p = np.stack([problems[i].p for i in idx])
        ok = model.hsct_eligible(y, p, criterion) & (np.asarray(pre.status) == 0)
        for i, eligible in zip(idx, ok):
            if eligible:
                model.add_hsct(problems[i], day, scs[i].patient.weight_kg)


def solve_problems(model: Model, problems: list[Problem], t_eval: np.ndarray, *, method: str,
                   rtol: float, atol: np.ndarray, max_steps: int, t0: float | None = None,
                   y_out: np.ndarray | None = None):
    """Integrate built problems as one compiled batch (``cartsim.solvers.solve_batch``),
    from ``t0`` (None: the earliest ``problem.t0``), the states written into ``y_out``
    where given (see ``solve_batch``).

    Event and rule row lists go to ``solve_batch`` as they are (validated column-wise
    there, without one table object per patient).
    """
    from cartsim.solvers.api import solve_batch

    y0 = np.stack([pr.y0 for pr in problems])
    p = np.stack([pr.p for pr in problems])
    if t0 is None:
        t0 = min(pr.t0 for pr in problems)
    events = [pr.events for pr in problems]
    rules = [pr.rules for pr in problems]
    return solve_batch(model.model_id, y0, p, t_eval, t0, float(t_eval[-1]), events, rules,
                       model.log_mask, method, rtol, atol, max_steps=max_steps, y_out=y_out)


