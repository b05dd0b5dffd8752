"""Work-precision benchmark: error against cost of every ODE method on the ``cd7`` model.

``.venv/bin/python benchmarks/work_precision.py`` (``make bench`` runs it; 3-5 min on the
2-vCPU machine, ``--quick`` under a minute). See the "Work-precision" section of
``benchmarks/README.md``.

Every method integrates the same compiled ``cd7`` right-hand side
(``cartsim.models.cd7_kernel.rhs``) from day -5 to day 365 (371 daily outputs, every dose
event of the default regimen; integration stops and restarts at each event) for a fixed,
seeded set of virtual patients (``run.make_scenarios``: the patients of ``benchmarks/run.py``),
at several relative tolerances:

* cartsim, every adaptive method ``cartsim.solvers.solve_batch`` accepts (``METHODS``:
  ``rodas4``, ``dp5``, ``bdf``, ``dp5_bdf``); the fixed-step variants (``FIXED_STEP``) take no
  tolerance and are left out;
* numbalsoda LSODA called from Numba (``benchmarks/_numbalsoda_rhs.py``), if importable;
* ``scipy.integrate.solve_ivp`` LSODA, BDF and Radau (``cartsim.solvers.reference``), the
  compiled rhs and the compiled analytic Jacobian (``cartsim.models.cd7_jacobian``, the one
  cartsim's implicit methods use) called from Python, on a subset of the patients.

Absolute tolerances scale with ``rtol``: ``atol_i = Cd7Model.atol_i * rtol / 1e-6`` (cartsim's
per-state tolerances belong to its default ``rtol`` 1e-6; tightening ``rtol`` alone would leave
the error pinned by ``atol``). Cost: milliseconds per patient of one simulated year (370
days), best of ``--repeats`` warm calls over all patients in one batch (interleaved rounds
over all methods and tolerances; ``solve_ivp``: 2), compilation excluded, **one thread**
(``numba.set_num_threads(1)``, one BLAS thread): the process's CPU time
(``time.process_time``), which a competing job on a shared machine barely inflates, and the
wall time beside it (equal to it on an idle machine).

Error against a reference, SciPy Radau at rtol 1e-10, atol 1e-12 (independent of every cartsim
solver: only the rhs is shared, and the Jacobian, which steers Newton's iteration but not the
solution it converges to), cross-checked against cartsim Rodas4 at rtol 1e-12 (atol scaled
as above); their disagreement is printed as the floor below which errors are not resolved:

* state error: max over patients, output times and cell states (ln cells) of
  ``|ln x - ln x_ref|`` (the relative error of the count), where the reference count is at
  least one cell (the model reports a sub-cellular clone as extinct);
* endpoint error: max over patients of the relative error of peak total CAR-T (Cmax), its day
  (Tmax, parabolic refinement as in ``run.endpoints``), its AUC over days 0-28 (trapezoid on
  the daily grid, as ``cartsim.clinical.kinetics``) and marrow blasts (%) at day 28; ``ok``
  when every one is within 1e-4 (the accuracy criterion of ``benchmarks/run.py``).

Prints the table and writes the log-log figure (error against cost) to
``docs/work_precision.png`` (``--figure``; ``--quick`` writes no figure unless asked).
"""

from __future__ import annotations

import os

# One BLAS thread (the timings are single-thread; see run.py).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    ACC_LIMIT,
    RUNAWAY,
    T_EVAL,
    OtherLoad,
    _hdr,
    machine_info,
    make_scenarios,
)
from run import endpoints as run_endpoints  # noqa: E402

RTOL_DEFAULT = 1e-6
"""The ``rtol`` that ``Cd7Model.atol`` belongs to (cartsim's default)."""
RTOLS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)
RTOLS_SCIPY = (1e-3, 1e-5, 1e-7, 1e-9)
RTOLS_QUICK = (1e-3, 1e-6, 1e-9)
REF_RADAU = (1e-10, 1e-12)  # rtol, atol of the reference
REF_CHECK_RTOL = 1e-12  # cartsim Rodas4 cross-check of the reference
AUC_END_DAY = 28.0
ENDPOINTS = ("Cmax", "Tmax", "AUC0-28", "blasts d28")
DEFAULT_FIGURE = REPO / "docs" / "work_precision.png"


