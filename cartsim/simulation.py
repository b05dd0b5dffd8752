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
import datetime as _dt
import json
from collections.abc import Sequence

import numpy as np
import xarray as xr
import yaml

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


def _as_scenario(obj) -> Scenario:
    if isinstance(obj, Scenario):
        return obj
    from cartsim.config import to_scenario  # Hydra/OmegaConf only when given such objects

    return to_scenario(obj)


def as_batch(scenarios, caller: str, shared=("model.name", "solver", "output")) -> list:
    """Scenarios (one, or a sequence) as a validated list that can run as one batch.

    Every scenario must agree with the first in the ``shared`` parts (a batch shares
    them); the error names the scenario and the part.
    """
    if isinstance(scenarios, Sequence) and not isinstance(scenarios, (str, bytes)):
        scs = [_as_scenario(s) for s in scenarios]
    else:
        scs = [_as_scenario(scenarios)]
    if not scs:
        raise ValueError(f"{caller} needs at least one scenario")
    parts = {"model.name": lambda s: s.model.name, "solver": lambda s: s.solver,
             "output": lambda s: s.output}
    first = scs[0]
    for i, s in enumerate(scs[1:], start=1):
        for part in shared:
            if parts[part](s) != parts[part](first):
                raise ValueError(f"scenario {i} differs from scenario 0 in '{part}'; a batch "
                                 f"shares the {', '.join(shared)} settings")
    return scs


def simulate(scenarios, *, method: str | None = None,
             variables: Sequence[str] | None = None) -> xr.Dataset:
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

    Returns
    -------
    xarray.Dataset
        Dims ``patient`` x ``time`` (the output grid). See the README for the variables.
        When the output grid is not the daily endpoint grid, also ``endpoint_<name>`` for
        the :data:`ENDPOINT_VARIABLES` over dim ``endpoint_time`` (module notes), so that
        ``cartsim.endpoints`` of the result does not depend on ``output.dt``.
    """
    batch = prepare(scenarios, method=method)
    return finish(batch, solve_prepared(batch), variables=variables)


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
    scs = as_batch(scenarios, "simulate()")
    first = scs[0]
    model = get_model(first.model.name)
    problems = [model.build(s) for s in scs]
    t_eval = output_times(first)
    solver = first.solver
    meth = method or solver.method
    if meth == "auto":
        meth = model.default_method
    opts = dict(method=meth, rtol=solver.rtol, atol=model.atol * solver.atol_scale,
                max_steps=solver.max_steps)
    _plan_hsct(model, scs, problems, opts)
    return PreparedBatch(model, scs, problems, t_eval, meth, opts, endpoint_times(first))


def solve_prepared(batch: PreparedBatch):
    """The compiled, parallel solve of a prepared batch (a ``BatchResult``)."""
    return solve_problems(batch.model, batch.problems, batch.t_record, **batch.opts)


def finish(batch: PreparedBatch, result, *, variables: Sequence[str] | None = None
           ) -> xr.Dataset:
    """The Dataset of a solved batch (``variables``: see :func:`simulate`), on the output
    grid, with the endpoint grid's observables when the grids differ (module notes)."""
    t_ep = batch.t_eval if batch.t_endpoint is None else batch.t_endpoint
    ds = to_dataset(batch.model, batch.problems, batch.t_record, result, batch.scenarios,
                    method=batch.method, variables=variables, optional=ENDPOINT_VARIABLES)
    return cf_conventions(on_output_grid(ds, batch.t_eval, t_ep, variables))


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
                   rtol: float, atol: np.ndarray, max_steps: int):
    """Integrate built problems as one compiled batch (``cartsim.solvers.solve_batch``).

    Event and rule row lists go to ``solve_batch`` as they are (validated column-wise
    there, without one table object per patient).
    """
    from cartsim.solvers.api import solve_batch

    y0 = np.stack([pr.y0 for pr in problems])
    p = np.stack([pr.p for pr in problems])
    t0 = min(pr.t0 for pr in problems)
    events = [pr.events for pr in problems]
    rules = [pr.rules for pr in problems]
    return solve_batch(model.model_id, y0, p, t_eval, t0, float(t_eval[-1]), events, rules,
                       model.log_mask, method, rtol, atol, max_steps=max_steps)


STATUS_DESCRIPTION = "solver status: 0 success, 1 max steps, 2 step-size underflow, " \
                     "3 non-finite state, 4 singular matrix"


