"""Benchmark of cartsim.fitting on real, sparse CAR-T data (issue 17) and synthetic cohorts.

    .venv/bin/python benchmarks/fit.py [--skip-population] [--synthetic [--quick]]

Real data: the 14 B-ALL CD19 CAR-T patients shipped in
``experiments/data/bALL_cart_kinetics/car_t_cells_per_ul.csv`` (CAR-T cells/uL by flow,
values <= 0.2 censored at an LLOQ of 0.2 cells/uL, the pre-infusion sample dropped; source
and conversion in that folder), fitted with ``stein2019`` (6 parameters + residual SD):

1. every individual fit with the defaults (timed, warm) against a thorough reference search
   (``REFERENCE`` starts and local runs, two seeds; the reference optimum is the best -2LL
   of all searches). Prints per patient the -2LL of both, the verdict, and the summary:
   how many default fits reach the reference optimum within 1 unit of -2LL, how many say
   ``converged`` while missing it (target 0), wall time per fit (target < 2 s);
2. SAEM with the estimator's defaults (``n_chains = 3`` restarts from different starts),
   for the models of ``POPULATION``: the spread of the typical values and log-likelihoods
   over the restarts, the verdict with the parameters it names, and the wall and CPU time
   (target < 60 s); then the same on three synthetic twins of the data (same schedules and
   LLOQ, truth ``TWIN``): the verdict and how many true values lie in the 95% intervals.

``--replicates N [--seeds S] [--no-refine] [--n-smooth K]``: SAEM on N re-drawn synthetic
``cd7`` cohorts, S MCMC seeds each (default 2): the empirical SD of the estimates against the
reported standard errors, the Monte Carlo SD of one run, the bias, mean z and coverage of the
95% intervals over the replicates, and the mean omegas; ``--no-refine``: SAEM alone, without
the maximum-likelihood refinement that ODE models get by default.

``--synthetic``: the timings of issue 4 (a 6-parameter ``cd7`` individual fit, target < 2 s;
SAEM on 50 simulated ``cd7`` / ``stein2019`` patients, target < 120 s; ``--quick``: 20), and
SAEM with three restarts on the synthetic ``cd7`` cohort (the shipped draws, simulated by the
current model; the benchmark says whether the shipped file is stale): spread of the restarts
and the true typical values against the 95% intervals.

Each timed line prints the measured time, the target and their ratio (< 1 meets the target).
Nothing is written into the repository.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from cartsim.fitting import ConvergenceWarning, fit, read_observations  # noqa: E402
from cartsim.fitting.population import PopulationFit  # noqa: E402
from cartsim.fitting.synthetic import AssayDesign, simulate_observations  # noqa: E402
from cartsim.parameters.cd7 import CD7_PARAMETERS  # noqa: E402
from cartsim.scenario import ModelConfig, Patient, Regimen, Scenario  # noqa: E402

REAL = (Path(__file__).resolve().parents[1] / "experiments" / "data" / "bALL_cart_kinetics"
        / "car_t_cells_per_ul.csv")
STEIN6 = ["foldx", "Tmax", "Cmax", "alpha", "FB", "beta"]
REFERENCE = {"n_starts": 4096, "n_local": 40, "start_spread": 2.0}
"""The thorough search: 4096 starts over twice the default spread, 40 local runs (x2 seeds)."""

SHIPPED = REAL.parents[1] / "synthetic_cohort.csv"
"""The shipped synthetic ``cd7`` cohort (20 patients; typical values ``TYPICAL``, omegas ``OMEGA``,
``experiments/make_example_data.py``)."""

DESIGN = [AssayDesign("car_copies_per_ug", (1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365),
                      0.5, 50.0),
          AssayDesign("car_cells_per_ul", (7, 14, 28, 90), 0.3, 0.5)]
TYPICAL = {k: CD7_PARAMETERS[k].value for k in ("rho_max", "delta_e", "k_em", "delta_m")}
"""Truth of the shipped cohort: the cd7 defaults it was simulated from
(experiments/make_example_data.py)."""
OMEGA = {"rho_max": 0.25, "delta_e": 0.3, "k_em": 0.4, "delta_m": 0.8}
SIX = ["rho_max", "k_ag", "delta_e", "delta_m", "k_em", "k_kill"]


def report(label: str, seconds: float, target: float, extra: str = "") -> None:
    print(f"{label:<58} {seconds:8.2f} s   target {target:6.1f} s   ratio {seconds / target:5.2f}"
          f"  {extra}", flush=True)


def real_individual(obs) -> None:
    """Default individual fits against the reference search, one line per patient."""
    fit(obs, STEIN6, model="stein2019", patient=obs.ids[0], n_starts=8)  # warm-up
    print(f"{'patient':<8}{'n_q/n':>7}{'-2LL default':>14}{'-2LL ref':>10}{'diff':>8}  "
          f"{'verdict':<16}{'hits':>5}{'time s':>8}{'CPU s':>7}", flush=True)
    times, cpus, reached, false_conv, n_conv = [], [], 0, [], 0
    for pid in obs.ids:
        t0, c0 = time.perf_counter(), time.process_time()
        res = fit(obs, STEIN6, model="stein2019", patient=pid)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        ref = min(-2 * fit(obs, STEIN6, model="stein2019", patient=pid, random_state=seed,
                           **REFERENCE).loglik_ for seed in (1, 2))
        d = -2 * res.loglik_
        ref = min(ref, d)
        ok = d - ref <= 1.0
        reached += ok
        n_conv += res.converged_
        if res.converged_ and not ok:
            false_conv.append(pid)
        print(f"{pid:<8}{int((~res.data_.cens).sum()):>3}/{res.n_obs_:<3}{d:>14.3f}{ref:>10.3f}"
              f"{d - ref:>8.3f}  {res.status_:<16}{res.n_hits_:>5}{times[-1]:>8.2f}"
              f"{cpus[-1]:>7.2f}", flush=True)
    n = len(obs.ids)
    print(f"default fits at the reference optimum (within 1 of -2LL): {reached}/{n}; "
          f"converged: {n_conv}/{n}; converged while missing it: {len(false_conv)} "
          f"{false_conv} (target 0)")
    report(f"individual fit, stein2019, 6 parameters, real data (median of {n})",
           float(np.median(times)), 2.0,
           f"[max {max(times):.2f} s; CPU median {np.median(cpus):.2f} s, max {max(cpus):.2f} s]")
    # on a shared machine the wall time includes waiting for a core; the CPU time does not
    report("individual fit, stein2019, slowest of them (CPU time)", max(cpus), 2.0)


POPULATION = [
    ("6 parameters, random effects on all, defaults", STEIN6, {}),
    ("5 parameters (FB fixed at Stein 2019's 0.0079), defaults",
     ["foldx", "Tmax", "Cmax", "alpha", "beta"], {}),
]
"""SAEM settings benchmarked on the real data: random effects on every parameter, and the fix
its verdict proposes (one of the parameters it names fixed). Run with the estimator's own
defaults (:class:`~cartsim.fitting.population.PopulationFit`), three restarts."""


def saem_runs(res, names) -> None:
    """One line per restart (log-likelihood, MC SE, typical values, residual SD), the standard
    errors of the chosen run, and the spread over the restarts."""
    print(f"{'run':<5}{'loglik':>10}{'MC se':>7}" + "".join(f"{n:>10}" for n in names)
          + f"{'sigma':>8}")
    for k, r in enumerate(res.restarts_):
        print(f"{k:<5}{r['loglik']:>10.2f}{r['loglik_se']:>7.2f}"
              + "".join(f"{r['params'][n]:>10.4g}" for n in names)
              + f"{r['params'][res._resid.names[0]]:>8.3f}" + ("  <- chosen" if r["best"] else ""))
    print(f"{'se (chosen run)':<22}" + "".join(f"{res.se_[n]:>10.3g}" for n in names))
    print(f"log-likelihood spread over restarts: {res.restart_loglik_spread_:.2f}; largest "
          f"spread of a typical value in units of its se: {res.restart_spread_se_:.2f}")


def real_population(obs) -> None:
    """SAEM with its default restarts (3 starts): spread of estimates and log-likelihoods, the
    verdict and the parameters it names; wall and CPU time."""
    PopulationFit(["Cmax"], model="stein2019", n_explore=2, n_smooth=2, n_chains=1,
                  is_samples=0).fit(obs)  # warm-up
    for label, names, kw in POPULATION:
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always", ConvergenceWarning)
            res = PopulationFit(names, model="stein2019", **kw).fit(obs)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"SAEM, {label}: status {res.status_}, start from {res.init_from_} fits")
        saem_runs(res, names)
        for w in rec:
            if issubclass(w.category, ConvergenceWarning):
                print(f"  warning: {w.message}")
        if res.problem_parameters_:
            print(f"  parameters named: {res.problem_parameters_}")
        report(f"population fit (SAEM), {obs.n_patients} real patients, {len(names)} par., "
               f"{len(res.restarts_)} restarts", dt, 60.0, f"[{res.status_}, CPU {cpu:.1f} s]")
        report("  the same, CPU time (the wall time less waiting for a core)", cpu, 60.0)


TWIN = {"foldx": (70.0, 2.0), "Tmax": (7.8, 0.9), "Cmax": (350.0, 1.3), "alpha": (0.16, 0.6),
        "FB": (0.0079, 1.0), "beta": (0.03, 0.8)}
"""Truth of the synthetic twin of the real data: parameter -> (typical value, omega in search
units), about the real data's estimates with FB fixed; residual SD 1.0 (as estimated)."""


