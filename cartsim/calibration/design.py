"""Global search: a space-filling design over the free parameters, stored row by row, then
local refinement from its best points.

The free parameters are Hydra override keys (``+model.params.rho_max``,
``endpoints.death.aplasia_hazard_per_day``, ...) with a start value and bounds
(:class:`Space`); the search runs on ``u = (ln x - ln lower) / (ln upper - ln lower)`` in
``[0, 1]^d``. :func:`run_design` evaluates point 0 (the start values) and then a
scrambled Sobol sequence (Owen 1998; ``scipy.stats.qmc.Sobol``): the first ``N`` points
of a longer design are the points of the shorter one, so a design can be extended as
well as resumed. Every point's simulated figure for every target is appended to a CSV
file (:class:`DesignStore`) as soon as it is known; an interrupted run continues where it
stopped, and the likelihood of any subset of targets (leave-one-trial-out, the ensemble
filter) is recomputed from the stored figures without simulating again. :func:`refine`
runs Nelder-Mead (Nelder & Mead 1965 Comput J 7:308) from the best design points,
appending its evaluations to the same store (``source`` ``refine:<start id>``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cartsim.calibration.likelihood import loglik, zscore
from cartsim.calibration.targets import TARGETS, Target

__all__ = ["DesignStore", "Space", "loglik_matrix", "nelder_mead", "refine", "run_design",
           "z_matrix"]


@dataclass(frozen=True)
class Space:
    """Free parameters: Hydra key -> (start, lower, upper), searched on a log scale."""

    keys: tuple[str, ...]
    start: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        for k, s, lo, hi in zip(self.keys, self.start, self.lower, self.upper):
            if not 0 < lo < hi or not lo <= s <= hi:
                raise ValueError(f"free parameter {k}: expected 0 < lower <= start <= upper "
                                 f"(searched on a log scale), got [{s}, {lo}, {hi}]")

    @classmethod
    def from_config(cls, free: dict, resolve: Callable[[str], float] | None = None) -> Space:
        """From ``{key: [start, lower, upper]}`` (``experiments/calibration.yaml``: ``free``).

        A start of ``default`` is the shipped value, ``resolve(key)`` (e.g.
        :func:`cartsim.calibration.run.shipped_value`), so the search starts from the
        current defaults however they change.
        """
        bad = [k for k, v in free.items() if len(v) != 3]
        if bad:
            raise ValueError(f"free parameters {bad}: expected [start, lower, upper]")
        if resolve is None and any(v[0] == "default" for v in free.values()):
            raise ValueError("a free parameter starts at 'default': pass resolve= to read it")
        rows = [(k, float(resolve(k) if v[0] == "default" else v[0]), float(v[1]), float(v[2]))
                for k, v in free.items()]
        keys, start, lower, upper = zip(*rows)
        return cls(tuple(keys), start, lower, upper)

    def values(self, u) -> np.ndarray:
        """Parameter values of unit-cube points ``u`` (clipped to the bounds)."""
        lo, hi = np.log(self.lower), np.log(self.upper)
        return np.exp(lo + np.clip(np.asarray(u, dtype=float), 0.0, 1.0) * (hi - lo))

    def unit(self, x) -> np.ndarray:
        lo, hi = np.log(self.lower), np.log(self.upper)
        return (np.log(np.asarray(x, dtype=float)) - lo) / (hi - lo)

    def overrides(self, x) -> list[str]:
        return [f"{k}={v:.6g}" for k, v in zip(self.keys, np.asarray(x, dtype=float))]

    def to_dict(self) -> dict:
        return {k: [s, lo, hi] for k, s, lo, hi in zip(self.keys, self.start, self.lower,
                                                        self.upper)}


def design_points(space: Space, n: int, seed: int = 0) -> np.ndarray:
    """``n`` parameter vectors: the start values, then a scrambled Sobol sequence."""
    from scipy.stats import qmc

    if n <= 1:
        return np.asarray([space.start])[:n]
    m = max(0, math.ceil(math.log2(n - 1)))
    u = qmc.Sobol(len(space.keys), scramble=True, seed=seed).random_base2(m)[: n - 1]
    return np.vstack([space.start, space.values(u)])


class DesignStore:
    """Design points and their simulated figures, one CSV row each, appended as they come.

    The first line is ``# {json}``: the free parameters, the design seed, the simulation
    settings and the target keys; resuming with different ones is an error (they would
    mix incomparable rows). Columns: ``id``, ``source``, ``status``, the parameter keys,
    then per target its simulated figure (``<key>``) and denominator (``<key>#m``).
    """

    def __init__(self, path, meta: dict, targets: Sequence[Target] = TARGETS):
        self.path = Path(path)
        self.meta = meta
        self.targets = tuple(targets)
        self.params = list(meta["free"])
        if meta.get("targets") != [t.key for t in self.targets]:
            raise ValueError(f"{self.path}: the design's targets ({meta.get('targets')}) are not "
                             "the targets given; a design is read with the targets it was run "
                             "with (or run a new design)")
        self.columns = ["id", "source", "status", *self.params,
                        *(c for t in self.targets for c in (t.key, t.key + "#m"))]
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open() as f:
                head = f.readline()
            old = json.loads(head[1:]) if head.startswith("#") else None
            if old != json.loads(json.dumps(meta)):
                diff = sorted(k for k in {**(old or {}), **meta}
                              if (old or {}).get(k) != json.loads(json.dumps(meta)).get(k))
                raise ValueError(f"{self.path} holds a design with other settings (differing: "
                                 f"{', '.join(diff)}; 'model' differs when the model's source "
                                 "or conf/ changed). Use another file or delete this one.")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as f:
                f.write("# " + json.dumps(meta) + "\n")
                csv.writer(f).writerow(self.columns)

    @classmethod
    def open(cls, path, targets: Sequence[Target] = TARGETS) -> DesignStore:
        """An existing store, read with the settings it was run with."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no design store at {path}: run the design first "
                                    "(experiments/calibrate.py --design N)")
        with path.open() as f:
            head = f.readline()
        if not head.startswith("#"):
            raise ValueError(f"{path} is not a design store: its first line must be '# {{json}}'")
        return cls(path, json.loads(head[1:]), targets)

    def frame(self) -> pd.DataFrame:
        """The stored rows (a last line cut short by an interruption is ignored)."""
        with self.path.open(newline="") as f:
            rows = [r for r in csv.reader(line for line in f if not line.startswith("#"))]
        body = [r for r in rows[1:] if len(r) == len(self.columns)]
        df = pd.DataFrame(body, columns=self.columns)
        num = [c for c in self.columns if c not in ("source", "status")]
        df[num] = df[num].astype(float)
        return df.astype({"id": int}).reset_index(drop=True)

    def done(self) -> set[int]:
        """Ids of the design points already stored."""
        df = self.frame()
        return set(df.loc[df["source"] == "design", "id"].tolist())

    def append(self, pid: int, source: str, status: str, x, values: dict) -> None:
        row = [pid, source, status, *(f"{v:.9g}" for v in x)]
        for t in self.targets:
            v, m = values.get(t.key, (math.nan, 0))
            row += [f"{v:.9g}", int(m)]
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(row)
            f.flush()
            os.fsync(f.fileno())


