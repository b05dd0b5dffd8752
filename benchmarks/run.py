"""Performance benchmark of cartsim's compiled batch solver on the ``cd7`` model.

``make bench`` runs ``.venv/bin/python benchmarks/run.py``. See ``benchmarks/README.md``.

Every method integrates the same compiled ``cd7`` right-hand side
(``cartsim.models.cd7_kernel.rhs``, 25 states), days -5..365 with 371 daily outputs and all
dose events (Flu/Cy infusions on and off, CAR-T bolus), stopping and restarting at every
event, for the same log-normally varied virtual patients:

1. per-patient cost, warm (compilation excluded and reported separately):
   SciPy ``solve_ivp(LSODA)`` with the compiled rhs called from Python; numbalsoda LSODA
   called from Numba (if installed); cartsim Rodas4 and DP5 (``solve_problems``), on 1 and 2
   threads; accuracy against SciPy Radau at rtol 1e-10;
2. a batch of 10,000 virtual patients (``--quick``: 200) through ``cartsim.simulate``:
   wall time, peak RSS, output sizes (in a fresh subprocess);
3. ``import cartsim`` time and ``cartsim.simulate(Scenario())`` first-call time in fresh
   processes, and Numba's on-disk cache (cold compile vs second process).

Nothing is written into the repository: results are printed only (the cold-cache test uses a
temporary ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import os

# One BLAS thread: idle OpenBLAS threads spinning after SciPy calls would steal the second
# core from Numba's threads (and no solver here uses multi-threaded BLAS).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Speed anchors from shared/BENCHMARKS.md: a different, 14-state CAR-T model, same kind of machine.
ANCHORS = [
    ("scipy solve_ivp LSODA, Python rhs", 49.0, None),
    ("scipy solve_ivp LSODA, Numba rhs + Jacobian", 18.0, None),
    ("libRoadRunner CVODE rtol 1e-6", 2.8, 1.6),
    ("numbalsoda LSODA from Numba, rtol 1e-6", 0.95, 0.48),
    ("numbalsoda LSODA from Numba, rtol 1e-7", 1.19, 0.75),
    ("hand-written Numba Rodas4, FD Jacobian", 2.3, 1.17),
    ("hand-written Numba DP5", 3.0, 1.5),
]

#: Varied model parameters (log-normal, sigma 0.3 around the default, clipped to bounds).
VARIED = ("rho_max", "k_kill", "delta_e", "delta_m", "k_ag", "k_em", "s_il6", "k_switch")
SIGMA = 0.3
#: Peak total CAR-T above this (cells) is flagged as runaway expansion (a whole body holds ~1e12
#: lymphocytes).
RUNAWAY = 1e13
ACC_LIMIT = 1e-4  # required relative accuracy of peak CAR-T and its day (cartsim, rtol 1e-6)
T_EVAL = np.arange(-5.0, 366.0, 1.0)  # 371 daily outputs
DAY_BLASTS = 28.0
#: Targets of the lean result (issue 18 item 3), for the 10,000-patient batch of part 5.
TARGET_SIM_S = 5.0        # cartsim.simulate of 10,000 patients, wall
TARGET_PEAK_MB = 1024.0   # ... peak RSS
TARGET_DS_MS = 0.05       # Dataset assembly (to_dataset) per patient


# ----------------------------------------------------------------------------- patients

def make_scenarios(n: int, seed: int):
    """``n`` virtual patients: log-normal variability on 8 parameters and 2 covariates."""
    import cartsim
    from cartsim.parameters.cd7 import CD7_PARAMETERS

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, len(VARIED) + 2))
    out = []
    for i in range(n):
        params = {}
        for j, name in enumerate(VARIED):
            par = CD7_PARAMETERS[name]
            params[name] = float(np.clip(par.value * np.exp(SIGMA * z[i, j]), par.lower,
                                         par.upper))
        blasts = float(np.clip(30.0 * np.exp(0.5 * z[i, -2]), 1.0, 90.0))
        weight = float(np.clip(65.0 * np.exp(0.25 * z[i, -1]), 20.0, 150.0))
        out.append(cartsim.Scenario(model=cartsim.ModelConfig(params=params),
                                    patient=cartsim.Patient(marrow_blast_pct=blasts,
                                                            weight_kg=weight)))
    return out


def _simulation_module():
    for name in ("cartsim.simulation", "cartsim.simulate"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "solve_problems"):
            return mod
    raise ImportError("cartsim.simulation.solve_problems not found")


# ----------------------------------------------------------------------------- metrics

def endpoints(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Peak total CAR-T, its day (parabolic refinement on ln), marrow blast % at day 28.

    ``y``: (patient, time, state) in solver coordinates; ``p``: (patient, n_p).
    """
    from cartsim.models import cd7_kernel as K

    car = np.exp(y[:, :, 0:3]).sum(axis=2)
    k = np.nanargmax(car, axis=1)
    out = np.full((y.shape[0], 3), np.nan)
    dt = T_EVAL[1] - T_EVAL[0]
    iday = int(np.flatnonzero(T_EVAL == DAY_BLASTS)[0])
    for i in range(y.shape[0]):
        if not np.all(np.isfinite(y[i])):
            continue
        ki = int(k[i])
        out[i, 0] = car[i, ki]
        day = T_EVAL[ki]
        if 0 < ki < T_EVAL.size - 1:
            a, b, c = np.log(car[i, ki - 1:ki + 2])
            den = a - 2.0 * b + c
            if den < 0.0:
                day += 0.5 * (a - c) / den * dt
        out[i, 1] = day
        bl = np.exp(y[i, iday, K.S_B7]) + np.exp(y[i, iday, K.S_B0])
        out[i, 2] = 100.0 * bl / (bl + p[i, K.P_NMARROW])
    return out


