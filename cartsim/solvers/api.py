"""Python front end of the compiled solvers: event/rule tables, validation, batch solve.

``solve_batch`` pads the per-patient event and rule tables into rectangular
arrays, checks every shape, dtype and index with a clear ``ValueError``, and
calls the parallel Numba kernel ``cartsim.solvers.driver.integrate_batch``.
Per-patient failures are reported in ``BatchResult.status`` (see
``STATUS_NAMES``), never raised.

Example
-------
>>> from cartsim.models import kernels
>>> ev = EventTable.from_lists(t=[2.0], kind=[SET_PARAM], idx=[0], val=[0.5])
>>> res = solve_batch(kernels.MODEL_TEST_DECAY, y0=[[1.0]], p=[[1.0, 0.0]],
...                   t_eval=np.linspace(0, 4, 5), t0=0.0, t1=4.0, events=ev, rules=None,
...                   log_mask=[False], method="rodas4", rtol=1e-8, atol=1e-10)
>>> res.status.tolist()
[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cartsim.codes import STATUS_NAMES, SUCCESS
from cartsim.solvers.codes import (
    ADD_PARAM,
    ADD_STATE,
    METHOD_BDF,
    METHOD_DP5,
    METHOD_DP5_BDF,
    METHOD_RODAS4,
    MUL_STATE,
    SET_PARAM,
)

METHODS = {"rodas4": METHOD_RODAS4, "dp5": METHOD_DP5, "bdf": METHOD_BDF,
           "dp5_bdf": METHOD_DP5_BDF}
"""Method name -> driver method code."""

KIND_NAMES = {ADD_STATE: "add_state", SET_PARAM: "set_param", ADD_PARAM: "add_param",
              MUL_STATE: "mul_state"}
"""Event/rule action kind -> name."""

__all__ = [
    "ADD_PARAM",
    "ADD_STATE",
    "MUL_STATE",
    "SET_PARAM",
    "BatchResult",
    "EventTable",
    "KIND_NAMES",
    "METHODS",
    "RuleTable",
    "STATUS_NAMES",
    "solve_batch",
]


def _vec(x, dtype, name):
    a = np.atleast_1d(np.array(x, dtype=dtype, copy=True))
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _kinds_ok(kind, name):
    bad = (kind < 0) | (kind > max(KIND_NAMES))  # kinds are 0..3 (np.isin is slow here)
    if bad.any():
        raise ValueError(f"{name} must be in {sorted(KIND_NAMES)} "
                         f"({KIND_NAMES}); got {kind[bad][:5].tolist()}")


def _factors_ok(kind, val, name):
    bad = (kind == MUL_STATE) & ~(val >= 0.0)
    if bad.any():
        raise ValueError(f"{name}: a mul_state factor must be a number >= 0; got "
                         f"{val[bad][:5].tolist()}")


@dataclass
class EventTable:
    """Scheduled events of one patient: at time ``t[i]`` apply action ``kind[i]`` to ``idx[i]``.

    Kinds: ``ADD_STATE`` (0) adds ``val`` to state ``idx`` in linear units (log states
    are handled), ``SET_PARAM`` (1) sets ``p[idx] = val``, ``ADD_PARAM`` (2) adds ``val``
    to ``p[idx]``, ``MUL_STATE`` (3) multiplies state ``idx`` by ``val >= 0`` (linear
    units). Events at the same time are applied in table order. The solver
    requires the table sorted by time; ``from_lists`` and ``merge`` sort stably.
    """

    t: np.ndarray
    kind: np.ndarray
    idx: np.ndarray
    val: np.ndarray

    def __post_init__(self):
        self.t = _vec(self.t, np.float64, "EventTable.t")
        self.kind = _vec(self.kind, np.int64, "EventTable.kind")
        self.idx = _vec(self.idx, np.int64, "EventTable.idx")
        self.val = _vec(self.val, np.float64, "EventTable.val")
        k = self.t.shape[0]
        for name in ("kind", "idx", "val"):
            if getattr(self, name).shape[0] != k:
                raise ValueError(f"EventTable.{name} has length {getattr(self, name).shape[0]}, "
                                 f"EventTable.t has {k}")
        if not np.all(np.isfinite(self.t)):
            raise ValueError("EventTable.t must be finite")
        if np.isnan(self.val).any():
            raise ValueError("EventTable.val must not be NaN")
        _kinds_ok(self.kind, "EventTable.kind")
        _factors_ok(self.kind, self.val, "EventTable.val")
        if (self.idx < 0).any():
            raise ValueError("EventTable.idx must be >= 0")

    def __len__(self):
        return int(self.t.shape[0])

    @classmethod
    def from_lists(cls, t, kind, idx, val) -> EventTable:
        """Build from sequences (scalars broadcast) and sort stably by time."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        kind, idx, val = (np.broadcast_to(np.asarray(a), t.shape) for a in (kind, idx, val))
        return cls(t, kind, idx, val).sorted()

    @classmethod
    def empty(cls) -> EventTable:
        """A table without events."""
        return cls(np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))

    @classmethod
    def merge(cls, *tables: EventTable) -> EventTable:
        """Concatenate tables (in argument order) and sort stably by time."""
        if not tables:
            return cls.empty()
        return cls(np.concatenate([tb.t for tb in tables]),
                   np.concatenate([tb.kind for tb in tables]),
                   np.concatenate([tb.idx for tb in tables]),
                   np.concatenate([tb.val for tb in tables])).sorted()

    def sorted(self) -> EventTable:
        """A copy sorted stably by time (ties keep their order)."""
        o = np.argsort(self.t, kind="stable")
        return EventTable(self.t[o], self.kind[o], self.idx[o], self.val[o])

    def is_sorted(self) -> bool:
        return bool(np.all(np.diff(self.t) >= 0))


