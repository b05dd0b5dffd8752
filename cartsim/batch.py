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
import functools
import inspect
import json
from collections.abc import Sequence

import numpy as np
import xarray as xr
import yaml
from xarray.backends import BackendArray
from xarray.core import indexing

from cartsim.cf import cf_conventions
from cartsim.codes import STATUS_DESCRIPTION, STATUS_NAMES
from cartsim.models.base import Model, Problem
from cartsim.scenario import Scenario

__all__ = ["STATE_DTYPES", "STATUS_DESCRIPTION", "LazyObservable", "ProblemArrays", "as_batch",
           "exp_log_states",
           "patient_overrides", "scenario_yaml", "state_dtype_of", "to_dataset"]


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


@dataclasses.dataclass(frozen=True)
class ProblemArrays:
    """What a Dataset keeps of a batch's problems: the parameter vectors ``p[patient, n_p]``,
    the scalar ``info`` entries as one array per key (``{key: array[patient]}``) and the
    rule names (those of the first problem). A caller that solves a large batch block by
    block keeps these and drops the problems (their event lists are most of their memory:
    about 3.7 kB a ``cd7`` patient)."""

    p: np.ndarray
    info: dict[str, np.ndarray]
    rule_names: list

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> ProblemArrays:
        keys = [k for k, v in problems[0].info.items() if np.isscalar(v)]
        return cls(np.stack([pr.p for pr in problems]),
                   {k: np.array([pr.info[k] for pr in problems]) for k in keys},
                   problems[0].info.get("rule_names", []))

    @classmethod
    def concat(cls, parts: Sequence[ProblemArrays]) -> ProblemArrays:
        """The arrays of consecutive blocks of one batch as those of the whole batch."""
        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([a.p for a in parts]),
                   {k: np.concatenate([a.info[k] for a in parts]) for k in parts[0].info},
                   parts[0].rule_names)