def rel_err(ep: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Max over patients of the relative error of each endpoint (NaN -> inf)."""
    e = np.abs(ep - truth) / np.abs(truth)
    e[~np.isfinite(e)] = np.inf
    return e.max(axis=0)


# ----------------------------------------------------------------------------- methods

class Methods:
    """Solvers under test; each ``solve(problems, rtol) -> (y, ok, stats or None)``."""

    def __init__(self):
        from cartsim.models import cd7_kernel as K
        from cartsim.models.cd7 import Cd7Model

        self.K = K
        self.model = Cd7Model()
        self.sim = _simulation_module()
        self.nl = None
        self.nl_error = None
        self.nl_unraisable = {}
        try:
            sys.path.insert(0, str(HERE))
            import _numbalsoda_rhs as nl

            self.nl = nl
            self.nl_f = nl.make_cfunc(K.rhs, K.N_STATE, K.N_P)
        except ImportError as exc:  # benchmark-only dependency
            self.nl_error = f"{type(exc).__name__}: {exc}"

    def truth(self, problems):
        from cartsim.solvers.reference import solve_reference

        m = self.model
        return np.stack([solve_reference(self.K.rhs, pr.y0, pr.p, T_EVAL, pr.t0, pr.events,
                                         m.log_mask, method="Radau", rtol=1e-10, atol=1e-12)
                         for pr in problems])

    def scipy_lsoda(self, problems, rtol):
        from cartsim.solvers.reference import solve_reference

        m = self.model
        ys = []
        ok = []
        for pr in problems:
            try:
                ys.append(solve_reference(self.K.rhs, pr.y0, pr.p, T_EVAL, pr.t0, pr.events,
                                          m.log_mask, method="LSODA", rtol=rtol, atol=m.atol))
                ok.append(True)
            except RuntimeError:
                ys.append(np.full((T_EVAL.size, pr.y0.size), np.nan))
                ok.append(False)
        return np.stack(ys), np.array(ok), None

    def numbalsoda(self, problems, rtol):
        """numbalsoda LSODA; exceptions raised inside the cfunc rhs (which C cannot propagate
        and Numba reports as "Exception ignored") are counted in ``self.nl_unraisable``."""
        old_hook = sys.unraisablehook
        sys.unraisablehook = self._count_unraisable
        try:
            return self._numbalsoda(problems, rtol)
        finally:
            sys.unraisablehook = old_hook

    def _count_unraisable(self, u):
        name = type(u.exc_value).__name__ if u.exc_value is not None else "exception"
        self.nl_unraisable[name] = self.nl_unraisable.get(name, 0) + 1

    def _numbalsoda(self, problems, rtol):
        nl, m = self.nl, self.model
        Y0, DATA, EV_T, EV_KIND, EV_IDX, EV_VAL, EV_N = nl.pack(problems, m.atol, self.K.N_P)
        out = np.empty((len(problems), T_EVAL.size, self.K.N_STATE))
        ok = np.zeros(len(problems), np.bool_)
        t0 = min(pr.t0 for pr in problems)
        nl.solve_batch_lsoda(self.nl_f.address, Y0, DATA, T_EVAL, t0, EV_T, EV_KIND, EV_IDX,
                             EV_VAL, EV_N, m.log_mask, rtol, 1_000_000, out, ok)
        return out, ok, None

    def cartsim(self, method):
        def solve(problems, rtol):
            m = self.model
            res = self.sim.solve_problems(m, problems, T_EVAL, method=method, rtol=rtol,
                                          atol=m.atol, max_steps=200_000)
            return res.y, res.status == 0, np.asarray(res.stats)
        return solve


def cartsim_methods():
    """cartsim's solver methods: rodas4, dp5, then any others ``solve_batch`` accepts."""
    try:
        from cartsim.solvers.api import METHODS
        names = list(METHODS)
    except ImportError:
        names = ["rodas4", "dp5"]
    first = [m for m in ("rodas4", "dp5") if m in names]
    return first + [m for m in names if m not in first]


def _time_call(fn, problems, rtol, repeats):
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn(problems, rtol)
        best = min(best, time.perf_counter() - t)
    return best


def _set_threads(n):
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


# ----------------------------------------------------------------------------- subprocesses

def _py(code: str, env=None, timeout=900):
    """Run ``code`` in a fresh interpreter; returns (wall s, parsed last-line JSON)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=e,
                       capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"subprocess failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall, json.loads(r.stdout.strip().splitlines()[-1])


_IMPORT_CODE = """
import time, json
t = time.perf_counter()
import cartsim
print(json.dumps({"import_s": time.perf_counter() - t}))
"""

_SIMULATE_CODE = """
import time, json
t = time.perf_counter()
import cartsim
t_imp = time.perf_counter() - t
t = time.perf_counter()
cartsim.simulate, cartsim.Scenario  # lazy attributes: imports xarray, numba, the model
t_attr = time.perf_counter() - t
t = time.perf_counter()
ds = cartsim.simulate(cartsim.Scenario())
t_first = time.perf_counter() - t
t = time.perf_counter()
cartsim.simulate(cartsim.Scenario())
t_second = time.perf_counter() - t
try:
    from cartsim.solvers.driver import sources_hash
    src = sources_hash()
except ImportError:
    src = ""
print(json.dumps({"src": src, "import_s": t_imp, "attr_s": t_attr, "first_s": t_first,
                  "second_s": t_second,
                  "status": int(ds["status"].values[0])}))
"""


def _batch_code(n: int, seed: int, threads: int, state_dtype: str = "float64") -> str:
    """Part 5 in a fresh process; with ``state_dtype`` other than float64, ``simulate`` with
    that ``state_dtype`` only (wall, CPU, peak RSS), without the breakdown."""
    dtype_kw = "" if state_dtype == "float64" else f", state_dtype={state_dtype!r}"
    return f"""
import os, sys, time, json, resource
sys.path.insert(0, {str(HERE)!r})
import numpy as np
import numba
import cartsim
from run import make_scenarios, T_EVAL, _simulation_module
sim = _simulation_module()
numba.set_num_threads(min({threads}, numba.config.NUMBA_NUM_THREADS))
cartsim.simulate(cartsim.Scenario())  # load the compiled solver from the cache
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); scs = make_scenarios({n}, {seed}); t_scen = time.perf_counter() - t
t = time.perf_counter(); c = time.process_time()
ds = cartsim.simulate(scs{dtype_kw})
t_sim = time.perf_counter() - t; c_sim = time.process_time() - c
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if {state_dtype != "float64"}:
    print(json.dumps(dict(t_sim=t_sim, c_sim=c_sim, rss0_kb=rss0, rss1_kb=rss1)))
    sys.exit(0)