def scaled_atol(model, rtol: float) -> np.ndarray:
    """Per-state absolute tolerances for ``rtol``: ``model.atol`` belongs to ``RTOL_DEFAULT``."""
    return np.asarray(model.atol, dtype=np.float64) * (rtol / RTOL_DEFAULT)


# ----------------------------------------------------------------------------- errors

def endpoint_values(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(patient, 4): Cmax, Tmax, AUC0-28 of total CAR-T (cells, day, cells*day), blasts d28 (%)."""
    base = run_endpoints(y, p)  # peak, its day, blasts at day 28
    car = np.exp(y[:, :, 0:3]).sum(axis=2)
    w = (T_EVAL >= 0.0) & (T_EVAL <= AUC_END_DAY)
    auc = np.trapezoid(car[:, w], T_EVAL[w], axis=1)
    return np.column_stack([base[:, 0], base[:, 1], auc, base[:, 2]])


def state_error(y: np.ndarray, ref: np.ndarray, log_mask: np.ndarray) -> np.ndarray:
    """Per patient: max |ln x - ln x_ref| over output times and cell states with x_ref >= 1."""
    d = np.abs(y[:, :, log_mask] - ref[:, :, log_mask])
    d = np.where(ref[:, :, log_mask] >= 0.0, d, 0.0)
    d[~np.isfinite(y[:, :, log_mask])] = np.inf
    return d.reshape(d.shape[0], -1).max(axis=1)


def endpoint_error(ep: np.ndarray, ref_ep: np.ndarray) -> np.ndarray:
    """(patient, endpoint) relative error; a missing value counts as infinite."""
    e = np.abs(ep - ref_ep) / np.abs(ref_ep)
    e[~np.isfinite(e)] = np.inf
    return e


# ----------------------------------------------------------------------------- solvers

class Solvers:
    """``solve(problems, rtol) -> (y[patient, time, state], ok[patient], steps or None)``."""

    def __init__(self, model):
        from cartsim.models import cd7_kernel as K

        self.K = K
        self.model = model
        self.nl = None
        self.nl_error = None
        try:
            import _numbalsoda_rhs as nl

            self.nl = nl
            self.nl_f = nl.make_cfunc(K.rhs, K.N_STATE, K.N_P)
        except ImportError as exc:  # benchmark-only dependency
            self.nl_error = f"{type(exc).__name__}: {exc}"

    def cartsim(self, method: str):
        from cartsim.solvers import solve_batch

        m = self.model

        def solve(problems, rtol):
            res = solve_batch(m.model_id, np.stack([pr.y0 for pr in problems]),
                              np.stack([pr.p for pr in problems]), T_EVAL,
                              min(pr.t0 for pr in problems), float(T_EVAL[-1]),
                              [pr.events for pr in problems], [pr.rules for pr in problems],
                              m.log_mask, method, rtol, scaled_atol(m, rtol),
                              max_steps=1_000_000)
            return res.y, res.ok, res.stats[:, 0]
        return solve

    def numbalsoda(self, problems, rtol):
        nl, K = self.nl, self.K
        Y0, DATA, EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N = nl.pack(
            problems, scaled_atol(self.model, rtol), K.N_P)
        out = np.empty((len(problems), T_EVAL.size, K.N_STATE))
        ok = np.zeros(len(problems), np.bool_)
        nl.solve_batch_lsoda(self.nl_f.address, Y0, DATA, T_EVAL, min(pr.t0 for pr in problems),
                             EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N, self.model.log_mask, rtol,
                             1_000_000, out, ok)
        return out, ok, None

    def scipy(self, method: str, *, atol=None):
        from cartsim.models.cd7_jacobian import jac
        from cartsim.solvers.reference import solve_reference

        m, K = self.model, self.K

        def solve(problems, rtol):
            at = scaled_atol(m, rtol) if atol is None else atol
            ys, ok = [], []
            for pr in problems:
                try:
                    ys.append(solve_reference(K.rhs, pr.y0, pr.p, T_EVAL, pr.t0, pr.events,
                                              m.log_mask, method=method, rtol=rtol, atol=at,
                                              jac=jac))
                    ok.append(True)
                except RuntimeError:
                    ys.append(np.full((T_EVAL.size, pr.y0.size), np.nan))
                    ok.append(False)
            return np.stack(ys), np.array(ok), None
        return solve


@dataclass
class Row:
    """One (method, rtol) point of the work-precision diagram."""

    label: str
    rtol: float
    n: int
    ms: float  # CPU time (process_time), best of the timed calls, per patient
    ms_wall: float  # wall time, best of the timed calls, per patient
    state_err: float
    ep_err: np.ndarray  # per endpoint, max over successful patients
    failures: int
    steps: float | None = None

    @property
    def ep_max(self) -> float:
        return float(np.max(self.ep_err))

    @property
    def meets(self) -> bool:
        return self.failures == 0 and self.ep_max <= ACC_LIMIT


def measure(jobs, ref, ref_ep, P, log_mask) -> list[Row]:
    """Time every job ``(label, solve, problems, rtol, k)`` in ``max(k)`` interleaved
    rounds (a job with ``k`` < the round number is skipped), keep each job's best CPU and wall
    time, and score its last solution against the reference.

    Interleaving spreads a burst of competing load over all jobs instead of one job's repeats.
    """
    best = [np.inf] * len(jobs)
    best_wall = [np.inf] * len(jobs)
    last = [None] * len(jobs)
    for rnd in range(max(j[4] for j in jobs)):
        for i, (_lab, solve, probs, rtol, k) in enumerate(jobs):
            if rnd >= k:
                continue
            c, t = time.process_time(), time.perf_counter()
            last[i] = solve(probs, rtol)
            best_wall[i] = min(best_wall[i], time.perf_counter() - t)
            best[i] = min(best[i], time.process_time() - c)
    rows = []
    for (label, _s, probs, rtol, _k), sec, wall, (y, ok, steps) in zip(
            jobs, best, best_wall, last):
        n = len(probs)
        se = state_error(y, ref[:n], log_mask)
        ee = endpoint_error(endpoint_values(y, P[:n]), ref_ep[:n])
        good = ok & np.isfinite(se)
        se_max = float(se[good].max()) if good.any() else np.nan
        ee_max = ee[good].max(axis=0) if good.any() else np.full(len(ENDPOINTS), np.nan)
        rows.append(Row(label, rtol, n, 1e3 * sec / n, 1e3 * wall / n, se_max, ee_max,
                        int(n - good.sum()), None if steps is None or not ok.any()
                        else float(np.mean(steps[ok]))))
    return rows


# ----------------------------------------------------------------------------- figure

_STYLE = {"cartsim rodas4": ("C0", "o"), "cartsim dp5": ("C1", "s"), "cartsim bdf": ("C2", "^"),
          "cartsim dp5_bdf": ("C3", "D"), "numbalsoda lsoda": ("k", "v"),
          "solve_ivp LSODA": ("C4", "<"), "solve_ivp BDF": ("C5", ">"),
          "solve_ivp Radau": ("C7", "P")}


def figure(rows: list[Row], floor: tuple[float, float], title: str, path: Path) -> None:
    """Two log-log panels, state error and endpoint error, against CPU ms per patient-year."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharey=True, constrained_layout=True)
    labels = list(dict.fromkeys(r.label for r in rows))
    for ax, what, fl in ((axes[0], "state", floor[0]), (axes[1], "endpoint", floor[1])):
        for lab in labels:
            pts = [r for r in rows if r.label == lab and r.failures == 0]
            err = np.array([r.state_err if what == "state" else r.ep_max for r in pts])
            ms = np.array([r.ms for r in pts])
            keep = np.isfinite(err) & (err > 0)
            if not keep.any():
                continue
            color, marker = _STYLE.get(lab, (None, "o"))
            ls = "--" if lab.startswith("solve_ivp") else "-"
            ax.plot(err[keep], ms[keep], ls, color=color, marker=marker, ms=5, lw=1.3,
                    label=lab)
            for r, e in zip(np.array(pts)[keep][[0, -1]], err[keep][[0, -1]]):
                ax.annotate(f"{r.rtol:.0e}".replace("e-0", "e-"), (e, r.ms), fontsize=6,
                            color=color or "k", xytext=(3, 3), textcoords="offset points")
        ax.axvspan(1e-16, fl, color="0.85", zorder=0,
                   label="reference disagreement (not resolved)")
        if what == "endpoint":
            ax.axvline(ACC_LIMIT, color="r", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(left=max(fl / 3.0, 1e-13))
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.invert_xaxis()
    axes[0].set_xlabel("state error: max |ln x - ln x_ref| over cell states, days, patients")
    axes[1].set_xlabel("endpoint error: max relative error of Cmax, Tmax, AUC0-28, blasts d28"
                       f"\n(dotted: the {ACC_LIMIT:g} criterion)")
    axes[0].set_ylabel("CPU ms per patient-year, 1 thread (best of repeats)")
    handles, names = axes[1].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ----------------------------------------------------------------------------- main

EQUAL_ERRORS = (1e-4, 1e-5, 1e-6, 1e-7)
"""Endpoint errors at which the methods' costs are compared (interpolated)."""


def cost_at(rows: list[Row], target: float) -> float:
    """CPU ms per patient-year at which one method's max endpoint error reaches ``target``.

    ``rows``: one method, any order. Walks from the loosest to the tightest tolerance and
    interpolates log(ms) linearly in log(error) on the first segment that crosses ``target``;
    returns ``-ms`` (printed ``<=``) when the loosest point is already within it, NaN when
    none is. A tolerance with a failed patient breaks the curve.
    """
    pts = sorted((r for r in rows if r.failures == 0 and np.isfinite(r.ep_max)),
                 key=lambda r: -r.rtol)
    for i, r in enumerate(pts):
        if r.ep_max <= target:
            if i == 0:
                return -r.ms
            q = pts[i - 1]
            f = np.log(q.ep_max / target) / np.log(q.ep_max / r.ep_max)
            return float(np.exp(np.log(q.ms) + f * np.log(r.ms / q.ms)))
    return np.nan


def _ms(x: float) -> str:
    if not np.isfinite(x):
        return "not reached"
    return f"<={-x:.3f}" if x < 0 else f"{x:.3f}"


def markdown(rows: list[Row]) -> str:
    """The work-precision table as Markdown (for benchmarks/README.md)."""
    out = ["| method | rtol | patients | CPU ms per patient-year | wall ms | state error | "
           "endpoint error (worst) | within 1e-4 | failures |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        worst = ENDPOINTS[int(np.nanargmax(r.ep_err))] if np.isfinite(r.ep_err).any() else "-"
        out.append(f"| {r.label} | {r.rtol:.0e} | {r.n} | {r.ms:.3f} | {r.ms_wall:.3f} | "
                   f"{_e(r.state_err)} | "
                   f"{_e(r.ep_max)} ({worst}) | {'yes' if r.meets else 'no'} | {r.failures} |")
    return "\n".join(out)


def _e(x: float) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.1e}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 6 patients, 2 for SciPy, rtol 1e-3/1e-6/1e-9, 1 repeat")
    ap.add_argument("--n-patients", type=int, default=None,
                    help="patients for the compiled solvers (default 32; --quick 6)")
    ap.add_argument("--n-scipy", type=int, default=None,
                    help="first patients of those for solve_ivp (default 8; --quick 2)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed calls of a compiled solver, in interleaved rounds, best taken "
                         "(default 10; --quick 1); solve_ivp at most twice")
    ap.add_argument("--seed", type=int, default=20240607, help="patients' seed (as run.py)")
    ap.add_argument("--figure", default=None,
                    help=f"output PNG (default {DEFAULT_FIGURE.relative_to(REPO)}; --quick: "
                         "none); '' writes none")
    ap.add_argument("--markdown", action="store_true",
                    help="also print the table as Markdown (for benchmarks/README.md)")
    args = ap.parse_args(argv)
    quick = args.quick
    n_pat = args.n_patients or (6 if quick else 32)
    n_sp = min(args.n_scipy or (2 if quick else 8), n_pat)
    repeats = args.repeats or (1 if quick else 10)
    rtols = RTOLS_QUICK if quick else RTOLS
    rtols_sp = RTOLS_QUICK[:2] if quick else RTOLS_SCIPY
    fig_path = args.figure if args.figure is not None else ("" if quick else str(DEFAULT_FIGURE))

    import numba

    from cartsim.models.cd7 import Cd7Model
    from cartsim.solvers import METHODS

    numba.set_num_threads(1)
    t_all = time.perf_counter()
    print("cartsim work-precision benchmark: cd7 model, days -5..365 (371 daily outputs, all dose "
          "events), 1 thread")
    print(machine_info())
    model = Cd7Model()
    S = Solvers(model)

    # --- patients: the first n_pat without runaway CAR-T expansion -------------------------
    scen = make_scenarios(2 * n_pat + 8, args.seed)
    cand = [model.build(s) for s in scen]
    y, ok, _ = S.cartsim(model.default_method)(cand, RTOL_DEFAULT)
    peak = np.exp(y[:, :, 0:3]).sum(axis=2).max(axis=1)
    keep = ok & (peak < RUNAWAY)
    problems = [pr for pr, k in zip(cand, keep) if k][:n_pat]
    n_pat = len(problems)
    n_sp = min(n_sp, n_pat)
    print(f"patients: {n_pat} (seed {args.seed}; {int((~keep).sum())} of "
          f"{len(cand)} candidates dropped for runaway CAR-T > {RUNAWAY:.0e} cells or a failed "
          f"screen); solve_ivp on the first {n_sp}")
    P = np.stack([pr.p for pr in problems])
    lm = np.asarray(model.log_mask, dtype=bool)

    # --- reference ------------------------------------------------------------------------
    _hdr("Reference")
    t = time.perf_counter()
    ref = S.scipy("Radau", atol=REF_RADAU[1])(problems, REF_RADAU[0])[0]
    t_ref = time.perf_counter() - t
    ref_ep = endpoint_values(ref, P)
    chk, chk_ok, _ = S.cartsim("rodas4")(problems, REF_CHECK_RTOL)
    floor_state = float(state_error(chk, ref, lm).max())
    floor_ep = float(endpoint_error(endpoint_values(chk, P), ref_ep).max())
    print(f"  SciPy Radau rtol {REF_RADAU[0]:g}, atol {REF_RADAU[1]:g} ({t_ref:.0f} s) vs cartsim "
          f"rodas4 rtol {REF_CHECK_RTOL:g} (atol scaled; {int(chk_ok.sum())}/{n_pat} ok): "
          f"state {floor_state:.1e}, endpoints {floor_ep:.1e} -- the floor below which an "
          "error is not resolved")
    print(f"  Cmax {ref_ep[:, 0].min():.2e}..{ref_ep[:, 0].max():.2e} cells on day "
          f"{ref_ep[:, 1].min():.1f}..{ref_ep[:, 1].max():.1f}; AUC0-28 "
          f"{ref_ep[:, 2].min():.2e}..{ref_ep[:, 2].max():.2e} cells*day; blasts d28 "
          f"{ref_ep[:, 3].min():.2g}..{ref_ep[:, 3].max():.2g} %")

    # --- methods: warm-up (compile), then the sweep over rtol ---------------------------------
    methods = [(f"cartsim {m}", S.cartsim(m), problems, rtols, repeats) for m in METHODS]
    if S.nl is not None:
        methods.append(("numbalsoda lsoda", S.numbalsoda, problems, rtols, repeats))
    methods += [(f"solve_ivp {m}", S.scipy(m), problems[:n_sp], rtols_sp, min(2, repeats))
                for m in ("LSODA", "BDF", "Radau")]
    _hdr("Compilation / first call (1 patient, not in the timings)")
    for label, solve, probs, _r, _k in methods:
        t = time.perf_counter()
        solve(probs[:1], RTOL_DEFAULT)
        print(f"  {label:20s} {time.perf_counter() - t:6.2f} s")
    print("  (cartsim's methods share one compiled dispatcher, loaded or compiled by the screen "
          "above; numbalsoda compiles in every process)")
    if S.nl is None:
        print(f"  numbalsoda: SKIPPED ({S.nl_error}); install it with `apt-get install -y "
              "gfortran && .venv/bin/python -m pip install numbalsoda`")

    _hdr("Work-precision (CPU and wall ms per patient-year, 1 thread; errors vs the reference)")
    load = OtherLoad()
    jobs = [(label, solve, probs, rtol, k)
            for label, solve, probs, rts, k in methods for rtol in rts]
    rows = measure(jobs, ref, ref_ep, P, lm)
    other = load.stop()
    hdr = (f"  {'method':18s} {'rtol':>6s} {'pat':>4s} {'CPU ms':>8s} {'wall ms':>8s} "
           f"{'steps':>6s} {'state err':>9s} {'endpt err':>9s} {'worst':>10s} {'1e-4':>4s} "
           f"{'fail':>4s}")
    print(hdr)
    for r in rows:
        worst = ENDPOINTS[int(np.nanargmax(r.ep_err))] if np.isfinite(r.ep_err).any() else "-"
        steps = f"{r.steps:6.0f}" if r.steps is not None and np.isfinite(r.steps) else "     -"
        print(f"  {r.label:18s} {r.rtol:6.0e} {r.n:4d} {r.ms:8.3f} {r.ms_wall:8.3f} {steps} "
              f"{_e(r.state_err):>9s} "
              f"{_e(r.ep_max):>9s} {worst:>10s} {'ok' if r.meets else '-':>4s} {r.failures:4d}")
    print(f"  atol = Cd7Model.atol * rtol / {RTOL_DEFAULT:g}; steps: accepted steps per patient "
          f"(cartsim); 1e-4: every endpoint within {ACC_LIMIT:g} and no failure; errors under "
          f"the floor (state {floor_state:.0e}, endpoints {floor_ep:.0e}) are not resolved")
    warn = "  <-- WARNING: competing load, timings inflated" if other > 0.2 else ""
    print(f"  CPU used by other processes during the sweep: {other:.2f} cores on average{warn}")

    _hdr("At equal accuracy: CPU ms per patient-year, 1 thread")
    head = f"cartsim {model.default_method}"
    table = []
    for lab in dict.fromkeys(r.label for r in rows):
        mine = [r for r in rows if r.label == lab]
        meet = [r for r in mine if r.meets]
        cheap = min(meet, key=lambda r: r.ms) if meet else None
        table.append((lab, cheap, [cost_at(mine, e) for e in EQUAL_ERRORS]))
    ref_cost = next((c for lab, _m, c in table if lab == head), None)
    print(f"  {'method':18s} {'cheapest rtol meeting ' + format(ACC_LIMIT, 'g'):>28s} "
          + " ".join(f"{'endpoint err ' + format(e, '.0e'):>19s}" for e in EQUAL_ERRORS))
    for lab, cheap, costs in table:
        c0 = (f"{cheap.ms:8.3f} (rtol {cheap.rtol:.0e})" if cheap else "none tried meets")
        cells = []
        for j, c in enumerate(costs):
            rel = ("" if ref_cost is None or not np.isfinite(ref_cost[j]) or not np.isfinite(c)
                   else f" ({abs(c) / abs(ref_cost[j]):5.2f}x)")
            cells.append(f"{_ms(c) + rel:>19s}")
        print(f"  {lab:18s} {c0:>28s} " + " ".join(cells))
    print(f"  endpoint err E: cost where the max endpoint error reaches E, interpolated log-log "
          f"between neighbouring tolerances (first crossing from loose to tight; '<=' when the "
          f"loosest tolerance tried is already below E); (Nx): cost relative to {head}")

    if args.markdown:
        print()
        print(markdown(rows))
        print()
        print("| method | " + " | ".join(f"endpoint error {e:.0e}" for e in EQUAL_ERRORS)
              + " |")
        print("|---|" + "---|" * len(EQUAL_ERRORS))
        for lab, _cheap, costs in table:
            print(f"| {lab} | " + " | ".join(
                _ms(c) + ("" if ref_cost is None or not np.isfinite(c * ref_cost[j])
                          else f" ({abs(c) / abs(ref_cost[j]):.2f}x)")
                for j, c in enumerate(costs)) + " |")

    if fig_path:
        title = (f"cd7 model, {n_pat} virtual patients (solve_ivp: {n_sp}), days -5..365, CPU "
                 f"time, 1 thread; reference SciPy Radau rtol {REF_RADAU[0]:g}; "
                 f"{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.2f}, other "
                 f"processes {other:.2f} cores")
        figure(rows, (floor_state, floor_ep), title, Path(fig_path))
        print(f"\nfigure: {fig_path}")
    print(f"total {time.perf_counter() - t_all:.0f} s; load average at end "
          f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