def to_dataset(model: Model, problems: list[Problem] | ProblemArrays, t_eval: np.ndarray,
               result, scenarios: list[Scenario], *, method: str,
               variables: Sequence[str] | None = None, optional: Sequence[str] = (),
               copy: bool = True, linear: bool = False,
               overrides: str | None = None, state_dtype: str = "float64") -> xr.Dataset:
    """Assemble the self-describing Dataset from a batch result on its times ``t_eval``
    (``variables``: see :func:`simulate`; ``optional``: more to keep where the model has
    them, and the observables computed together when one of them is first read whole).

    Nothing is copied or computed ahead: the Dataset holds one state buffer, read-only (the
    solver's ``y[patient, time, state]`` itself, float64: its log states are exponentiated
    as they are read, :data:`CHUNK` patients at a time, with the values of
    :func:`exp_log_states` on the whole buffer bitwise), and with ``variables=None`` every
    (patient, time) variable is lazy: a state (:class:`LazyState`) is copied out of the
    buffer (linear) when read, an observable
    (:class:`LazyObservable`) computed when read, on the patients asked for, with the
    values an eager computation gives, and kept. Assigning to a variable copies it first
    (the buffer never changes). With ``variables`` the kept observables are computed at
    once and the kept states copied out, so that the result does not hold the others.
    ``copy=False`` builds on
    ``result.y`` itself (what :func:`cartsim.simulate` does with a result nobody else
    sees): it is then read-only (with ``variables``, or float32 states, or a model with
    its own ``to_linear``: exponentiated in place first). ``linear=True``: ``result.y``
    holds the linear states already (:func:`exp_log_states` applied to it, as
    :func:`cartsim.simulate` does to float32 states block by block while the rest of a batch
    solves); it is built on as it is (``copy`` is then ignored). ``overrides``: ``patient_overrides(
    scenarios)`` when the caller computed it already. ``state_dtype``: see
    :func:`cartsim.simulate` (``"float32"``: the linear states rounded to float32 once, the
    observables computed in float64 from them). ``problems``: the batch's problems, or the
    :class:`ProblemArrays` of them (all the Dataset reads of them).
    """
    from cartsim import __version__

    kept = problems if isinstance(problems, ProblemArrays) else ProblemArrays.of(problems)
    n_pat = kept.p.shape[0]
    dtype = state_dtype_of(state_dtype)
    runs: list = []  # the runs of log states the buffer holds in solver coordinates
    if linear:
        y_lin = np.asarray(result.y)
        if y_lin.dtype != dtype:
            y_lin = y_lin.astype(dtype)
        y_lin.flags.writeable = False
    elif variables is None and dtype == np.float64 and _linear_in_place(model):
        y_lin = _consumed(result.y, copy=copy)  # exponentiated when read (_Source)
        y_lin.flags.writeable = False
        runs = _log_runs(model)
    else:
        y_lin = _linear(model, result.y, copy=copy)  # (patient, time, state), read-only
        if dtype != y_lin.dtype:
            y_lin = y_lin.astype(dtype)
            y_lin.flags.writeable = False
    p, info = kept.p, kept.info
    dims = ("patient", "time")
    observables = _observable_attrs(model, _exp_runs(y_lin[:1, :1], runs), p, info)
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
    if keep is None:
        source = _Source(model, y_lin, p, info, [n for n in optional if n in observables
                                                 or n in model.state_names], runs)
    for i, st in enumerate(model.states):
        attrs = {"units": st.units, "long_name": st.long_name}
        if keep is None:
            data_vars[st.name] = xr.Variable(dims, _lazy(LazyState(source, st.name, i)), attrs)
        elif st.name in keep:
            data_vars[st.name] = (dims, y_lin[..., i].copy(), attrs)
    if keep is None:
        for name, attrs in observables.items():
            data_vars[name] = xr.Variable(dims, _lazy(LazyObservable(source, name), cache=True),
                                          attrs)
    else:
        wanted = [name for name in observables if name in keep]
        for name, data in _compute(model, y_lin, p, info, wanted).items():
            data_vars[name] = (dims, data, observables[name])
    status = np.asarray(result.status, dtype=np.int64)
    data_vars["status"] = (("patient",), status, {"long_name": STATUS_DESCRIPTION,
                                                  "units": "1"})
    codes, which = np.unique(status, return_inverse=True)
    data_vars["status_name"] = (("patient",),
                                np.array([STATUS_NAMES[int(c)] for c in codes])[which],
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
    rule_names = kept.rule_names
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
        attrs["patient_overrides"] = (patient_overrides(scenarios) if overrides is None
                                      else overrides)
    return cf_conventions(xr.Dataset(data_vars, coords=coords, attrs=attrs),
                          flags={"status": STATUS_NAMES})


def _consumed(y, *, copy: bool) -> np.ndarray:
    """The solver's states ``y`` as the Dataset's buffer, float64: a copy, or ``y`` itself
    (``copy=False``), which must be writeable (a result is built on once; the caller makes
    it read-only)."""
    out = np.array(y, dtype=np.float64, copy=True) if copy else np.asarray(y, np.float64)
    if not out.flags.writeable:
        raise ValueError("to_dataset(copy=False): the result's states are read-only, "
                         "taken by a Dataset built on them already; pass copy=True "
                         "(or a fresh result)")
    return out


def _linear(model: Model, y, *, copy: bool) -> np.ndarray:
    """Linear states ``(patient, time, state)``, read-only: the exponential of the log
    states taken in place, one contiguous run of log states at a time (the same values as
    ``model.to_linear``); a model with its own ``to_linear`` is asked for it."""
    if not _linear_in_place(model):
        out = np.asarray(model.to_linear(y))
    else:
        out = _consumed(y, copy=copy)
        exp_log_states(model, out)
    out.flags.writeable = False
    return out


STATE_DTYPES = ("float64", "float32")
"""What :func:`cartsim.simulate` can store the states as (``state_dtype``)."""


def state_dtype_of(name) -> np.dtype:
    """``state_dtype`` checked (one of :data:`STATE_DTYPES`) as a NumPy dtype."""
    if str(name) not in STATE_DTYPES:
        raise ValueError(f"state_dtype must be one of {list(STATE_DTYPES)}, got {name!r}")
    return np.dtype(str(name))


def _linear_in_place(model: Model) -> bool:
    """Whether ``model``'s linear states are the exponentials of its log states (the base
    ``Model.to_linear``), which :func:`exp_log_states` takes in place."""
    return isinstance(model, Model) and type(model).to_linear is Model.to_linear


def exp_log_states(model: Model, y: np.ndarray) -> bool:
    """Solver coordinates -> linear states in place in ``y[..., state]`` (float64, writeable;
    any block of patients of a batch's buffer): the exponential of the log states, one
    contiguous run of log states at a time, the values of ``model.to_linear`` bitwise.
    Returns False, leaving ``y`` alone, for a model with its own ``to_linear``."""
    if not _linear_in_place(model):
        return False
    _exp_runs(y, _log_runs(model), out=y)
    return True


def _log_runs(model: Model) -> list[tuple[int, int]]:
    """``[(a, b), ...]``: the contiguous runs ``a:b`` of ``model``'s log states."""
    log = np.concatenate([[False], model.log_mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(log))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _exp_runs(y: np.ndarray, runs: Sequence[tuple[int, int]], out: np.ndarray | None = None):
    """``y[..., state]`` with the exponential taken of the state runs ``runs``, in ``out``
    (C-contiguous float64 of ``y``'s shape, ``y`` itself or a buffer ``y`` is copied into;
    None: a new copy), or ``y`` where there are no runs. Always one ``np.exp`` in place over
    ``[..., a:b]`` of a C-contiguous array of the states of whole patient-times, so that
    every value is computed by the same loop of NumPy's as on the whole buffer."""
    if not runs:
        return y
    if out is None:
        out = np.array(y, dtype=np.float64, order="C")
    elif out is not y:
        out[...] = y
    for a, b in runs:
        block = out[..., a:b]
        np.exp(block, out=block)
    return out


def _observable_attrs(model: Model, y: np.ndarray, p: np.ndarray, info: dict) -> dict:
    """``{name: {"units", "long_name"}}`` of the model's observables, in the model's order,
    read off a one-patient, one-time computation (the metadata without the cost)."""
    with np.errstate(all="ignore"):
        obs = model.observables(y[:1, :1], p[:1], {k: v[:1] for k, v in info.items()})
    return {name: {"units": o.units, "long_name": o.long_name} for name, o in obs.items()}


CHUNK = 64
"""Patients per block when observables are computed: a block's states and temporaries stay
in the CPU caches (the states are strided views of one buffer), and the temporaries of a
whole batch are never held at once."""


def _compute(model: Model, y: np.ndarray, p: np.ndarray, info: dict, names: list,
             rows=slice(None), runs: Sequence[tuple[int, int]] = ()) -> dict[str, np.ndarray]:
    """The variables ``names`` (float64, ``(patient, time)``) of the patients ``rows``,
    states copied out of ``y`` and observables computed, :data:`CHUNK` patients at a time
    (one pass over ``y`` for all of them; ``runs``: the log states ``y`` holds, their
    exponentials taken on each block as it is read). Every observable is elementwise in the
    patient, so the values are those of one computation on the whole batch."""
    rows = np.arange(y.shape[0])[rows]
    state = {n: i for i, n in enumerate(model.state_names) if n in names}
    wanted = [n for n in names if n not in state]
    subset = "names" in inspect.signature(model.observables).parameters
    out = {name: np.empty((rows.size, y.shape[1]), y.dtype if name in state else np.float64)
           for name in names}
    buf = np.empty((min(CHUNK, rows.size), *y.shape[1:])) if runs else None  # reused
    for a in range(0, rows.size, CHUNK):
        r = rows[a:a + CHUNK]
        sel = slice(r[0], r[-1] + 1) if r[-1] - r[0] + 1 == r.size else r  # a run: a view
        ys = _exp_runs(y[sel], runs, None if buf is None else buf[:r.size])
        for name, i in state.items():
            out[name][a:a + r.size] = ys[..., i]
        if not wanted:
            continue
        ys = ys.astype(np.float64, copy=False)  # observables in float64 (float32 states)
        ps, inf = p[sel], {k: v[sel] for k, v in info.items()}
        obs = model.observables(ys, ps, inf, names=wanted) if subset else \
            model.observables(ys, ps, inf)
        for name in wanted:
            out[name][a:a + r.size] = np.asarray(obs[name].data, dtype=np.float64)
    return out


class _Source:
    """What the lazy variables of one Dataset share: the states ``y`` (linear, or with the
    log states ``runs`` in solver coordinates, exponentiated as read), the parameters
    ``p``, the per-patient ``info``, and a ``group`` of variables (states and observables)
    computed together, in one pass over ``y`` and sharing the observables' intermediates,
    on the first whole read of any of them (the ones the clinical endpoints read, which
    read them all); the others wait in ``pending`` until read. Every other read computes
    the one variable asked for."""

    def __init__(self, model: Model, y: np.ndarray, p: np.ndarray, info: dict,
                 group: Sequence[str] = (), runs: Sequence[tuple[int, int]] = ()):
        self.model, self.y, self.p, self.info = model, y, p, info
        self.group, self.pending = list(group), {}
        self.runs = list(runs)  # log states ``y`` holds in solver coordinates

    def state(self, key: tuple, index: int) -> np.ndarray:
        """State ``index`` at ``y[key]`` (basic indices of patient and time), linear, its own
        contiguous copy."""
        if not self.runs:
            return self.y[(*key, index)].copy()
        return _exp_runs(self.y[key], self.runs)[..., index].copy()

    def compute(self, name: str, rows) -> np.ndarray:
        if range(self.y.shape[0])[rows] != range(self.y.shape[0]):
            return _compute(self.model, self.y, self.p, self.info, [name], rows,
                            self.runs)[name]
        if name in self.pending:
            return self.pending.pop(name)
        names = [name]
        if name in self.group:
            names += [g for g in self.group if g != name]
            self.group = []  # once: a later read (a copy's) computes its own only
        out = _compute(self.model, self.y, self.p, self.info, names, runs=self.runs)
        self.pending.update((k, v) for k, v in out.items() if k != name)
        return out[name]


class LazyObservable(BackendArray):
    """One observable ``(patient, time)`` of a Dataset, computed when it is read.

    xarray wraps it as a backend array (lazily indexed, cached in memory once loaded), so
    ``ds[name].values``, ``ds.load()``, ``ds.isel(patient=...)`` and writing a file work
    as on an eager Dataset. A read computes the observable on the patients asked for and
    every time (the leukemia's extinction runs along the whole time axis), then takes the
    times asked for: the values are those of the eager computation on the whole batch, as
    every observable is elementwise in the patient. Reading one of a group (``_Source``)
    whole computes the group. Pickling (a Dataset sent to another process) and deep copies
    carry the computed values.
    """

    __slots__ = ("source", "name", "shape", "dtype")

    def __init__(self, source: _Source, name: str):
        self.source, self.name = source, name
        self.shape = source.y.shape[:2]
        self.dtype = np.dtype(np.float64)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC,
                                                  self._get)

    def _get(self, key: tuple) -> np.ndarray:
        k_pat, k_time = key
        scalar = isinstance(k_pat, (int, np.integer))
        data = self.source.compute(self.name, slice(k_pat, k_pat + 1) if scalar else k_pat)
        data = data[:, k_time]
        return data[0] if scalar else data

    def __reduce__(self):
        return _loaded, (self[indexing.BasicIndexer((slice(None), slice(None)))],)

    def __deepcopy__(self, memo):
        return self  # immutable: its inputs are read-only


class LazyState(BackendArray):
    """One state ``(patient, time)`` of a Dataset: its column of the state buffer
    ``y[patient, time, state]``, copied out contiguous (and linear) when read (the column itself is
    strided: every later pass over it would read the whole buffer). Not cached: a read
    costs one pass over its part of the buffer and holds no memory in the Dataset; the
    first whole read of one of the source's group copies the group's out in one pass."""

    __slots__ = ("source", "name", "index", "shape", "dtype")

    def __init__(self, source: _Source, name: str, index: int):
        self.source, self.name, self.index = source, name, index
        self.shape = source.y.shape[:2]
        self.dtype = source.y.dtype

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC,
                                                  self._get)

    def _get(self, key: tuple) -> np.ndarray:
        k_pat, k_time = key
        n = self.shape[0]
        if isinstance(k_pat, slice) and range(n)[k_pat] == range(n):
            return self.source.compute(self.name, k_pat)[:, k_time]
        return self.source.state((k_pat, k_time), self.index)  # C-contiguous, its own

    def __reduce__(self):
        return _loaded, (self[indexing.BasicIndexer((slice(None), slice(None)))],)

    def __deepcopy__(self, memo):
        return self  # immutable: the buffer is read-only


