"""The batch and Dataset code every engine shares: scenarios in, a self-describing Dataset out.

* :func:`as_batch` - one scenario, a dict/DictConfig or a sequence of them as a validated
  list that can run as one compiled batch (same model, solver and output grid);
* :func:`to_dataset` - a solved batch (states ``y[patient, time, state]``, status, solver
  statistics, rule days) as the ``xarray.Dataset`` of :func:`cartsim.simulate`, with units,
  long names, CF attributes and the run's config and seed;
* :func:`patient_overrides`, :func:`scenario_yaml` - the provenance written into it.

The ODE front door (:mod:`cartsim.simulation`) and the stochastic engines
(:mod:`cartsim.stochastic.engine`) both assemble their results here, so every state,
observable and :func:`cartsim.endpoints` works the same on either.
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
from cartsim.models.base import Model, Problem
from cartsim.scenario import Scenario

__all__ = ["STATUS_DESCRIPTION", "as_batch", "patient_overrides", "scenario_yaml",
           "to_dataset"]


def _as_scenario(obj) -> Scenario:
    if isinstance(obj, Scenario):
        return obj
    from cartsim.structured import to_scenario  # OmegaConf only when given such objects

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
        "config": scenario_yaml(scenarios[0]),
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


def scenario_yaml(scenario: Scenario) -> str:
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