@dataclass
class RuleTable:
    """State-triggered rules of one patient.

    Rule ``j`` fires once, the first time state ``idx[j]`` exceeds ``thr[j]`` (linear
    units, also for log states), or at ``t0`` / right after an event if it is already
    above; it then applies action ``kind[j]`` to target ``tgt[j]`` with value ``val[j]``
    (same kinds as ``EventTable``). Firing times are returned in
    ``BatchResult.rule_time``.
    """

    idx: np.ndarray
    thr: np.ndarray
    kind: np.ndarray
    tgt: np.ndarray
    val: np.ndarray

    def __post_init__(self):
        self.idx = _vec(self.idx, np.int64, "RuleTable.idx")
        self.thr = _vec(self.thr, np.float64, "RuleTable.thr")
        self.kind = _vec(self.kind, np.int64, "RuleTable.kind")
        self.tgt = _vec(self.tgt, np.int64, "RuleTable.tgt")
        self.val = _vec(self.val, np.float64, "RuleTable.val")
        r = self.idx.shape[0]
        for name in ("thr", "kind", "tgt", "val"):
            if getattr(self, name).shape[0] != r:
                raise ValueError(f"RuleTable.{name} has length {getattr(self, name).shape[0]}, "
                                 f"RuleTable.idx has {r}")
        if np.isnan(self.thr).any() or np.isnan(self.val).any():
            raise ValueError("RuleTable.thr and RuleTable.val must not be NaN")
        _kinds_ok(self.kind, "RuleTable.kind")
        _factors_ok(self.kind, self.val, "RuleTable.val")
        if (self.idx < 0).any() or (self.tgt < 0).any():
            raise ValueError("RuleTable.idx and RuleTable.tgt must be >= 0")

    def __len__(self):
        return int(self.idx.shape[0])

    @classmethod
    def from_lists(cls, idx, thr, kind, tgt, val) -> RuleTable:
        """Build from sequences (scalars broadcast)."""
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        thr, kind, tgt, val = (np.broadcast_to(np.asarray(a), idx.shape)
                               for a in (thr, kind, tgt, val))
        return cls(idx, thr, kind, tgt, val)

    @classmethod
    def empty(cls) -> RuleTable:
        """A table without rules."""
        e_i = np.empty(0, np.int64)
        return cls(e_i, np.empty(0), e_i, e_i, np.empty(0))