def _lazy(array: BackendArray, cache: bool = False):
    """``array`` wrapped as xarray wraps a file's variables: lazily indexed, copied on the
    first write (so a Dataset's values can be assigned to, as an eager one's), and kept in
    memory once read where ``cache``."""
    data = indexing.CopyOnWriteArray(indexing.LazilyIndexedArray(array))
    return indexing.MemoryCachedArray(data) if cache else data


def _loaded(values: np.ndarray):
    return indexing.NumpyIndexingAdapter(values)


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
    base, names = scenarios[0], _dataclass_fields(type(scenarios[0]))
    parts = []
    for a in range(0, len(scenarios), 256):  # a block at a time: a large batch's peak
        diffs = []
        for s in scenarios[a:a + 256]:
            out: dict = {}
            if names is not None and type(s) is type(base):  # no _equal of the whole
                _diff_fields(base, s, names, "", out)
            else:
                _diff(base, s, "", out)
            diffs.append(out)
        parts.append(json.dumps(diffs)[1:-1])
    return f"[{', '.join(parts)}]"  # json.dumps(every patient's dict), character for character


def _diff(base, other, prefix: str, out: dict) -> None:
    """Dotted keys of ``other`` whose value differs from ``base``: the leaves of
    ``dataclasses.asdict`` (nested dicts flattened to dotted keys) that differ."""
    if base is other:
        return
    if type(other) in _SCALARS and type(base) in _SCALARS:  # a plain leaf: compare as it is
        if base != other:
            out[prefix[:-1]] = other
        return
    names = _dataclass_fields(type(other))
    if names is not None:
        if type(base) is type(other):
            if _equal(base, other):  # a sub-config equal to patient 0's: nothing to list
                return
            _diff_fields(base, other, names, prefix, out)
            return
        other = _plain(dataclasses.asdict(other))
    if isinstance(other, dict) and other:
        if dataclasses.is_dataclass(base) and not isinstance(base, type):
            base = _plain(dataclasses.asdict(base))
        if not isinstance(base, dict):
            base = {}
        for k, v in other.items():
            _diff_item(base.get(k, _MISSING), v, prefix, k, out)
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


