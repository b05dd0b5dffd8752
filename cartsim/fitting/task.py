"""``cartsim task=fit``: read ``data``, fit, write the Dataset, the parameter table and plots."""

from __future__ import annotations

import sys
from pathlib import Path

from cartsim.io import write_netcdf, write_text
from cartsim.scenario import ScenarioError

__all__ = ["run_fit_task"]

PLOTS = ("gof_obs_vs_pred", "gof_residuals", "gof_individual")
"""Goodness-of-fit figures written by the task (``<name>.png``), plus one
``vpc_<analyte>.png`` per analyte when ``fit.n_sim > 0`` and ``saem_trace.png`` for a
population fit."""


def run_fit_task(run_cfg, output_dir: Path) -> dict[str, Path]:
    """Task ``fit`` (see :mod:`cartsim.cli`).

    Writes into ``output_dir``: ``fit.nc`` (or ``output_file`` when it is not the
    default ``simulation.nc``): observations vs predictions, residuals, VPC
    replicates and estimates (:func:`cartsim.fitting.results.fit_dataset`);
    ``parameters.csv``; ``fit_summary.txt``; the goodness-of-fit PNGs of
    :data:`PLOTS` and ``vpc_<analyte>.png``. A bad data file or option is printed as
    ``cartsim: error: ...`` with exit code 2.

    Returns
    -------
    dict
        Output name -> path.
    """
    from cartsim.batch import scenario_yaml as _yaml

    try:
        return _run(run_cfg, Path(output_dir), _yaml)
    except ScenarioError as exc:
        print(f"cartsim: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _run(run_cfg, output_dir: Path, to_yaml) -> dict[str, Path]:
    import dataclasses

    import yaml

    from cartsim.fitting.api import fit
    from cartsim.fitting.report import parameter_csv
    from cartsim.fitting.results import fit_dataset

    if run_cfg.data is None:
        raise ScenarioError("task=fit needs data=PATH (a long CSV of observations, see "
                            "cartsim.fitting.data); e.g. data=experiments/data/"
                            "synthetic_cohort.csv")
    opts = run_cfg.fit
    if not opts.parameters:
        raise ScenarioError("fit.parameters is empty: name the parameters to estimate, e.g. "
                            "fit.parameters=[rho_max,delta_e]")
    scenario = run_cfg.scenario()
    result = fit(run_cfg.data, base=scenario, random_state=run_cfg.seed, options=opts)
    config = to_yaml(scenario) + yaml.safe_dump(
        {"data": run_cfg.data, "fit": dataclasses.asdict(opts)}, sort_keys=False)
    ds = fit_dataset(result, n_sim=opts.n_sim, seed=run_cfg.seed, config=config)
    name = "fit.nc" if run_cfg.output_file == "simulation.nc" else run_cfg.output_file
    paths = {"dataset": write_netcdf(ds, output_dir / name),
             "parameters": write_text(parameter_csv(result), output_dir / "parameters.csv")}
    summary = result.summary()
    paths["summary"] = write_text(summary + "\n", output_dir / "fit_summary.txt")
    print(summary, flush=True)
    if opts.plots:
        paths.update(_plots(ds, output_dir))
    for k, p in paths.items():
        print(f"cartsim: wrote {k}: {p}", flush=True)
    return paths


def _plots(ds, output_dir: Path) -> dict[str, Path]:
    from cartsim.plot import gof

    out = {}
    figs = {"gof_obs_vs_pred": gof.plot_gof(ds),
            "gof_residuals": gof.plot_residual_panels(ds),
            "gof_individual": gof.plot_individual_fits(ds)}
    if "saem_trace" in ds:
        figs["saem_trace"] = gof.plot_saem_trace(ds)
    if ds.sizes["replicate"] > 0:
        for a in ds["analyte_name"].values:
            figs[f"vpc_{a}"] = gof.plot_vpc(ds, analyte=str(a))
    from cartsim.io import write_figure

    for name, fig in figs.items():
        path = (output_dir / f"{name}.png").resolve()
        write_figure(fig, path, dpi=110, bbox_inches="tight")  # atomic; a full disk is an error
        out[name] = path
    return out