def twin_data(obs, seed: int, tmp: Path):
    """A synthetic twin of the real data: the same 14 sampling schedules and LLOQ, patients drawn
    from ``TWIN`` with the ``stein2019`` closed form, log-normal noise (SD 1.0), censored at
    the LLOQ."""
    from cartsim.fitting.transforms import default_transform
    from cartsim.models.stein2019 import closed_form
    from cartsim.parameters.stein2019 import STEIN2019

    rng = np.random.default_rng(seed)
    lloq = float(obs.dv[obs.cens].max())
    lines = ["ID,TIME,DV,ANALYTE,UNIT,LLOQ,CENS"]
    for i, pid in enumerate(obs.ids):
        th = {}
        for n, (typ, om) in TWIN.items():
            spec = STEIN2019[n]
            tf = default_transform(spec.lower, spec.upper)
            th[n] = float(tf.to_model(tf.to_search(typ) + om * rng.standard_normal()))
        th["foldx"] = max(th["foldx"], 1.5)
        th["alpha"] = max(th["alpha"], 1.01 * th["beta"])
        t = obs.time[obs.patient == i]
        y = closed_form(t, STEIN2019.with_values(th).values()) * np.exp(
            rng.standard_normal(t.size))
        for tt, v in zip(t, y):
            cens = v <= lloq
            lines.append(f"{pid},{tt:g},{'' if cens else f'{v:.6g}'},car_cells_per_ul,cells/uL,"
                         f"{lloq:g},{int(cens)}")
    path = tmp / f"twin_{seed}.csv"
    path.write_text("\n".join(lines) + "\n")
    return read_observations(path)


