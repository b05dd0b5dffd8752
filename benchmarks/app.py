"""Dosing what-if app (issue 16): time from a control change to updated figures.

For 1, 50 and 200 virtual patients per scenario, two scenarios and one year of follow-up:
change scenario B's CAR-T dose on the app object (as the page does), run, and redraw the value
boxes and figures (what the page shows). Prints a small table; writes nothing.

    .venv/bin/python benchmarks/app.py [--repeats 3] [--patients 1 50 200]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--t-end", type=float, default=365.0)
    args = parser.parse_args()

    from cartsim.app import DosingApp
    from cartsim.app import results as R

    app = DosingApp(n_cohort=2, t_end=args.t_end)
    app.panel()
    t0 = time.perf_counter()
    app.run()  # compiles or loads the cached kernels, composes the presets
    print(f"warm-up (compile/cache load, presets): {time.perf_counter() - t0:.1f} s")
    print(f"{'patients/scenario':>18} {'simulate (s)':>13} {'figures+boxes (s)':>18} "
          f"{'total (s)':>10}")
    for n in args.patients:
        app.n_cohort.value = n
        best = None
        for k in range(args.repeats):
            app.set("B", "regimen.car_dose_per_kg", f"{5e5 * (1 + k % 2):g}")
            t0 = time.perf_counter()
            app.result = R.run_comparison(app.inputs(), **app._options())
            t1 = time.perf_counter()
            app.redraw()
            t2 = time.perf_counter()
            if best is None or t2 - t0 < best[2]:
                best = (t1 - t0, t2 - t1, t2 - t0)
        print(f"{n:>18} {best[0]:>13.2f} {best[1]:>18.2f} {best[2]:>10.2f}")


if __name__ == "__main__":
    main()
