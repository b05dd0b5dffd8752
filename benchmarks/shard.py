"""Benchmark: the overhead per job of a trial split into shards (``cartsim.shard``).

The same trial (default 2,000 patients, 2 years, daily output) runs through the command
line as one job, then as ``N`` shard jobs (default 4) and the gather. Every job is a fresh
``cartsim`` process run one after another, as a cluster's array tasks each start one, so the
sum of the shard jobs' walls is their total cost whatever the machine's cores:

    overhead per job = (sum of the N shard jobs' walls + the gather's wall
                        - the one job's wall) / N

i.e. what each extra job costs beyond its share of the work: a process start with its
imports and numba cache load, the cohort's vectorised draw of all ``n`` patients (each shard
draws the whole sequence and builds only its own scenarios), writing and reading its part,
and its share of the gather. The gathered endpoints are checked identical to the one job's.

Run: ``.venv/bin/python benchmarks/shard.py [--n 2000] [--shards 4] [--t-end 730]``.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="patients of the trial")
    ap.add_argument("--shards", type=int, default=4, help="shard jobs")
    ap.add_argument("--t-end", type=float, default=730.0, help="follow-up, days")
    args = ap.parse_args()
    import xarray as xr

    trial = ["task=trial", f"population.n={args.n}", f"output.t_end={args.t_end:g}"]
    with tempfile.TemporaryDirectory(prefix="cartsim-bench-shard-") as tmp:
        tmp = Path(tmp)
        _job([*trial, "population.n=20", f"hydra.run.dir={tmp / 'warm'}"], tmp)  # numba cache
        one = _job([*trial, f"hydra.run.dir={tmp / 'one'}"], tmp)
        run = tmp / "sharded"
        shard = [*trial, f"shard.count={args.shards}", f"shard.dir={run}", "shard.gather=false"]
        walls = [_job([*shard, f"shard.index={i}", f"hydra.run.dir={tmp / f'job{i}'}"], tmp)
                 for i in range(args.shards)]
        gather = _job([*shard, f"hydra.run.dir={tmp / 'gather'}"], tmp)
        with xr.open_dataset(tmp / "one" / "trial_endpoints.nc", engine="h5netcdf") as a, \
                xr.open_dataset(run / "trial_endpoints.nc", engine="h5netcdf") as b:
            same = a.load().identical(b.load())
    total = sum(walls) + gather
    per_job = (total - one) / args.shards
    print(f"shard overhead: trial of {args.n:,} patients x {args.t_end:g} days, one job "
          f"{one:.1f} s; {args.shards} shard jobs {sum(walls):.1f} s (each "
          f"{min(walls):.1f}-{max(walls):.1f} s) + gather {gather:.1f} s = {total:.1f} s; "
          f"overhead {per_job:.2f} s per shard job ({100 * per_job / one:.1f}% of the one "
          f"job); gathered result identical to the one job: {same}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if not same:
        sys.exit("the gathered trial differs from the one job's")


if __name__ == "__main__":
    main()