nbytes_ds = int(ds.nbytes)  # as if every variable were loaded (observables may be lazy)
from cartsim.models import get_model
nbytes_y = int(ds.sizes["patient"] * ds.sizes["time"] * len(get_model("cd7").states) * 8)
t = time.perf_counter(); ep = cartsim.endpoints(ds); t_ep = time.perf_counter() - t
rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
runaway = ds["car_total"].max("time").values > {RUNAWAY!r}
steps = ds["n_steps"].values.astype(float)
status = np.bincount(ds["status"].values.astype(int), minlength=5).tolist()
del ds, ep
# breakdown, on the physiological patients only (no runaway CAR-T)
from cartsim.models import get_model
model = get_model("cd7")
phys = [s for s, r in zip(scs, runaway) if not r]
t = time.perf_counter(); probs = [model.build(s) for s in phys]; t_build = time.perf_counter() - t
t = time.perf_counter()
meth = model.default_method
res = sim.solve_problems(model, probs, T_EVAL, method=meth, rtol=1e-6, atol=model.atol,
                         max_steps=200_000)
t_solve = time.perf_counter() - t
import inspect
own = {{"copy": False}} if "copy" in inspect.signature(sim.to_dataset).parameters else {{}}
t = time.perf_counter()
sim.to_dataset(model, probs, T_EVAL, res, phys, method=meth, **own)  # as simulate does
t_ds = time.perf_counter() - t
print(json.dumps(dict(n={n}, n_phys=len(phys), method=meth, n_runaway=int(runaway.sum()),
                      steps_share_runaway=float(steps[runaway].sum() / steps.sum()),
                      threads=numba.get_num_threads(), t_scen=t_scen, t_sim=t_sim,
                      c_sim=c_sim,
                      t_build=t_build, t_solve=t_solve, t_ds=t_ds, t_ep=t_ep, rss0_kb=rss0,
                      rss1_kb=rss1, rss2_kb=rss2,
                      nbytes_ds=nbytes_ds, nbytes_y=nbytes_y, status=status)))