def to_dataset(model: Model, problems: list[Problem], t_eval: np.ndarray, result,
               scenarios: list[Scenario], *, method: str,
               variables: Sequence[str] | None = None, optional: Sequence[str] = ()
               ) -> xr.Dataset:
    """Assemble the self-describing Dataset from a batch result on its times ``t_eval``
    (``variables``: see :func:`simulate`; ``optional``: more to keep where the model has
    them)."""
    from cartsim import __version__
    from cartsim.solvers.api import STATUS_NAMES

    n_pat = len(problems)
    y_lin = model.to_linear(result.y)  # (patient, time, state)
    p = np.stack([pr.p for pr in problems])
    info_keys = [k for k, v in problems[0].info.items() if np.isscalar(v)]
    info = {k: np.array([pr.info[k] for pr in problems]) for k in info_keys}
    dims = ("patient", "time")
    observables = model.observables(y_lin, p, info)
    keep = None
    if variables is not None:
        keep = set(variables)
        unknown = keep - set(model.state_names) - set(observables)
        if unknown:
            raise ValueError(f"variables: unknown {sorted(unknown)}; the model {model.name!r} "
                             f"has the states {list(model.state_names)} and the observables "
                             f"{list(observables)}")
        keep |= set(optional)
    data_vars = {}
    for i, st in enumerate(model.states):
        if keep is None or st.name in keep:
            data_vars[st.name] = (dims, y_lin[..., i],
                                  {"units": st.units, "long_name": st.long_name})
    for name, obs in observables.items():
        if keep is None or name in keep:
            data_vars[name] = (dims, np.asarray(obs.data, dtype=np.float64),
                               {"units": obs.units, "long_name": obs.long_name})
    status = np.asarray(result.status, dtype=np.int64)
    data_vars["status"] = (("patient",), status, {"long_name": STATUS_DESCRIPTION,
                                                  "units": "1"})
    data_vars["status_name"] = (("patient",), np.array([STATUS_NAMES[int(s)] for s in status]),
                                {"long_name": "solver status"})
    stats = np.asarray(result.stats)
    for j, (nm, long_name) in enumerate((("n_steps", "accepted solver steps"),
                                         ("n_rejected", "rejected solver steps"),
                                         ("n_rhs", "right-hand-side evaluations"),
                                         ("n_jac", "Jacobian evaluations"))):
        data_vars[nm] = (("patient",), stats[:, j], {"long_name": long_name, "units": "1"})
    if "hsct_day" in info:
        data_vars["hsct_day"] = (("patient",), info["hsct_day"].astype(float), {
            "units": "day", "long_name": "day of consolidative allogeneic HSCT (NaN: none)"})
    rule_names = problems[0].info.get("rule_names", [])
    rt = np.asarray(result.rule_time)
    for j, nm in enumerate(rule_names):
        data_vars[f"{nm}_rule_day"] = (("patient",), rt[:, j], {
            "units": "day", "long_name": f"day the {nm} rule fired (NaN: never)"})
    coords = {
        "time": ("time", t_eval, {"units": "day", "long_name": "days since CAR-T infusion"}),
        "patient": ("patient", np.arange(n_pat), {"long_name": "patient index"}),
    }
    attrs = {
        "title": "cartsim simulation",
        "model": model.name,
        "cartsim_version": __version__,
        "solver_method": method,
        "seed": int(scenarios[0].seed),
        "config": _yaml(scenarios[0]),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "note": "states reported after any dose event at the same time (right-continuous)",
    }
    if n_pat > 1 and variables is None:
        attrs["patient_overrides"] = patient_overrides(scenarios)
    return cf_conventions(xr.Dataset(data_vars, coords=coords, attrs=attrs),
                          flags={"status": STATUS_NAMES})


def _plain(obj):
    """Convert numpy scalars/arrays inside a nested structure to plain Python for YAML."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _yaml(scenario: Scenario) -> str:
    """The resolved scenario as YAML (the run's full configuration)."""
    return yaml.safe_dump(_plain(dataclasses.asdict(scenario)), sort_keys=False)


def patient_overrides(scenarios: list[Scenario]) -> str:
    """JSON list, one dict per patient, of the dotted keys where it differs from patient 0.

    Patient ``i``'s scenario is the ``config`` attribute with ``patient_overrides[i]``
    applied (the same dotted keys as command-line overrides). JSON, not YAML: a
    10,000-patient batch serialises in milliseconds. Sub-configs shared with patient 0
    (the same object, as ``dataclasses.replace`` leaves them) are skipped unread.
    """
    base = scenarios[0]
    diffs = []
    for s in scenarios:
        out: dict = {}
        _diff(base, s, "", out)
        diffs.append(out)
    return json.dumps(diffs)


def _diff(base, other, prefix: str, out: dict) -> None:
    """Dotted keys of ``other`` whose value differs from ``base``: the leaves of
    ``dataclasses.asdict`` (nested dicts flattened to dotted keys) that differ."""
    if base is other:
        return
    if dataclasses.is_dataclass(other) and not isinstance(other, type):
        if type(base) is type(other):
            for f in dataclasses.fields(other):
                _diff(getattr(base, f.name), getattr(other, f.name), f"{prefix}{f.name}.", out)
            return
        other = _plain(dataclasses.asdict(other))
    if isinstance(other, dict) and other:
        if dataclasses.is_dataclass(base) and not isinstance(base, type):
            base = _plain(dataclasses.asdict(base))
        if not isinstance(base, dict):
            base = {}
        for k, v in other.items():
            _diff(base.get(k, _MISSING), v, f"{prefix}{k}.", out)
        return
    value = _leaf(other)
    if base is _MISSING or _leaf(base) != value:
        out[prefix[:-1]] = value


def _leaf(v):
    """A config leaf as plain Python (dataclasses inside lists become dicts)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _plain(dataclasses.asdict(v))
    if isinstance(v, (list, tuple)):
        return [_leaf(x) for x in v]
    return _plain(v)


_MISSING = object()
