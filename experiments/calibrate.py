"""Check (default) or fit (``--fit``) the cd7 defaults against the published trial figures.

Usage::

    .venv/bin/python experiments/calibrate.py [--fit] [--config experiments/calibration.yaml]
                                             [override ...]

Prints one row per target (observed figure, accepted interval, simulated figure) and,
with ``--fit``, the best values found; copy them into ``cartsim/parameters/cd7.py``,
``conf/`` and the population/endpoint defaults to ship them. Extra arguments are Hydra
overrides applied to every trial (e.g. ``+model.params.rho_max=0.7``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from cartsim.calibration import calibrate, evaluate, format_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="search the free values")
    ap.add_argument("--config", default=str(Path(__file__).with_name("calibration.yaml")))
    ap.add_argument("overrides", nargs="*", help="Hydra overrides applied to every trial")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    fixed = [*cfg.get("fixed", []), *args.overrides]
    if args.fit:
        free = {k: tuple(float(x) for x in v) for k, v in cfg["free"].items()}
        best, rows = calibrate(free, replicates=int(cfg["replicates"]),
                               maxiter=int(cfg["maxiter"]), fixed=fixed)
        print("best values:")
        for k, v in best.items():
            print(f"  {k}={v:.4g}")
    else:
        rows = evaluate(fixed, replicates=int(cfg["replicates"]))
    print(format_rows(rows))


if __name__ == "__main__":
    main()
