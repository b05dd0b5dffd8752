"""Benchmark: a 1,000-patient, 2-year virtual trial with every endpoint (target < 10 s warm on
the 2-core machine) and the peak memory of a 10,000-patient trial with daily output (target
< 2 GiB). Run: ``.venv/bin/python benchmarks/trial.py [--n-memory 10000]``."""

from __future__ import annotations

import argparse
import resource
import time

from cartsim import OutputOptions, Scenario
from cartsim.population import PopulationSpec
from cartsim.trial import run_trial


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--n-memory", type=int, default=10000)
    args = ap.parse_args()
    base = Scenario(output=OutputOptions(t_end=730.0))
    run_trial(base, PopulationSpec(n=20), seed=1)  # warm-up: numba cache load, imports
    t = time.perf_counter()
    run_trial(base, PopulationSpec(n=args.n), seed=2)
    dt = time.perf_counter() - t
    print(f"trial {args.n} patients x 2 years, all endpoints: {dt:.2f} s "
          f"(target 10 s: ratio {dt / 10.0:.2f})")
    t = time.perf_counter()
    run_trial(base, PopulationSpec(n=args.n_memory), seed=3)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    print(f"trial {args.n_memory} patients x 2 years: {dt:.1f} s, peak RSS {rss:.2f} GiB "
          f"(target 2 GiB: ratio {rss / 2.0:.2f})")


if __name__ == "__main__":
    main()
