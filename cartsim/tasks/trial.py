"""Task ``trial``: a virtual cohort -> endpoints -> the trial's files and printed table."""

from __future__ import annotations

from pathlib import Path

from cartsim.tasks.common import check_some_solved, engine_simulator

__all__ = ["run_trial_task", "write_trial_result"]


def run_trial_task(run_cfg, output_dir: Path) -> None:
    """Task ``trial``: simulate a virtual cohort, compute every endpoint, write the report.

    With ``engine=stochastic`` or ``engine=agent`` each virtual patient is one stochastic
    realisation (stream = the patient's index, so chunking does not change the result).
    With ``trial.ensemble`` the trial also runs at the calibration ensemble's members and
    writes ``trial_summary_uncertainty.csv``; with ``trial.html_report=true`` also
    ``report.html`` (the trajectories it shows as ``task=report`` chooses them). With
    ``shard.count > 1``, ``cartsim.cli`` runs :func:`cartsim.tasks.shard.run_trial_shard_task`
    instead (one shard, or the gather of the parts).
    """
    from cartsim.trial import run_trial

    opts = run_cfg.trial
    if opts.ensemble is None:
        result = run_trial(run_cfg.scenario(), run_cfg.population, run_cfg.endpoints,
                           options=opts, simulate_fn=engine_simulator(run_cfg))
        uncertainty = None
    else:
        from cartsim.trial import read_members, trial_with_ensemble

        result, uncertainty = trial_with_ensemble(
            run_cfg.scenario(), run_cfg.population, run_cfg.endpoints,
            read_members(opts.ensemble), k=opts.ensemble_members, options=opts,
            simulate_fn=engine_simulator(run_cfg))
    write_trial_result(result, run_cfg, output_dir, uncertainty)


def write_trial_result(result, run_cfg, output_dir: Path, uncertainty=None) -> None:
    """Write a trial's files into ``output_dir``, print its results table and the paths."""
    from cartsim.report import format_trial_summary
    from cartsim.reporting import write_trial

    result.endpoints.attrs["engine"] = run_cfg.engine
    trajectories = None
    if result.html_report:
        from cartsim.tasks.report import report_trajectories

        trajectories = report_trajectories(result)
    paths = write_trial(result, output_dir, trajectories=trajectories)
    print(format_trial_summary(result.summary()), flush=True)
    if uncertainty is not None:
        from cartsim.reporting.files import format_uncertainty, write_uncertainty_table

        paths["uncertainty"] = write_uncertainty_table(uncertainty, output_dir)
        print(format_uncertainty(uncertainty), flush=True)
    for name, path in paths.items():
        print(f"cartsim: wrote {name}: {path}", flush=True)
    check_some_solved(result.endpoints, paths.get("endpoints", output_dir))
