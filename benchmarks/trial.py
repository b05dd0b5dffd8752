"""Benchmark: a 1,000-patient, 2-year virtual trial with every endpoint (target < 10 s warm on
the 2-core machine), and the peak memory of 2-year trials with daily output, each measured in
a fresh process through the whole task (cohort, simulation in chunks of 1,000, endpoints,
summary, Kaplan-Meier, report files): 10,000 patients, and with ``--large`` 100,000 (target
< 2 GB; about 10-15 minutes on the 2-core machine, so it is not run by default).

Run: ``.venv/bin/python benchmarks/trial.py [--n 1000] [--n-memory 10000] [--large]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

GB = 1e9
TARGET_GB = 2.0


def _trial(n: int, seed: int, out_dir=None) -> tuple[float, int]:
    """Run (and write, if ``out_dir``) a 2-year trial of ``n`` patients; seconds taken and
    the number of failed solves (a benchmark of failures would measure nothing)."""
    from cartsim import OutputOptions, Scenario
    from cartsim.population import PopulationSpec
    from cartsim.trial import run_trial

    base = Scenario(output=OutputOptions(t_end=730.0))
    t = time.perf_counter()
    result = run_trial(base, PopulationSpec(n=n), seed=seed)
    result.summary()
    if out_dir is not None:
        from cartsim.reporting import write_trial

        write_trial(result, out_dir)
    return time.perf_counter() - t, int((result.endpoints["status"].values != 0).sum())


def _child(n: int) -> None:
    """In a fresh process: one trial of ``n`` patients; prints JSON with time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="cartsim-bench-") as out:
        dt, failed = _trial(n, seed=3, out_dir=out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB -> bytes
    print(json.dumps({"n": n, "seconds": dt, "peak_bytes": peak, "failed": failed}))


def _memory(n: int) -> None:
    from cartsim.budget import trial_memory

    proc = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        print(f"trial {n} patients x 2 years: FAILED (exit {proc.returncode})\n"
              f"{proc.stderr[-2000:]}")
        return
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = r["peak_bytes"] / GB
    estimate = trial_memory(n, 736, 1000) / GB
    print(f"trial {n:,} patients x 2 years ({r['failed']} failed solves), whole task in a "
          f"fresh process: {r['seconds']:.1f} s, peak RSS {peak:.2f} GB (target {TARGET_GB:g} "
          f"GB: ratio {peak / TARGET_GB:.2f}; cartsim.budget estimate {estimate:.2f} GB)",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="patients of the timed trial")
    ap.add_argument("--n-memory", type=int, default=10000,
                    help="patients of the memory measurement (0: skip)")
    ap.add_argument("--large", action="store_true",
                    help="also measure 100,000 patients (~10-15 min on 2 cores)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    _trial(20, seed=1)  # warm-up: numba cache load, imports
    dt, failed = _trial(args.n, seed=2)
    print(f"trial {args.n} patients x 2 years ({failed} failed solves), all endpoints: {dt:.2f} s "
          f"(target 10 s: ratio {dt / 10.0:.2f})", flush=True)
    for n in ([args.n_memory] if args.n_memory else []) + ([100_000] if args.large else []):
        _memory(n)


if __name__ == "__main__":
    main()