def twin_population(obs) -> None:
    """SAEM (defaults, three restarts) on synthetic twins of the real data (model true, truth
    known): with FB fixed at its true value, and with random effects on all six."""
    with tempfile.TemporaryDirectory() as d:
        for seed in (0, 1, 2):
            twin = twin_data(obs, seed, Path(d))
            for names in ([n for n in STEIN6 if n != "FB"], STEIN6):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    res = PopulationFit(names, model="stein2019").fit(twin)
                inside = [n for n in names if res.ci_[n][0] <= TWIN[n][0] <= res.ci_[n][1]]
                print(f"twin {seed}, {len(names)} parameters: status {res.status_}, restarts "
                      f"within {res.restart_spread_se_:.2f} se and {res.restart_loglik_spread_:.2f}"
                      f" of log-likelihood; truth inside the 95% CI: {len(inside)}/{len(names)}"
                      f"; named: {sorted(res.problem_parameters_)}")


def _current_cohort(seed: int, tmp: Path):
    """The synthetic ``cd7`` cohort of ``experiments/make_example_data.py`` with cohort seed
    ``seed``, simulated by the current model (the shipped file, seed ``SHIPPED_SEED``, is only
    the truth of the model version that wrote it): ``(observations, truth CSV text)``."""
    import sys

    sys.path.insert(0, str(REAL.parents[2]))
    from make_example_data import synthetic_cohort

    data, truth = synthetic_cohort(seed)
    path = tmp / f"cohort_{seed}.csv"
    path.write_text(data)
    return read_observations(path), truth


SHIPPED_SEED = 20261122
"""Seed of the shipped synthetic cohort (experiments/make_example_data.py)."""


