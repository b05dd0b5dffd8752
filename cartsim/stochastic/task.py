"""Command-line task ``cartsim task=simulate engine=stochastic|agent``.

Simulates the scenario ``stochastic.replicates`` times, writes the Dataset (dims
``patient`` x ``replicate`` x ``time``) and prints the derived probabilities with their
exact 95% confidence intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["format_probabilities", "run_stochastic_simulate"]


def format_probabilities(prob, patient: int = 0) -> str:
    """A plain-text table of :func:`~cartsim.stochastic.outcome_probabilities` for one patient."""
    n = int(prob["n_evaluable"].values[patient])
    level = 100.0 * float(prob.attrs.get("confidence_level", 0.95))
    lines = [f"outcome probabilities over {n} completed realisations "
             f"({level:g}% exact Clopper-Pearson CI):",
             f"  {'day':>6}  {'cure':>22}  {'CAR-T loss':>22}  {'relapse':>22}  "
             f"{'CD7- escape':>22}"]
    for j, day in enumerate(np.asarray(prob["day"].values)):
        cells = []
        for key in ("cure", "car_loss", "relapse", "cd7neg_escape"):
            v = prob[f"p_{key}"].values[patient, j]
            lo = prob[f"p_{key}_lo"].values[patient, j]
            hi = prob[f"p_{key}_hi"].values[patient, j]
            cells.append(f"{v:6.3f} [{lo:5.3f}, {hi:5.3f}]")
        lines.append(f"  {day:6g}  " + "  ".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def _relapse_line(ds) -> str:
    rel = np.asarray(ds["relapse_day"].values, dtype=float).reshape(-1)
    ok = np.asarray(ds["status"].values).reshape(-1) == 0
    days = rel[ok & np.isfinite(rel)]
    if days.size == 0:
        return "time to relapse: no relapse in any realisation"
    q = np.quantile(days, [0.25, 0.5, 0.75])
    return (f"time to relapse (days, {days.size} relapses): quartiles {q[0]:g}, {q[1]:g}, "
            f"{q[2]:g}; range {days.min():g}-{days.max():g}")


def run_stochastic_simulate(run_cfg, output_dir: Path) -> None:
    """Task ``simulate`` with ``engine=stochastic`` or ``engine=agent``."""
    from cartsim.io import write_netcdf
    from cartsim.stochastic.engine import simulate_stochastic
    from cartsim.stochastic.outcomes import outcome_probabilities

    opts = run_cfg.stochastic
    ds = simulate_stochastic(run_cfg.scenario(), engine=run_cfg.engine,
                             replicates=opts.replicates, options=opts, replicate_dim=True)
    path = write_netcdf(ds, Path(output_dir) / run_cfg.output_file)
    print(f"cartsim: wrote {path}", flush=True)
    status = np.asarray(ds["status"].values).reshape(-1)
    print(f"cartsim: engine={run_cfg.engine}, {status.size} realisations, "
          f"{int((status != 0).sum())} failed, seed {ds.attrs['seed']}", flush=True)
    prob = outcome_probabilities(ds, opts.report_days)
    print(format_probabilities(prob), flush=True)
    print(_relapse_line(ds), flush=True)
    if run_cfg.engine == "agent":
        last = ds.isel(time=-1)
        print(f"clones alive at day {float(last['time']):g}: median "
              f"{float(last['clones_alive'].median()):g} of {ds.sizes['clone']}; inverse "
              f"Simpson median {float(last['clone_inverse_simpson'].median()):.3g}",
              flush=True)