def _diff_fields(base, other, names: tuple, prefix: str, out: dict) -> None:
    """:func:`_diff` of the fields ``names`` of two dataclasses of one type, a plain leaf
    compared here (most are)."""
    for name in names:
        b, o = getattr(base, name), getattr(other, name)
        if b is o:
            continue
        if type(o) in _SCALARS and type(b) in _SCALARS:
            if b != o:
                out[prefix + name] = o
        else:
            _diff(b, o, f"{prefix}{name}.", out)


def _diff_item(base, other, prefix: str, key, out: dict) -> None:
    """:func:`_diff` of one field or dict item, a plain leaf compared here (most are)."""
    if base is other:
        return
    if type(other) in _SCALARS and type(base) in _SCALARS:
        if base != other:
            out[f"{prefix}{key}"] = other
        return
    _diff(base, other, f"{prefix}{key}.", out)


@functools.cache
def _dataclass_fields(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type; None for any other type."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def _equal(a, b) -> bool:
    """``a == b`` for two dataclasses of one type: their generated field-by-field comparison,
    much faster than walking the leaves and with the walk's answer (both take a value as
    equal to the same object, so a shared NaN too, and compare the rest with ``==``);
    False where a field cannot be compared so (an array), which the walk then does."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


_MISSING = object()
_SCALARS = frozenset((bool, int, float, str, type(None)))