def synthetic_recovery(n_smooth: int = 150) -> None:
    """SAEM (three restarts, 100 + ``n_smooth`` iterations: each is a batch of ODE solves) on
    the synthetic ``cd7`` cohort (the shipped design and draws, simulated by the current
    model): the restarts' spread in standard errors and the true typical values
    (``TYPICAL``) inside the 95% intervals."""
    with tempfile.TemporaryDirectory() as d:
        obs, truth = _current_cohort(SHIPPED_SEED, Path(d))
        stale = Path(d, f"cohort_{SHIPPED_SEED}.csv").read_text() != SHIPPED.read_text()
    print(f"shipped synthetic cohort {'differs from' if stale else 'equals'} the current "
          "model's simulation of it" + (" (stale: regenerate it with "
                                        "experiments/make_example_data.py)" if stale else ""))
    names = list(TYPICAL)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always", ConvergenceWarning)
        res = PopulationFit(names, n_explore=100, n_smooth=n_smooth).fit(obs)
    dt = time.perf_counter() - t0
    print(f"SAEM, shipped synthetic cd7 cohort ({obs.n_patients} patients), {len(names)} "
          f"parameters: status {res.status_}")
    saem_runs(res, names)
    for w in rec:
        if issubclass(w.category, ConvergenceWarning):
            print(f"  warning: {w.message}")
    sample = _sample_typical(names, truth)
    inside = 0
    for n in names:
        lo, hi = res.ci_[n]
        ok = lo <= TYPICAL[n] <= hi
        inside += ok
        print(f"  {n:<8} true {TYPICAL[n]:<8.4g} estimate {res.params_[n]:<8.4g} "
              f"95% CI [{lo:.4g}, {hi:.4g}] {'inside' if ok else 'OUTSIDE'}; geometric mean of "
              f"the 20 drawn patients {sample[n]:.4g} "
              f"({'inside' if lo <= sample[n] <= hi else 'outside'})")
    report(f"population fit (SAEM), cd7, shipped cohort, {len(names)} par., "
           f"{len(res.restarts_)} restarts", dt, 120.0 * obs.n_patients / 50,
           f"[{res.status_}, truth inside 95% CI {inside}/{len(names)}]")


