"""Benchmark: a dense in-job sweep of the single-patient model against a Hydra multirun.

Issue 5's target: a 100,000-point sweep of the single-patient model (daily output over one
year, endpoints only kept) in under 60 s on the 2-core machine with memory bounded by
chunking; and the same 1,000 points as a Hydra multirun (basic launcher), with the ratio.

    python benchmarks/sweep.py                        # 100,000 points + 1,000-job multirun
    python benchmarks/sweep.py --points 5000 --multirun-points 40   # a quick look

Prints the wall time, the time split (compiled solve, model building and Dataset assembly
inside ``simulate``, endpoints, the rest of the sweep's Python), the peak RSS against the
memory the full time-resolved result would need, and the multirun ratio (per point).
Never a timed unit test: speed targets live here (STYLE.md habit 10).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET_S = 60.0
"""Issue 5: 100,000 points in under 60 s on 2 cores."""


class Timer:
    """Accumulate the wall time of calls to a wrapped function."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def in_job(n_points: int, chunk_size: int, seed: int = 0, method: str = "auto") -> dict:
    """Run an LHS sweep of ``n_points`` over dose x burden; return timings."""
    import cartsim.clinical
    import cartsim.simulation as sim
    from cartsim.scenario import Scenario, SolverOptions
    from cartsim.sweep import SweepAxis, SweepSpec, run_sweep

    spec = SweepSpec(method="lhs", n_samples=n_points, chunk_size=chunk_size,
                     axes=[SweepAxis("regimen.car_dose_per_kg", space="logspace", start=1e5,
                                     stop=1e7),
                           SweepAxis("patient.marrow_blast_pct", space="logspace", start=1.0,
                                     stop=90.0)])
    base = Scenario(solver=SolverOptions(method=method))
    run_sweep(base, SweepSpec(endpoints=spec.endpoints))  # warm-up: load compiled kernels
    # the sweep's own pipeline (no simulate_fn hook): the solve of chunk k runs in a worker
    # thread while this thread builds chunk k+1 and reduces chunk k-1, so the parts overlap
    solve = Timer(sim.solve_problems)
    prepare = Timer(sim.prepare)
    finish = Timer(sim.finish)
    ep = Timer(cartsim.clinical.endpoints)
    saved = (sim.solve_problems, sim.prepare, sim.finish, cartsim.clinical.endpoints)
    sim.solve_problems, sim.prepare, sim.finish, cartsim.clinical.endpoints = \
        solve, prepare, finish, ep
    try:
        t0 = time.perf_counter()
        ds = run_sweep(base, spec, seed=seed)
        wall = time.perf_counter() - t0
    finally:
        sim.solve_problems, sim.prepare, sim.finish, cartsim.clinical.endpoints = saved
    return {"wall": wall, "solve": solve.seconds, "prepare": prepare.seconds,
            "finish": finish.seconds, "endpoints": ep.seconds, "chunks": solve.calls,
            "ds": ds}


def multirun(n_jobs: int) -> float:
    """Wall time of the same kind of points as ``n_jobs`` Hydra jobs (basic launcher)."""
    doses = ",".join(f"{d:.6g}" for d in np.logspace(5, 7, n_jobs))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "cartsim.cli", "-m", "task=sweep",
               f"regimen.car_dose_per_kg={doses}", f"hydra.sweep.dir={tmp}/mr"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000, help="in-job sweep points")
    ap.add_argument("--method", default="auto",
                    help="solver.method of the swept scenario (auto = the model's, rodas4)")
    ap.add_argument("--chunk-size", type=int, default=1000, help="patients per batch")
    ap.add_argument("--multirun-points", type=int, default=1000,
                    help="jobs of the Hydra multirun (0 = skip)")
    args = ap.parse_args(argv)

    import numba

    print(f"cores: {os.cpu_count()}, numba threads: {numba.get_num_threads()}")
    r = in_job(args.points, args.chunk_size, method=args.method)
    n, wall = args.points, r["wall"]
    print(f"in-job sweep: {n} points (LHS dose x burden, days -5..365 daily, endpoints only), "
          f"chunk {args.chunk_size} -> {r['chunks']} batches")
    print(f"  wall {wall:.1f} s = {1e3 * wall / n:.3f} ms/point; "
          f"extrapolated to 100,000 points: {wall / n * 1e5:.0f} s "
          f"= {wall / n * 1e5 / TARGET_S:.1f} x the {TARGET_S:.0f} s target")
    python = r["prepare"] + r["finish"] + r["endpoints"]
    print("  time in each part (the compiled solve overlaps the Python parts, which run "
          "in the main thread while it integrates; shares of the wall time):")
    for label, t in (("compiled solve, worker thread (solve_problems)", r["solve"]),
                     ("model.build (prepare)", r["prepare"]),
                     ("Dataset assembly (finish)", r["finish"]),
                     ("endpoints (cartsim.endpoints)", r["endpoints"])):
        print(f"    {label:56s} {t:8.1f} s  {100 * t / wall:5.1f}%  "
              f"{1e3 * t / n:.3f} ms/point")
    print(f"    rest of the sweep's Python (points, summaries, chunk files, waiting) "
          f"{max(wall - python, 0.0):.1f} s")
    ds = r["ds"]
    print(f"  status: {ds.attrs['n_failed']} failed, {ds.attrs['n_missing']} missing")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n_vars, n_t = 41, 371
    full = n * n_t * n_vars * 8 / 2**20
    print(f"  peak RSS {peak:.0f} MiB (the full time-resolved result would need "
          f"{full:.0f} MiB: {n_vars} variables x {n_t} times x 8 B per point)")
    if args.multirun_points:
        m = args.multirun_points
        t_mr = multirun(m)
        per_job = t_mr / m
        print(f"Hydra multirun, basic launcher: {m} jobs in {t_mr:.1f} s = "
              f"{1e3 * per_job:.0f} ms/job")
        print(f"  ratio multirun / in-job per point: {per_job / (wall / n):.0f}x "
              f"(1,000 points: multirun ~{per_job * 1000:.0f} s vs in-job "
              f"~{wall / n * 1000:.1f} s)")


if __name__ == "__main__":
    main()