@dataclass
class BatchResult:
    """Results of ``solve_batch``.

    Attributes
    ----------
    y : float64[npat, nt, n]
        States at ``t_eval`` in solver coordinates (log states as ln); NaN outside
        ``[t0, t1]`` and after a failure.
    status : int64[npat]
        Driver status per patient (``STATUS_NAMES``).
    stats : int64[npat, 4]
        Accepted steps, rejected steps, right-hand-side calls, Jacobian evaluations.
    rule_time : float64[npat, rmax]
        Firing time of each rule, NaN if it did not fire (or does not exist).
    """

    y: np.ndarray
    status: np.ndarray
    stats: np.ndarray
    rule_time: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of patients solved successfully."""
        return self.status == SUCCESS

    def status_names(self) -> list[str]:
        """Status name per patient."""
        return [STATUS_NAMES.get(int(s), f"unknown({int(s)})") for s in self.status]


def _per_patient(tables, npat, cls, name):
    if tables is None:
        return [cls.empty()] * npat
    if isinstance(tables, cls):
        return [tables] * npat
    if isinstance(tables, Sequence) and not isinstance(tables, (str, bytes)):
        tables = list(tables)
        if len(tables) != npat:
            raise ValueError(f"{name}: got {len(tables)} tables for {npat} patients")
        for i, tb in enumerate(tables):
            if tb is None:
                tables[i] = cls.empty()
            elif _is_rows(tb):
                tables[i] = cls.from_lists(*zip(*tb)) if len(tb) else cls.empty()
            elif not isinstance(tb, cls):
                raise ValueError(f"{name}[{i}] must be a {cls.__name__} or None, "
                                 f"got {type(tb).__name__}")
        return tables
    raise ValueError(f"{name} must be a {cls.__name__}, a list of them, or None; "
                     f"got {type(tables).__name__}")


_EVENT_DTYPES = (np.float64, np.int64, np.int64, np.float64)  # t, kind, idx, val
_RULE_DTYPES = (np.int64, np.float64, np.int64, np.int64, np.float64)  # idx, thr, kind, tgt, val


def _is_rows(x):
    """A per-patient list of ``(t, kind, idx, val)`` / rule tuples (not a table)."""
    return isinstance(x, (list, tuple))


def _owner(counts, row):
    """Patient of flat row ``row`` given per-patient row ``counts``."""
    return int(np.searchsorted(np.cumsum(counts), row, side="right"))


def _columns(tables, npat, cls, name, dtypes, fields):
    """Per-patient tables (``cls``) or row lists -> (counts[npat], flat columns in patient order).

    Row lists (``[(t, kind, idx, val), ...]`` per patient, as ``Model.build`` makes them) are
    validated here, column-wise, as ``cls`` would validate each table; this is the fast path
    of a large batch.
    """
    if (isinstance(tables, Sequence) and not isinstance(tables, (str, bytes, cls))
            and len(tables) == npat and all(tb is None or _is_rows(tb) for tb in tables)):
        rows = [[] if tb is None else tb for tb in tables]
        counts = np.fromiter((len(r) for r in rows), np.int64, npat)
        flat = [row for r in rows for row in r]
        try:
            arr = np.array(flat, dtype=np.float64).reshape(-1, len(fields))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: every row must be ({', '.join(fields)}) numbers: "
                             f"{exc}") from None
        cols = []
        for j, (dt, f) in enumerate(zip(dtypes, fields)):
            c = arr[:, j]
            if dt is np.int64:
                bad = ~np.isfinite(c) | (c != np.round(c))
                if bad.any():
                    i = _owner(counts, int(np.flatnonzero(bad)[0]))
                    raise ValueError(f"{name}[{i}]: {cls.__name__}.{f} must be integers, got "
                                     f"{c[bad][:5].tolist()}")
                c = c.astype(np.int64)
            cols.append(np.ascontiguousarray(c))
        _validate_columns(cls, counts, cols, name)
        return counts, cols
    tbs = _per_patient(tables, npat, cls, name)
    counts = np.fromiter((len(tb) for tb in tbs), np.int64, npat)
    cols = [np.concatenate([getattr(tb, f) for tb in tbs] + [np.empty(0, dt)]).astype(dt)
            for dt, f in zip(dtypes, fields)]
    return counts, cols


def _validate_columns(cls, counts, cols, name):
    """The checks of ``EventTable`` / ``RuleTable.__post_init__`` on flat columns."""

    def fail(mask, msg):
        if mask.any():
            i = _owner(counts, int(np.flatnonzero(mask)[0]))
            raise ValueError(f"{name}[{i}]: {msg}")

    if cls is EventTable:
        t, kind, idx, val = cols
        fail(~np.isfinite(t), "EventTable.t must be finite")
        fail(np.isnan(val), "EventTable.val must not be NaN")
        fail(idx < 0, "EventTable.idx must be >= 0")
    else:
        idx, thr, kind, tgt, val = cols
        fail(np.isnan(thr) | np.isnan(val), "RuleTable.thr and RuleTable.val must not be NaN")
        fail((idx < 0) | (tgt < 0), "RuleTable.idx and RuleTable.tgt must be >= 0")
    fail((kind < 0) | (kind > max(KIND_NAMES)),
         f"{cls.__name__}.kind must be in {sorted(KIND_NAMES)} ({KIND_NAMES})")
    fail((kind == MUL_STATE) & ~(val >= 0.0),
         f"{cls.__name__}.val: a mul_state factor must be a number >= 0")


def _event_columns(events, npat):
    return _columns(events, npat, EventTable, "events", _EVENT_DTYPES, ("t", "kind", "idx", "val"))


def _rule_columns(rules, npat):
    return _columns(rules, npat, RuleTable, "rules", _RULE_DTYPES,
                    ("idx", "thr", "kind", "tgt", "val"))


def _padded(counts, cols, sort_by=None):
    """Flat columns (patient order) -> 2-D arrays ``(npat, max(1, max count))``, zero padded.

    ``sort_by``: a column to sort each patient's rows by, stably (event times).
    """
    npat = counts.shape[0]
    width = max(int(counts.max(initial=0)), 1)
    pat = np.repeat(np.arange(npat), counts)
    if sort_by is not None and pat.size:
        order = np.lexsort((cols[sort_by], pat))  # stable: ties keep their order
        cols = [c[order] for c in cols]
    pos = np.arange(pat.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out = []
    for c in cols:
        a = np.zeros((npat, width), dtype=c.dtype)
        a[pat, pos] = c
        out.append(a)
    return out


def _check_targets(counts, kind, idx, n, n_p, name, field):
    """``idx`` must be a state (< n) for state actions, a parameter (< n_p) otherwise."""
    lim = np.where((kind == ADD_STATE) | (kind == MUL_STATE), n, n_p)
    bad = idx >= lim
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        i = _owner(counts, j)
        row = j - int(np.sum(counts[:i]))
        raise ValueError(f"{name}[{i}] row {row}: {field} {idx[j]} out of range for kind "
                         f"{KIND_NAMES[int(kind[j])]} (n={n}, n_p={n_p})")


def _as_2d(x, name, npat=None):
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D (shared) or 2-D (npat, ...), got shape {a.shape}")
    if npat is not None and a.shape[0] not in (1, npat):
        raise ValueError(f"{name} has {a.shape[0]} rows, expected 1 or {npat}")
    return a


def _out_buffer(y_out, shape):
    """``y_out`` checked as the solver's output buffer (float64, C-contiguous, writeable)."""
    if not (isinstance(y_out, np.ndarray) and y_out.dtype == np.float64
            and y_out.flags.c_contiguous and y_out.flags.writeable and y_out.shape == shape):
        got = (f"{type(y_out).__name__} {getattr(y_out, 'dtype', '')} "
               f"{getattr(y_out, 'shape', '')}")
        raise ValueError(f"y_out must be a writeable C-contiguous float64 array of shape "
                         f"{shape} (npat, nt, n); got {got}")
    return y_out


