"""Benchmark: the overhead per job of a trial and of a sweep split into shards (``cartsim.shard``).

The same trial (default 2,000 patients, 2 years, daily output) runs through the command
line as one job, then as ``N`` shard jobs (default 4) and the gather; then the same for a
sweep (default a 2,000-point Latin hypercube over dose and marrow blasts, one patient per
point, one year, chunks of 250 points: 8 chunks, 2 per shard). Every job is a fresh
``cartsim`` process run one after another, as a cluster's array tasks each start one, so the
sum of the shard jobs' walls is their total cost whatever the machine's cores:

    overhead per job = (sum of the N shard jobs' walls + the gather's wall
                        - the one job's wall) / N

i.e. what each extra job costs beyond its share of the work: a process start with its
imports and numba cache load, for a trial the cohort's vectorised draw of all ``n``
patients (each shard draws the whole sequence and builds only its own scenarios), for a
sweep the listing of every point, writing and reading its part, and its share of the
gather. The gathered result is checked identical to the one job's (a sweep's ``created``
and ``chunk_dir`` stamps aside).

Run: ``.venv/bin/python benchmarks/shard.py [--n 2000] [--shards 4] [--t-end 730]
[--sweep-points 2000] [--only trial|sweep]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _job(args: list[str], cwd: Path) -> float:
    """Wall seconds of one ``cartsim`` process (its output discarded; a failure is fatal)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cartsim.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"cartsim {' '.join(args)} failed (exit {proc.returncode}):\n"
                 f"{proc.stderr[-2000:]}")
    return wall


def _same(a_path: Path, b_path: Path, stamps=()) -> bool:
    """The two result files hold identical Datasets, attributes ``stamps`` aside."""
    import xarray as xr

    with xr.open_dataset(a_path, engine="h5netcdf") as a, \
            xr.open_dataset(b_path, engine="h5netcdf") as b:
        a, b = a.load(), b.load()
    for key in stamps:
        b.attrs[key] = a.attrs.get(key)
    return a.identical(b)


def _overhead(label: str, args: list[str], shards: int, tmp: Path, result: str,
              stamps=()) -> bool:
    """One job, ``shards`` shard jobs and the gather of ``args``; prints the overhead line."""
    tmp.mkdir(parents=True, exist_ok=True)
    one = _job([*args, f"hydra.run.dir={tmp / 'one'}"], tmp)
    run = tmp / "sharded"
    shard = [*args, f"shard.count={shards}", f"shard.dir={run}", "shard.gather=false"]
    walls = [_job([*shard, f"shard.index={i}", f"hydra.run.dir={tmp / f'job{i}'}"], tmp)
             for i in range(shards)]
    gather = _job([*shard, f"hydra.run.dir={tmp / 'gather'}"], tmp)
    same = _same(tmp / "one" / result, run / result, stamps)
    total = sum(walls) + gather
    per_job = (total - one) / shards
    print(f"shard overhead: {label}, one job {one:.1f} s; {shards} shard jobs "
          f"{sum(walls):.1f} s (each {min(walls):.1f}-{max(walls):.1f} s) + gather "
          f"{gather:.1f} s = {total:.1f} s; overhead {per_job:.2f} s per shard job "
          f"({100 * per_job / one:.1f}% of the one job); gathered result identical to the "
          f"one job: {same}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
          flush=True)
    return same


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="patients of the trial")
    ap.add_argument("--shards", type=int, default=4, help="shard jobs")
    ap.add_argument("--t-end", type=float, default=730.0, help="trial follow-up, days")
    ap.add_argument("--sweep-points", type=int, default=2000,
                    help="points of the sweep (one patient each, one year)")
    ap.add_argument("--only", choices=("trial", "sweep"), default=None,
                    help="run one of the two benchmarks")
    args = ap.parse_args()

    trial = ["task=trial", f"population.n={args.n}", f"output.t_end={args.t_end:g}"]
    # 8 chunks: each of 4 shards computes 2 (the chunk, not the point, is the unit of work)
    sweep = ["task=sweep", "sweep.method=lhs", f"sweep.n_samples={args.sweep_points}",
             f"sweep.chunk_size={max(1, args.sweep_points // 8)}",
             "sweep.axes=[{name: regimen.car_dose_per_kg, space: logspace, start: 1e5, "
             "stop: 1e7}, {name: patient.marrow_blast_pct, space: linspace, start: 5, "
             "stop: 80}]"]
    ok = True
    with tempfile.TemporaryDirectory(prefix="cartsim-bench-shard-") as tmp:
        tmp = Path(tmp)
        _job([*trial, "population.n=20", f"hydra.run.dir={tmp / 'warm'}"], tmp)  # numba cache
        if args.only in (None, "trial"):
            ok &= _overhead(f"trial of {args.n:,} patients x {args.t_end:g} days", trial,
                            args.shards, tmp / "trial", "trial_endpoints.nc")
        if args.only in (None, "sweep"):
            ok &= _overhead(f"sweep of {args.sweep_points:,} points x 365 days (lhs, "
                            f"chunks of {max(1, args.sweep_points // 8)})", sweep, args.shards,
                            tmp / "sweep", "sweep.nc", stamps=("created", "chunk_dir"))
    if not ok:
        sys.exit("a gathered result differs from the one job's")


if __name__ == "__main__":
    main()