def _sample_typical(names, truth: str) -> dict[str, float]:
    """Geometric mean of each parameter over the patients actually drawn for the cohort
    (``truth``, the text of ``synthetic_cohort_truth.csv``): the typical value of this sample
    (it differs from ``TYPICAL`` by about omega / sqrt(20))."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(truth)))
    out = {}
    for n in names:
        col = next(k for k in rows[0] if k.split(" [")[0] == n)
        out[n] = float(np.exp(np.mean([np.log(float(r[col])) for r in rows])))
    return out


def synthetic_replicates(n_rep: int, n_smooth: int = 150, refine: bool = True,
                         seeds: int = 2) -> None:
    """Standard errors against the truth: SAEM (one run, 100 + ``n_smooth`` iterations, the
    default importance samples, ``seeds`` MCMC seeds; ``refine``: with the maximum-likelihood
    refinement of ODE models, else SAEM alone) on ``n_rep`` re-drawn 20-patient ``cd7``
    cohorts (cohort seeds 1..n_rep, the shipped design). Per typical value (search units): the
    empirical SD of the estimates over the cohorts against the mean reported SE, the Monte
    Carlo SD of one run (from the difference of two seeds on the same data), the bias, the
    mean z, how many 95% intervals hold the population value (coverage judged over the
    replicates, not one draw), and the mean omega against its true value."""
    from cartsim.fitting.transforms import default_transform

    names = list(TYPICAL)
    tfs = [default_transform(CD7_PARAMETERS[n].lower, CD7_PARAMETERS[n].upper) for n in names]
    truth = np.array([t.to_search(TYPICAL[n]) for t, n in zip(tfs, names)])
    mus, ses, oms, diffs, times, cpus = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        for seed in range(1, n_rep + 1):
            obs, _ = _current_cohort(seed, Path(d))
            runs = []
            for ms in range(1, seeds + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                res = PopulationFit(names, n_explore=100, n_smooth=n_smooth, n_chains=1,
                                    refine=refine, random_state=ms).fit(obs)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                runs.append(res)
                mus.append(res.mu_)
                ses.append(res.mu_se_)
                oms.append(np.sqrt(res.omega2_))
                z = (res.mu_ - truth) / res.mu_se_
                print(f"  cohort {seed} seed {ms}: z {np.round(z, 2)}, omega "
                      f"{np.round(oms[-1], 3)}, refined {res.restarts_[0]['refined']}, "
                      f"{times[-1]:.0f} s wall, {cpus[-1]:.0f} s CPU", flush=True)
            if seeds > 1:
                diffs.append(runs[0].mu_ - runs[1].mu_)
    mus, ses, oms = np.array(mus), np.array(ses), np.array(oms)
    per_cohort = mus.reshape(n_rep, seeds, -1).mean(axis=1)
    mc = (np.sqrt(np.mean(np.array(diffs) ** 2, axis=0) / 2) if diffs
          else np.full(len(names), np.nan))
    om_true = np.array([OMEGA[n] for n in names])
    print(f"SAEM{' + ML refinement' if refine else ''} on {n_rep} re-drawn cd7 cohorts x "
          f"{seeds} MCMC seeds ({np.mean(times):.0f} s wall, {np.mean(cpus):.0f} s CPU per run)")
    print(f"{'':10}{'emp SD':>9}{'mean SE':>9}{'MC SD':>8}{'MC/SE':>7}{'bias':>8}{'mean z':>8}"
          f"{'cover':>9}{'omega':>8}{'true':>6}")
    for j, n in enumerate(names):
        cover = int(np.sum(np.abs(mus[:, j] - truth[j]) <= 1.959964 * ses[:, j]))
        emp = per_cohort[:, j].std(ddof=1) if n_rep > 1 else math.nan
        print(f"{n:10}{emp:9.4f}{ses[:, j].mean():9.4f}{mc[j]:8.4f}"
              f"{mc[j] / ses[:, j].mean():7.2f}{per_cohort[:, j].mean() - truth[j]:8.4f}"
              f"{np.mean((mus[:, j] - truth[j]) / ses[:, j]):8.2f}"
              f"{cover:>5}/{mus.shape[0]}{oms[:, j].mean():8.3f}{om_true[j]:6.2f}")


def cohort(n: int, model: str, seed: int, tmp: Path):
    rng = np.random.default_rng(seed)
    scs = [Scenario(model=ModelConfig(name=model),
                    patient=Patient(weight_kg=float(rng.uniform(45, 95)),
                                    marrow_blast_pct=float(rng.uniform(5, 80))),
                    regimen=Regimen(car_dose_per_kg=float(rng.choice([5e5, 1e6, 2e6]))))
              for _ in range(n)]
    if model == "cd7":
        typ, om, design = TYPICAL, OMEGA, DESIGN
    else:
        typ = {"Tmax": 9.3, "Cmax": 24000.0, "alpha": 0.16, "beta": 0.0032}
        om = {"Tmax": 0.3, "Cmax": 0.6, "alpha": 0.5, "beta": 0.5}
        design = DESIGN[:1]
    sd = simulate_observations(scs, typ, om, design, seed=seed + 1)
    path = tmp / f"{model}_{n}.csv"
    path.write_text(sd.to_csv())
    return read_observations(path), list(typ)


def synthetic(quick: bool, skip_population: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        obs, _ = cohort(3, "cd7", 7, tmp)
        one = obs.select("P002")
        fit(one, SIX, n_starts=2)  # warm-up: kernels loaded, caches filled
        times, res = [], None
        for _ in range(3):
            t0 = time.perf_counter()
            res = fit(one, SIX)
            times.append(time.perf_counter() - t0)
        report(f"individual fit, cd7, 6 parameters, {one.dv.size} obs (median of 3)",
               float(np.median(times)), 2.0,
               f"[{res.status_}, {res._obj.nfev} solves, incl. SE]")
        if skip_population:
            return
        n = 20 if quick else 50
        target = 120.0 * n / 50
        for model in ("cd7", "stein2019"):
            obs, names = cohort(n, model, 11, tmp)
            t0 = time.perf_counter()
            res = fit(obs, names, model=model, method="population")
            dt = time.perf_counter() - t0
            report(f"population fit (SAEM), {model}, {n} patients, {len(names)} parameters",
                   dt, target, f"[{res.status_}, {obs.dv.size} obs]")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true", help="the cd7/stein2019 timings")
    ap.add_argument("--quick", action="store_true", help="with --synthetic: 20 patients")
    ap.add_argument("--skip-population", action="store_true")
    ap.add_argument("--skip-individual", action="store_true")
    ap.add_argument("--replicates", type=int, default=0,
                    help="SE against the spread over this many re-drawn cd7 cohorts")
    ap.add_argument("--no-refine", action="store_true",
                    help="with --replicates: SAEM alone, without the maximum-likelihood refinement")
    ap.add_argument("--seeds", type=int, default=2,
                    help="with --replicates: MCMC seeds per cohort (2: also the Monte Carlo SD)")
    ap.add_argument("--n-smooth", type=int, default=150,
                    help="SAEM smoothing iterations of the synthetic cd7 runs (default 150: "
                         "with 50 one run's Monte Carlo SD of k_em was 0.66 standard errors)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.replicates:
        synthetic_replicates(args.replicates, args.n_smooth, not args.no_refine, args.seeds)
        return
    if args.synthetic:
        synthetic(args.quick, args.skip_population)
        if not args.skip_population:
            synthetic_recovery(args.n_smooth)
        return
    obs = read_observations(REAL)
    if not args.skip_individual:
        real_individual(obs)
    if not args.skip_population:
        real_population(obs)
        twin_population(obs)


if __name__ == "__main__":
    main()