def solve_batch(model_id, y0, p, t_eval, t0, t1, events, rules, log_mask,
                method="rodas4", rtol=1e-6, atol=1e-8, max_steps=200_000,
                h0=0.0, hmax=0.0, y_out=None) -> BatchResult:
    """Integrate a batch of patients in parallel with the compiled solver.

    Parameters
    ----------
    model_id : int or str
        Kernel model id (``cartsim.models.kernels``) or its name in ``kernels.MODEL_IDS``.
    y0 : array_like, (npat, n) or (n,)
        Initial states in solver coordinates; a 1-D vector is shared by all patients.
    p : array_like, (npat, n_p) or (n_p,)
        Parameter vectors; a 1-D vector is shared. NaN is rejected.
    t_eval : array_like, (nt,)
        Non-decreasing output times. Rows outside ``[t0, t1]`` come back NaN.
    t0, t1 : float
        Integration interval, ``t1 >= t0``.
    events : EventTable, list (one per patient) of EventTable or of row lists, or None
        Scheduled events; a single table is shared. A patient's events may also be a
        list of ``(t, kind, idx, val)`` rows (as ``Model.build`` makes them; a batch of
        row lists is validated column-wise, without a table per patient). Events are
        sorted stably by time here.
    rules : RuleTable, list of RuleTable or of ``(idx, thr, kind, tgt, val)`` row lists, or None
        State-triggered rules; a single table is shared.
    log_mask : array_like of bool, (n,)
        States held as ln(x) (needed for ``ADD_STATE`` and rule thresholds).
    method : {'rodas4', 'dp5', 'bdf', 'dp5_bdf'}
        Rosenbrock (stiff), Dormand-Prince 5(4) (non-stiff), variable-order BDF/NDF
        (stiff, Jacobian and LU reused across steps), or DP5 switching to BDF where a
        stiffness test finds the problem stiff (each segment between events starts with
        DP5).
    rtol : float
        Relative tolerance (> 0).
    atol : float or array_like (n,)
        Absolute tolerances in solver coordinates (> 0). For a log state ``atol`` is
        a relative tolerance on the linear value.
    max_steps : int
        Maximum attempted steps per patient.
    h0 : float
        Initial step; <= 0 chooses it automatically.
    hmax : float
        Largest step; <= 0 means no limit beyond ``t1 - t0``.
    y_out : float64[npat, nt, n], C-contiguous, optional
        Where the states are written (returned as ``BatchResult.y``): e.g. one block of a
        larger batch's buffer, so that a batch solved in parts is gathered without a copy.
        A new array when None.

    Returns
    -------
    BatchResult

    Notes
    -----
    Outputs are right-continuous at event times (the state after the event).
    The number of threads is Numba's (``numba.set_num_threads``); results do not
    depend on it.
    """
    from cartsim.models import kernels
    from cartsim.solvers.cache import guard_cache
    from cartsim.solvers.driver import integrate_batch

    # --- model and method
    if isinstance(model_id, str):
        if model_id not in kernels.MODEL_IDS:
            raise ValueError(f"unknown model name {model_id!r}; known: {sorted(kernels.MODEL_IDS)}")
        mid = kernels.MODEL_IDS[model_id]
    else:
        mid = int(model_id)
        if mid != model_id or mid not in kernels.MODEL_IDS.values():
            raise ValueError(f"unknown model id {model_id!r}; known: {kernels.MODEL_IDS}")
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    meth = METHODS[method.lower()]

    # --- states and parameters
    y0a = _as_2d(y0, "y0")
    pa = _as_2d(p, "p")
    npat = max(y0a.shape[0], pa.shape[0])
    if isinstance(events, Sequence) and not isinstance(events, (str, bytes)):
        npat = max(npat, len(events))
    if isinstance(rules, Sequence) and not isinstance(rules, (str, bytes)):
        npat = max(npat, len(rules))
    y0a = _as_2d(y0a, "y0", npat)
    pa = _as_2d(pa, "p", npat)
    n = y0a.shape[1]
    n_p = pa.shape[1]
    if n == 0:
        raise ValueError("y0 has no states")
    Y0 = np.ascontiguousarray(np.broadcast_to(y0a, (npat, n)), dtype=np.float64).copy()
    P = np.ascontiguousarray(np.broadcast_to(pa, (npat, n_p)), dtype=np.float64).copy()
    if not np.all(np.isfinite(Y0)):
        raise ValueError("y0 must be finite")
    if np.isnan(P).any():
        raise ValueError("p must not contain NaN")

    # --- times
    te = np.array(t_eval, dtype=np.float64, copy=True).reshape(-1)
    if not np.all(np.isfinite(te)):
        raise ValueError("t_eval must be finite")
    if te.size > 1 and not np.all(np.diff(te) >= 0):
        raise ValueError("t_eval must be non-decreasing")
    t0 = float(t0)
    t1 = float(t1)
    if not (np.isfinite(t0) and np.isfinite(t1)):
        raise ValueError(f"t0, t1 must be finite, got {t0}, {t1}")
    if t1 < t0:
        raise ValueError(f"t1 must be >= t0, got t0={t0}, t1={t1}")

    # --- masks and tolerances
    lm = np.array(log_mask, dtype=np.bool_, copy=True).reshape(-1)
    if lm.shape != (n,):
        raise ValueError(f"log_mask must have length n={n}, got shape {lm.shape}")
    rtol = float(rtol)
    if not (np.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be finite and > 0, got {rtol}")
    at = np.asarray(atol, dtype=np.float64)
    if at.ndim > 1 or at.size not in (1, n):
        raise ValueError(f"atol must be a scalar or have length n={n}, got shape {at.shape}")
    at = np.array(np.broadcast_to(at.reshape(-1), (n,)), copy=True)
    if not (np.all(np.isfinite(at)) and np.all(at > 0)):
        raise ValueError("atol must be finite and > 0 (scalar or one per state)")
    max_steps = int(max_steps)
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    h0 = float(h0)
    hmax = float(hmax)
    if not (np.isfinite(h0) and np.isfinite(hmax)):
        raise ValueError("h0 and hmax must be finite")

    # --- events and rules: flat columns, then padded per patient
    ev_n, ev_cols = _event_columns(events, npat)
    EV_T, EV_KIND, EV_IDX, EV_VAL = _padded(ev_n, ev_cols, sort_by=0)
    EV_N = ev_n
    _check_targets(ev_n, ev_cols[1], ev_cols[2], n, n_p, "events", "idx")
    rule_n, rule_cols = _rule_columns(rules, npat)
    rmax = int(rule_n.max(initial=0))
    RULE_IDX, RULE_THR, RULE_KIND, RULE_TGT, RULE_VAL = _padded(rule_n, rule_cols)
    RULE_N = rule_n
    bad = rule_cols[0] >= n
    if bad.any():
        i = _owner(rule_n, int(np.flatnonzero(bad)[0]))
        raise ValueError(f"rules[{i}]: state idx out of range (n={n}): "
                         f"{rule_cols[0][bad][:5].tolist()}")
    _check_targets(rule_n, rule_cols[2], rule_cols[3], n, n_p, "rules", "tgt")
    rpad = RULE_IDX.shape[1]

    nt = te.shape[0]
    Y_OUT = np.empty((npat, nt, n)) if y_out is None else _out_buffer(y_out, (npat, nt, n))
    STATUS = np.empty(npat, np.int64)
    STATS = np.zeros((npat, 4), np.int64)
    RULE_TIME = np.full((npat, rpad), np.nan)
    guard_cache()  # the compiled code must not come from a stale cache
    integrate_batch(np.int64(mid), np.int64(meth), Y0, P, te, t0, t1,
                    EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N,
                    RULE_IDX, RULE_THR, RULE_KIND, RULE_TGT, RULE_VAL, RULE_N,
                    lm, rtol, at, h0, hmax, np.int64(max_steps),
                    Y_OUT, STATUS, STATS, RULE_TIME)
    return BatchResult(y=Y_OUT, status=STATUS, stats=STATS, rule_time=RULE_TIME[:, :rmax])