MODEL_PARTS = ("models", "parameters", "population", "clinical", "scenario.py", "trial.py")
"""What of the ``cartsim`` package defines the simulated trials (with ``conf/``)."""


def model_fingerprint() -> str:
    """A hash of the model's source and configs (:data:`MODEL_PARTS` and ``conf/``).

    Stored with a design: figures simulated by another model must not be mixed into it,
    and the working tree may hold uncommitted changes that a git commit would not show.
    """
    import hashlib

    import cartsim
    from cartsim.config import conf_dir

    pkg = Path(cartsim.__file__).parent
    roots = [pkg / p for p in MODEL_PARTS] + [conf_dir()]
    files = sorted(f for r in roots for f in ([r] if r.is_file() else r.rglob("*"))
                   if f.suffix in (".py", ".yaml"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def check_model(meta: dict, what: str, *, strict: bool = True) -> str:
    """Whether the design in ``meta`` was simulated by the current model.

    Returns "" when it was; otherwise raises (``strict``) or returns the message (a
    warning for predictions that only read the design's parameter values).
    """
    now = model_fingerprint()
    if meta.get("model") == now:
        return ""
    msg = (f"{what}: the design was simulated with another model (fingerprint "
           f"{meta.get('model')}, now {now}: the model's source or conf/ changed); run a new "
           "design")
    if strict:
        raise ValueError(msg + " before simulating more points into it")
    return msg


def restamp(path, k: int = 2, *, targets: Sequence[Target] = TARGETS,
            simulate: Simulator | None = None, log: Callable | None = print) -> str:
    """Re-stamp a store with the current model fingerprint when the model still gives its
    figures: ``k`` stored points (evenly spread over the store's ``ok`` rows) are simulated
    again with the store's settings and every figure and denominator must equal the stored
    one as written (9 significant digits). A change of the model's source that leaves the
    simulations identical (a refactor, a faster build) then does not orphan the stored
    design and posterior draws; any difference raises, naming the point and the figure.
    Returns the fingerprint the store had (the same as now: nothing to do)."""
    store = DesignStore.open(path, targets)
    old, now = store.meta.get("model"), model_fingerprint()
    if old == now:
        return old
    df = store.frame()
    ok = df.index[df["status"].eq("ok")].to_numpy()
    if not (isinstance(k, int) and k >= 1) or ok.size < 1:
        raise ValueError(f"restamp: k={k!r} must be an integer >= 1 and {path} must hold an "
                         "'ok' row")
    pick = ok[np.unique(np.linspace(0, ok.size - 1, min(k, ok.size)).round().astype(int))]
    sim = simulate or default_simulator(targets, store.meta["replicates"],
                                        store.meta.get("fixed", []))
    free = list(store.meta["free"])
    for i in pick:
        row = df.loc[i]
        over = [f"{key}={row[key]:.6g}" for key in free]
        values, status = sim(over)
        for t in targets:
            v, m = values.get(t.key, (math.nan, 0))
            if f"{v:.9g}" != f"{row[t.key]:.9g}" or int(m) != int(row[t.key + '#m']):
                raise ValueError(f"restamp: {Path(path).name} point {int(row['id'])} gives "
                                 f"{t.key} = {v:.9g} of {int(m)} now, {row[t.key]:.9g} of "
                                 f"{int(row[t.key + '#m'])} stored: the model's results "
                                 "changed; run a new design")
        if log is not None:
            log(f"{Path(path).name}: point {int(row['id'])} reproduced ({len(targets)} figures)")
    lines = Path(path).read_text().splitlines(keepends=True)
    meta = json.loads(lines[0][1:])
    meta["model"] = now
    lines[0] = "# " + json.dumps(meta) + "\n"
    tmp = Path(path).with_suffix(".restamp.tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)
    return old


REFINE_ID0 = 1_000_000
"""First id of refinement rows (design points take ids 0, 1, ... in the order of the design)."""

Simulator = Callable[[list[str]], dict]
"""``f(overrides) -> {target key: (figure, denominator)}``, with a ``status`` string."""


def default_simulator(targets: Sequence[Target], replicates: float, fixed: Sequence[str] = ()):
    """The trial simulations of :mod:`cartsim.calibration.run` as a :data:`Simulator`."""
    from cartsim.calibration.run import simulate_trials, simulated_values

    def simulate(overrides):
        eps = simulate_trials(fixed, free=overrides, replicates=replicates, targets=targets)
        failed = [f"{k}: {e}" for k, e in eps.items() if isinstance(e, Exception)]
        return simulated_values(eps, targets), "; ".join(failed)[:200] or "ok"

    return simulate


def run_design(space: Space, n: int, path, *, seed: int = 0, replicates: float = 5,
               fixed: Sequence[str] = (), targets: Sequence[Target] = TARGETS,
               simulate: Simulator | None = None, log: Callable | None = print) -> pd.DataFrame:
    """Evaluate the first ``n`` design points not yet in the store at ``path``; return the store.

    Each point's figures are written before the next point starts, so interrupting and
    calling again with the same arguments (or a larger ``n``) continues the same design.
    """
    meta = {"free": space.to_dict(), "seed": int(seed), "replicates": replicates,
            "fixed": list(fixed), "targets": [t.key for t in targets],
            "model": model_fingerprint()}
    store = DesignStore(path, meta, targets)
    sim = simulate or default_simulator(targets, replicates, fixed)
    done = store.done()
    if done and log is not None:
        log(f"{len(done)} points already in {store.path}: continuing the same design")
    for pid, x in enumerate(design_points(space, n, seed)):
        if pid in done:
            continue
        values, status = sim(space.overrides(x))
        if simulate is None:  # the model must not change under a running design
            check_model(meta, f"design point {pid}")
        store.append(pid, "design", status, x, values)
        if log is not None:
            rows = [(t, *values[t.key]) for t in targets]
            ll = sum(loglik(t, v, m) for t, v, m in rows)
            log(f"design point {pid + 1}/{n}: log-likelihood {ll:9.2f}  "
                + " ".join(f"{k.rsplit('.', 1)[-1]}={v:.3g}" for k, v in zip(space.keys, x)))
    return store.frame()


def _cells(df: pd.DataFrame, targets: Sequence[Target], fn) -> np.ndarray:
    out = np.empty((len(df), len(targets)))
    for j, t in enumerate(targets):
        v = df[t.key].to_numpy(float)
        m = df[t.key + "#m"].to_numpy(float)
        out[:, j] = [fn(t, a, int(b)) for a, b in zip(v, m)]
    return out


def loglik_matrix(df: pd.DataFrame, targets: Sequence[Target] = TARGETS) -> np.ndarray:
    """Log-likelihood of every stored point (rows) for every target (columns)."""
    return _cells(df, targets, loglik)


def z_matrix(df: pd.DataFrame, targets: Sequence[Target] = TARGETS) -> np.ndarray:
    """Standardised deviation of every stored point for every target (NaN: not computed)."""
    return _cells(df, targets, zscore)


def refine(space: Space, path, *, starts: int = 2, maxiter: int = 30, replicates: float = 5,
           fixed: Sequence[str] = (), targets: Sequence[Target] = TARGETS,
           simulate: Simulator | None = None, log: Callable | None = print,
           objective: Sequence[Target] | None = None) -> pd.DataFrame:
    """Nelder-Mead from the ``starts`` best design points of the store; returns the store.

    The search runs in the unit cube (log scale), clipped to the bounds, with the same
    common random numbers as the design; every evaluation is appended to the store.
    ``objective``: the targets whose likelihood is maximised (default ``targets``, the
    store's); every target is still simulated and stored.
    """
    store = DesignStore.open(path, targets)
    obj = tuple(targets if objective is None else objective)
    if simulate is None:
        check_model(store.meta, "refine")
    sim = simulate or default_simulator(targets, replicates, fixed)
    df = store.frame()
    if df.empty:
        raise ValueError(f"{path} holds no design points: run the design first (--design N)")
    design = df[df["source"] == "design"]
    ll = loglik_matrix(design, obj).sum(axis=1)
    best = design.iloc[np.argsort(-ll)[:starts]]
    next_id = max(REFINE_ID0, int(df["id"].max()) + 1)  # never an id a longer design takes

    for _, row in best.iterrows():
        tag = f"refine:{int(row['id'])}"

        def record(x, values, status, tag=tag):
            nonlocal next_id
            if simulate is None:
                check_model(store.meta, f"{tag}, point {next_id}")
            store.append(next_id, tag, status, x, values)
            next_id += 1
            if log is not None:
                ll = sum(loglik(t, *values[t.key]) for t in obj)
                log(f"{tag}: log-likelihood {ll:9.2f}  " + " ".join(
                    f"{k.rsplit('.', 1)[-1]}={v:.3g}" for k, v in zip(space.keys, x)))

        nelder_mead(space, row[list(space.keys)].to_numpy(float), obj, sim,
                    maxiter=maxiter, record=record)
    return store.frame()


def nelder_mead(space: Space, x0, targets: Sequence[Target], simulate: Simulator, *,
                maxiter: int = 30, record: Callable | None = None) -> np.ndarray:
    """Maximise the likelihood of ``targets`` from ``x0`` (Nelder-Mead on the unit cube,
    at most ``maxiter`` simulations); ``record(x, values, status)`` sees every evaluation.
    Returns the best parameter values found."""
    from scipy.optimize import minimize

    best = {"f": math.inf, "x": np.asarray(x0, dtype=float)}

    def objective(u):
        x = space.values(u)
        values, status = simulate(space.overrides(x))
        if record is not None:
            record(x, values, status)
        f = -sum(loglik(t, *values[t.key]) for t in targets)
        if f < best["f"]:
            best.update(f=f, x=x)
        return f

    u0 = space.unit(x0)
    minimize(objective, u0, method="Nelder-Mead",
             options={"maxfev": maxiter, "xatol": 0.01, "fatol": 0.05,
                      "initial_simplex": _simplex(u0, 0.08)})
    return best["x"]


def _simplex(u0: np.ndarray, step: float) -> np.ndarray:
    """A starting simplex around ``u0`` that stays inside the unit cube."""
    pts = [u0]
    for i in range(u0.size):
        p = u0.copy()
        p[i] = p[i] + step if p[i] + step <= 1 else p[i] - step
        pts.append(p)
    return np.asarray(pts)