"""


# ----------------------------------------------------------------------------- report

class OtherLoad:
    """CPU used by *other* processes (cores, averaged) between ``start`` and ``stop``.

    Busy time of the whole machine (``/proc/stat``) minus this process's and its waited-for
    children's CPU time: a competing job inflates the timings, and this says so.
    """

    def __init__(self):
        self.start()

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as fh:
                v = [int(x) for x in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self):
        self.t, self.b, self.o = time.perf_counter(), self._busy(), self._own()
        return self

    def stop(self):
        if self.b is None:
            return float("nan")
        wall = time.perf_counter() - self.t
        other = (self._busy() - self.b) - (self._own() - self.o)
        return max(other, 0.0) / max(wall, 1e-9)

    def report(self):
        x = self.stop()
        warn = "  <-- WARNING: competing load, timings inflated" if x > 0.2 else ""
        return f"  CPU used by other processes during this part: {x:.2f} cores on average{warn}"


def _hdr(title):
    print()
    print(title)
    print("-" * len(title))


def _fmt_ms(x):
    return "-" if x is None or not np.isfinite(x) else f"{x:8.3f}"


def machine_info():
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import scipy

    try:
        from importlib.metadata import version

        import numbalsoda  # noqa: F401

        nlv = version("numbalsoda")
    except ImportError:
        nlv = "not installed"
    return (f"{_dt.datetime.now():%Y-%m-%d %H:%M}  {platform.node()}  {os.cpu_count()} vCPU  "
            f"{cpu}\nPython {platform.python_version()}, numpy {np.__version__}, scipy "
            f"{scipy.__version__}, numba {numba.__version__}, numbalsoda {nlv}; "
            f"load average at start {os.getloadavg()[0]:.2f}")


def part_batch(n_batch: int, seed: int) -> None:
    """Part 5: ``cartsim.simulate`` of ``n_batch`` patients on 2 threads in a fresh process."""
    _hdr(f"5. Batch of {n_batch} virtual patients, cartsim.simulate, 2 threads (fresh process)")
    load = OtherLoad()
    wall, b = _py(_batch_code(n_batch, seed, 2), timeout=3600)
    mb = 1024.0
    print(f"  threads {b['threads']}; scenarios built in {b['t_scen']:.1f} s")
    print(f"  cartsim.simulate(list of {b['n']}): {b['t_sim']:.2f} s wall "
          f"({1e3 * b['t_sim'] / b['n']:.3f} ms/patient), {b['c_sim']:.2f} s CPU (all threads); "
          f"solver status counts {b['status']} (0 = success)")
    n_ph = b["n_phys"]
    if b["n_runaway"]:
        print(f"  runaway CAR-T in {b['n_runaway']} patients "
              f"({100 * b['n_runaway'] / b['n']:.0f}%), who take "
              f"{100 * b['steps_share_runaway']:.0f}% of all solver steps; stage by stage on the "
              f"{n_ph} others:")
    else:
        print(f"  no runaway CAR-T; stage by stage (again, {n_ph} patients):")
    print(f"    model.build {1e3 * b['t_build'] / n_ph:.3f} ms/patient, solve_problems "
          f"({b['method']}) {1e3 * b['t_solve'] / n_ph:.3f} ms/patient ({b['t_solve']:.1f} s), "
          f"to_dataset {1e3 * b['t_ds'] / n_ph:.3f} ms/patient ({b['t_ds']:.1f} s; the log "
          f"states are exponentiated as the Dataset is read: in cartsim.endpoints' time)")
    print(f"  peak RSS {b['rss1_kb'] / mb:.0f} MB (after import and warm-up {b['rss0_kb'] / mb:.0f}"
          f" MB); output Dataset {b['nbytes_ds'] / 1e6:.0f} MB as if all loaded "
          f"({b['nbytes_ds'] / b['n'] / 1e3:.1f} kB/patient; states and observables lazy); raw "
          f"states {b['nbytes_y'] / 1e6:.0f} MB (1e6 bytes), so a peak of at least "
          f"{b['rss0_kb'] / mb + b['nbytes_y'] / mb ** 2:.0f} MB (as the peak: MiB) with "
          f"float64 states")
    if "t_ep" in b:
        print(f"  then cartsim.endpoints of it: {b['t_ep']:.2f} s "
              f"({1e3 * b['t_ep'] / b['n']:.3f} ms/patient), peak RSS {b['rss2_kb'] / mb:.0f} MB")
    if b["n"] == 10_000:
        ds_ms = 1e3 * b["t_ds"] / n_ph
        for what, got, target, unit in (
                ("simulate 10,000 patients wall", b["t_sim"], TARGET_SIM_S, "s"),
                ("simulate 10,000 patients peak RSS", b["rss1_kb"] / mb, TARGET_PEAK_MB, "MB"),
                ("Dataset assembly per patient", ds_ms, TARGET_DS_MS, "ms")):
            print(f"  target {what}: {got:.3g} {unit} vs < {target:g} {unit}: "
                  f"{got / target:.2f}x of target  {'ok' if got < target else 'MISSED'}")
    else:
        print(f"  (targets of issue 18 apply to 10,000 patients: simulate < {TARGET_SIM_S:g} s, "
              f"< {TARGET_PEAK_MB:.0f} MB peak, Dataset < {TARGET_DS_MS:g} ms/patient)")
    _, f32 = _py(_batch_code(n_batch, seed, 2, state_dtype="float32"), timeout=3600)
    peak32 = f32["rss1_kb"] / mb
    print(f"  cartsim.simulate(list of {b['n']}, state_dtype='float32') (opt-in, fresh process): "
          f"{f32['t_sim']:.2f} s wall, {f32['c_sim']:.2f} s CPU, peak RSS {peak32:.0f} MB"
          f"{'' if b['n'] != 10_000 else ' ok' if peak32 < TARGET_PEAK_MB else ' MISSED'}")
    print(load.report())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--n-patients", type=int, default=None,
                    help="batch size of part 2 (default 10000; --quick 200)")
    ap.add_argument("--n-timing", type=int, default=None,
                    help="patients per compiled-solver timing (default 64; --quick 8)")
    ap.add_argument("--n-accuracy", type=int, default=None,
                    help="patients checked against Radau rtol 1e-10 (default 8; --quick 2)")
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--batch-only", action="store_true",
                    help="run part 5 only (the --n-patients batch through cartsim.simulate)")
    ap.add_argument("--solver-only", action="store_true",
                    help="parts 1-4 only (compile, accuracy, per-patient cost, ratios)")
    args = ap.parse_args(argv)
    quick = args.quick
    n_batch = args.n_patients or (200 if quick else 10_000)
    n_time = args.n_timing or (8 if quick else 64)
    n_acc = args.n_accuracy or (2 if quick else 8)
    n_scipy = 2 if quick else 4
    repeats = 1 if quick else 3
    rtols = (1e-6,) if quick else (1e-6, 1e-7, 1e-8)

    from cartsim.models import cd7_kernel

    print(f"cartsim benchmark: cd7 model ({cd7_kernel.N_STATE} states), days -5..365, "
          "371 daily outputs, all dose events")
    print(machine_info())
    t_all = time.perf_counter()
    load_all = OtherLoad()
    if args.batch_only:
        part_batch(n_batch, args.seed)
        print(f"load average at end {os.getloadavg()[0]:.2f}")
        return 0

    import numba

    from cartsim.models.cd7 import Cd7Model

    model = Cd7Model()
    n_pop = 2 * max(n_time, n_acc, n_scipy) + 8
    scenarios = make_scenarios(n_pop, args.seed)
    all_problems = [model.build(s) for s in scenarios]
    print(f"virtual patients: log-normal (sigma {SIGMA}) on {', '.join(VARIED)} (clipped to "
          f"bounds), marrow_blast_pct and weight_kg; seed {args.seed}")

    # --- compile / first call --------------------------------------------------------------
    _hdr("1. Compilation / first call in this process (1 patient)")
    M = Methods()
    methods = []  # (label, key, solve, rtols, n patients for timing, threads list)
    methods.append(("scipy solve_ivp LSODA, compiled rhs", "scipy", M.scipy_lsoda, (1e-6,),
                    n_scipy, (1,)))
    if M.nl is not None:
        methods.append(("numbalsoda LSODA (from Numba, prange)", "nl", M.numbalsoda, rtols,
                        n_time, (1, 2)))
    for meth in cartsim_methods():
        methods.append((f"cartsim {meth} (solve_problems)", meth, M.cartsim(meth), rtols,
                        n_time, (1, 2)))
    cs_keys = tuple(cartsim_methods())
    head = model.default_method if model.default_method in cs_keys else cs_keys[0]
    for label, _key, fn, _r, _n, _th in methods:
        t = time.perf_counter()
        fn(all_problems[:1], 1e-6)
        print(f"  {label:40s} {time.perf_counter() - t:7.2f} s")
    if M.nl is None:
        print(f"  numbalsoda: SKIPPED (not importable: {M.nl_error}); install it with "
              "`apt-get install -y gfortran && .venv/bin/python -m pip install numbalsoda`")
    print("  (cartsim: loads Numba's on-disk cache when warm, else compiles; numbalsoda's "
          "kernels call ctypes and cannot be cached, so they compile in every process)")

    # --- population screen: runaway CAR-T expansion -------------------------------------------
    y_pop, ok_pop, st_pop = M.cartsim("rodas4")(all_problems, 1e-6)
    peak_pop = np.exp(y_pop[:, :, 0:3]).sum(axis=2).max(axis=1)
    runaway = ~(ok_pop & (peak_pop < RUNAWAY))
    problems = [pr for pr, r in zip(all_problems, runaway) if not r]
    run_probs = [pr for pr, r in zip(all_problems, runaway) if r][:1 if quick else 3]
    print(f"\npopulation screen (rodas4 rtol 1e-6, {n_pop} patients): peak total CAR-T "
          f"{np.nanmin(peak_pop):.1e}..{np.nanmax(peak_pop):.1e} cells, mean "
          f"{st_pop[:, 0].mean():.0f} steps; {int((~ok_pop).sum())} failed solves")
    if runaway.any():
        print(f"  {int(runaway.sum())} ({100 * runaway.mean():.0f}%) have RUNAWAY CAR-T expansion "
              f"or failed (peak > {RUNAWAY:.0e} cells: non-physiological, a model issue; "
              f"mean {st_pop[runaway, 0].mean():.0f} steps): timed separately in part 3b; "
              f"parts 2-3 use the first {n_time} others")
    else:
        print(f"  no runaway CAR-T expansion (peak > {RUNAWAY:.0e} cells) and no failure")

    # --- accuracy ----------------------------------------------------------------------------
    _hdr(f"2. Accuracy vs SciPy Radau rtol 1e-10 ({n_acc} patients): max relative error")
    t = time.perf_counter()
    truth_y = M.truth(problems[:n_acc])
    P_acc = np.stack([pr.p for pr in problems[:n_acc]])
    truth = endpoints(truth_y, P_acc)
    print(f"  truth: {time.perf_counter() - t:.1f} s; peak CAR-T {truth[:, 0].min():.3g}.."
          f"{truth[:, 0].max():.3g} cells on day {truth[:, 1].min():.1f}..{truth[:, 1].max():.1f}"
          f"; blasts day 28 {truth[:, 2].min():.2g}..{truth[:, 2].max():.2g} %")
    print(f"  {'method':40s} {'rtol':>6s} {'peak CAR-T':>11s} {'peak day':>10s} "
          f"{'blasts d28':>11s}  check")
    errs = {}
    failures = []
    for label, key, fn, rt_list, _n, _th in methods:
        for rtol in rt_list:
            y, ok, _ = fn(problems[:n_acc], rtol)
            e = rel_err(endpoints(y, P_acc), truth)
            errs[(key, rtol)] = e
            check = ""
            if key in cs_keys:
                good = bool(np.all(ok)) and e[0] <= ACC_LIMIT and e[1] <= ACC_LIMIT
                check = "ok" if good else "FAIL"
                if not good and rtol == 1e-6:
                    failures.append(f"{key} rtol {rtol:g}")
            if not np.all(ok):
                check += f" ({int((~ok).sum())} failed solves)"
            print(f"  {label:40s} {rtol:6.0e} {e[0]:11.2e} {e[1]:10.2e} {e[2]:11.2e}  {check}")
    print(f"  check: cartsim peak CAR-T and its day within {ACC_LIMIT:g} relative "
          "(required at rtol 1e-6)")
    if failures:
        print(f"  FAIL: {', '.join(failures)} miss the {ACC_LIMIT:g} requirement")

    # --- timing ------------------------------------------------------------------------------
    _hdr("3. Warm cost per patient (ms; best of "
         f"{repeats}; compiled solvers over {n_time} patients, SciPy over {n_scipy})")
    rows = []
    load = OtherLoad()
    for label, key, fn, rt_list, n_pat, threads in methods:
        for rtol in rt_list:
            ms = {}
            stats = None
            for th in threads:
                _set_threads(th)
                sec = _time_call(fn, problems[:n_pat], rtol, repeats)
                ms[th] = 1e3 * sec / n_pat
            _set_threads(numba.config.NUMBA_NUM_THREADS)
            if key in cs_keys:
                _, _, st = fn(problems[:n_pat], rtol)
                stats = st.mean(axis=0)
            e = errs.get((key, rtol))
            rows.append((label, key, rtol, ms.get(1), ms.get(2), stats,
                         None if e is None else float(np.max(e[:2])),
                         None if e is None else float(e[2])))
    print(f"  {'method':40s} {'rtol':>6s} {'1 thread':>9s} {'2 threads':>9s} {'speedup':>7s} "
          f"{'steps':>6s} {'rhs':>6s} {'jac':>5s} {'err peak/day':>12s} {'err d28':>9s}")
    for label, _key, rtol, m1, m2, st, e, e28 in rows:
        sp = f"{m1 / m2:7.2f}" if m1 and m2 else "      -"
        steps = f"{st[0]:6.0f}" if st is not None else "     -"
        nrhs = f"{st[2]:6.0f}" if st is not None else "     -"
        njac = f"{st[3]:5.0f}" if st is not None else "    -"
        print(f"  {label:40s} {rtol:6.0e} {_fmt_ms(m1):>9s} {_fmt_ms(m2):>9s} {sp} {steps} "
              f"{nrhs} {njac} {e:12.2e} {e28:9.2e}")
    if M.nl is None:
        print("  numbalsoda LSODA: SKIPPED (numbalsoda not importable)")
    print("  steps, rhs, jac: accepted steps, right-hand-side calls (incl. any finite-difference "
          "Jacobian columns), Jacobian evaluations, per patient (cartsim's solver statistics)")
    print(load.report())

    if run_probs:
        _hdr(f"3b. Runaway patients ({len(run_probs)}; 1 thread; max_steps 200,000): "
             "ms per patient")
        _set_threads(1)
        for label, key, fn, _r, _n, _th in methods:
            if key == "scipy":
                continue
            t = time.perf_counter()
            _, ok, st = fn(run_probs, 1e-6)
            ms = 1e3 * (time.perf_counter() - t) / len(run_probs)
            extra = f"; steps {st[:, 0].mean():.0f}" if st is not None else ""
            print(f"  {label:40s} rtol 1e-6 {ms:9.2f} ms; {int(ok.sum())}/{len(ok)} "
                  f"succeeded{extra}")
            if key == "nl" and M.nl_unraisable:
                print(f"    (numbalsoda: the cfunc rhs raised {M.nl_unraisable} on LSODA trial "
                      "states -- a cell count under/overflowing exp -- and LSODA went on)")
                M.nl_unraisable.clear()
        _set_threads(numba.config.NUMBA_NUM_THREADS)

    def row(key, rtol):
        for r in rows:
            if r[1] == key and r[2] == rtol:
                return r
        return None

    _hdr("4. Ratios (>1: cartsim faster)")
    cs = row(head, 1e-6)
    hl = f"cartsim {head} 1e-6"
    for other, rtol, name in (("nl", 1e-6, "numbalsoda LSODA rtol 1e-6"),
                              ("scipy", 1e-6, "solve_ivp LSODA compiled rhs rtol 1e-6")):
        o = row(other, rtol)
        if o is None:
            print(f"  {hl} vs {name}: n/a")
            continue
        parts = [f"1 thread {o[3] / cs[3]:.2f}x"]
        if o[4] is not None:
            parts.append(f"2 threads {o[4] / cs[4]:.2f}x")
        else:
            parts.append(f"vs cartsim on 2 threads {o[3] / cs[4]:.2f}x")
        print(f"  {hl} vs {name}: " + ", ".join(parts))

    # equal accuracy: cheapest setting whose peak/day/blasts errors all meet ACC_LIMIT
    def cheapest(keys):
        best = None
        for r in rows:
            e = errs.get((r[1], r[2]))
            if r[1] in keys and r[4] is not None and e is not None and np.all(e <= ACC_LIMIT):
                if best is None or r[4] < best[4]:
                    best = r
        return best

    bc, bn = cheapest(cs_keys), cheapest(("nl",))
    if bc and bn:
        print(f"  at equal accuracy (all three endpoints within {ACC_LIMIT:g}), 2 threads: "
              f"cartsim {bc[1]} rtol {bc[2]:g} {bc[4]:.3f} ms vs numbalsoda rtol {bn[2]:g} "
              f"{bn[4]:.3f} ms -> {bn[4] / bc[4]:.2f}x")
    elif bc or bn:
        print(f"  at equal accuracy: only {'cartsim' if bc else 'numbalsoda'} meets {ACC_LIMIT:g} "
              "on all three endpoints at the tolerances tried")
    print("  vs anchors of shared/BENCHMARKS.md -- measured on a DIFFERENT, 14-state CAR-T model "
          "(not the cd7 model), same kind of 2-vCPU machine:")
    for name, a1, a2 in ANCHORS:
        s = f"    {name:46s} {a1:6.2f} ms -> {hl} 1 thread {a1 / cs[3]:6.2f}x"
        if a2 is not None:
            s += f"; {a2:.2f} ms (2 thr) -> {a2 / cs[4]:.2f}x"
        print(s)

    if args.solver_only:
        print()
        print(load_all.report().strip().replace("this part", "the whole run"))
        print(f"parts 5-6 skipped (--solver-only); total {time.perf_counter() - t_all:.0f} s; "
              f"load average at end {os.getloadavg()[0]:.2f}")
        return 1 if failures else 0

    part_batch(n_batch, args.seed)

    # --- start-up and cache ------------------------------------------------------------------
    _hdr("6. Start-up (fresh processes)")
    imp = [_py(_IMPORT_CODE)[1]["import_s"] for _ in range(3)]
    verdict = "ok" if min(imp) < 2.0 else "FAIL (must stay < 2 s)"
    runs = ", ".join(f"{x:.3f}" for x in imp)
    print(f"  import cartsim: {min(imp):.3f} s (best of 3; runs {runs})  {verdict}")
    _, s0 = _py(_SIMULATE_CODE)  # makes sure the cache is warm (sources may have changed)
    if s0["first_s"] > 5.0:
        print(f"  (the on-disk cache was stale: a warm-up process recompiled for "
              f"{s0['first_s']:.1f} s)")
    w, s = _py(_SIMULATE_CODE)
    print(f"  cartsim.simulate(Scenario()) with warm cache: first call {s['first_s']:.2f} s, "
          f"second {1e3 * s['second_s']:.1f} ms")
    print(f"    (before it: import cartsim {s['import_s']:.3f} s, resolving cartsim.simulate "
          f"{s['attr_s']:.2f} s; whole process {w:.1f} s)")
    if not quick:
        with tempfile.TemporaryDirectory(prefix="cartsim-numba-cache-") as tmp:
            env = {"NUMBA_CACHE_DIR": tmp}
            w1, s1 = _py(_SIMULATE_CODE, env=env)
            w2, s2 = _py(_SIMULATE_CODE, env=env)
        print(f"  empty NUMBA_CACHE_DIR: 1st process first call {s1['first_s']:.2f} s (compile + "
              f"write cache), 2nd process {s2['first_s']:.2f} s (loaded from disk)  "
              f"{'ok' if s2['first_s'] < 0.5 * s1['first_s'] else 'CACHE NOT EFFECTIVE?'}")
        if s1["src"] != s2["src"]:
            print("  (inconclusive: cartsim's kernel/solver sources changed between the two "
                  "processes, which invalidates the cache by design)")
    else:
        print("  (cold-cache compile test skipped in --quick)")

    print()
    print(load_all.report().strip().replace("this part", "the whole run"))
    print(f"total benchmark time {time.perf_counter() - t_all:.0f} s; load average at end "
          f"{os.getloadavg()[0]:.2f}")
    if failures:
        print(f"FAIL: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
