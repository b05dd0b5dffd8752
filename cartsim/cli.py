"""The ``cartsim`` command: a Hydra app that runs one task on one composed config.

Examples::

    cartsim                            # default scenario -> outputs/<date>/<time>/simulation.nc
    cartsim product=ko patient.marrow_blast_pct=80
    cartsim -m regimen.car_dose_per_kg=1e5,1e6,1e7   # 3 jobs, one file each, in multirun/
    cartsim +experiment=high_burden_ko
    cartsim --cfg job                  # print the composed config, run nothing
    cartsim task=trial population.n=200 product=ns7car   # a virtual trial and its report

Keys and types are checked by Hydra when the config is composed (its own error
message, exit code 1); values are checked when the config becomes a
:class:`~cartsim.scenario.Scenario`, and a :class:`~cartsim.scenario.ScenarioError`
is printed as ``cartsim: error: <message>`` with exit code 2.

Tasks live in :data:`TASKS`, a name -> ``function(run_cfg, output_dir)`` registry;
``task=NAME`` picks one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cartsim.config import ConfigError, RunConfig, conf_dir, register_configs, to_run_config
from cartsim.io import write_netcdf, write_text
from cartsim.scenario import ScenarioError

__all__ = ["TASKS", "engine_simulator", "main", "run_simulate", "run_trial_task",
           "write_netcdf"]

EXIT_USAGE = 2
"""Exit code for a rejected configuration value (as argparse uses for usage errors)."""


def run_simulate(run_cfg: RunConfig, output_dir: Path) -> None:
    """Task ``simulate``: simulate the scenario, write the Dataset, print its path and a summary.

    With ``engine=stochastic`` or ``engine=agent`` the stochastic engine simulates
    ``stochastic.replicates`` realisations and prints outcome probabilities instead.
    """
    if run_cfg.engine != "ode":
        from cartsim.stochastic.task import run_stochastic_simulate

        run_stochastic_simulate(run_cfg, output_dir)
        return
    # lazily: numba kernels and the model load only when a simulation runs
    from cartsim.simulation import simulate
    from cartsim.summary import format_summary

    ds = simulate(run_cfg.scenario())
    path = write_netcdf(ds, Path(output_dir) / run_cfg.output_file)
    print(f"cartsim: wrote {path}", flush=True)
    print(format_summary(ds), flush=True)


def run_trial_task(run_cfg: RunConfig, output_dir: Path) -> None:
    """Task ``trial``: simulate a virtual cohort, compute every endpoint, write the report.

    With ``engine=stochastic`` or ``engine=agent`` each virtual patient is one stochastic
    realisation (stream = the patient's index, so chunking does not change the result).
    """
    from cartsim.report import format_trial_summary
    from cartsim.trial import run_trial

    opts = run_cfg.trial
    if opts.ensemble is None:
        result = run_trial(run_cfg.scenario(), run_cfg.population, run_cfg.endpoints,
                           options=opts, simulate_fn=engine_simulator(run_cfg))
        uncertainty = None
    else:
        from cartsim.reporting.files import format_uncertainty, write_uncertainty_table
        from cartsim.trial import read_members, trial_with_ensemble

        result, uncertainty = trial_with_ensemble(
            run_cfg.scenario(), run_cfg.population, run_cfg.endpoints,
            read_members(opts.ensemble), k=opts.ensemble_members, options=opts,
            simulate_fn=engine_simulator(run_cfg))
    result.endpoints.attrs["engine"] = run_cfg.engine
    paths = result.write(output_dir)
    print(format_trial_summary(result.summary()), flush=True)
    if uncertainty is not None:
        paths["uncertainty"] = write_uncertainty_table(uncertainty, output_dir)
        print(format_uncertainty(uncertainty), flush=True)
    for name, path in paths.items():
        print(f"cartsim: wrote {name}: {path}", flush=True)


def engine_simulator(run_cfg: RunConfig):
    """The ``simulate_fn(scenarios, start)`` of ``run_cfg.engine`` for cohorts and sweeps
    (:func:`cartsim.stochastic.trial_simulator`), or None for the ODE."""
    if run_cfg.engine == "ode":
        return None
    from cartsim.stochastic import trial_simulator

    return trial_simulator(run_cfg.engine, run_cfg.stochastic)


def _lazy_task(module: str, name: str) -> Callable[[RunConfig, Path], None]:
    """A task that imports its implementation only when it runs (keeps start-up light)."""

    def task(run_cfg: RunConfig, output_dir: Path) -> None:
        import importlib

        getattr(importlib.import_module(module), name)(run_cfg, output_dir)

    task.__name__ = name
    task.__doc__ = f"Task implemented by ``{module}.{name}``."
    return task


TASKS: dict[str, Callable[[RunConfig, Path], None]] = {
    "simulate": run_simulate,
    "trial": run_trial_task,
    "fit": _lazy_task("cartsim.fitting.task", "run_fit_task"),
    "sweep": _lazy_task("cartsim.sweep.task", "run_sweep_task"),
    "sensitivity": _lazy_task("cartsim.sweep.task", "run_sensitivity_task"),
    "report": _lazy_task("cartsim.reporting.html", "run_report_task"),
}
"""Task registry: ``task=NAME`` runs ``TASKS[NAME](run_cfg, output_dir)``."""


def _fail(message: str) -> NoReturn:
    print(f"cartsim: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def _app(cfg: DictConfig) -> None:
    """Body of the Hydra app: validate the composed config, then run its task."""
    task_name = cfg.get("task")
    if task_name not in TASKS:
        _fail(f"task={task_name!r} is not accepted: expected one of {', '.join(TASKS)}")
    try:
        run_cfg = to_run_config(cfg)
    except ScenarioError as exc:
        _fail(str(exc))
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    multirun = hc.mode == RunMode.MULTIRUN
    key = job_key(list(hc.overrides.task)) if multirun else None
    if multirun and job_done(output_dir, key):
        print(f"cartsim: job {hc.job.num} ({', '.join(hc.overrides.task) or 'no overrides'}) "
              f"already complete in {output_dir}: skipped", flush=True)
        return
    TASKS[task_name](run_cfg, output_dir)
    if multirun:
        mark_done(output_dir, key)


DONE_MARKER = ".cartsim_done"
"""File a multirun job writes (atomically) into its output directory after its task has
completed; it holds the job's overrides. Re-running the same multirun (same
``hydra.sweep.dir``) skips every job whose marker matches, so an interrupted sweep resumes
where it stopped and a job that crashed or was killed is run again."""


def job_key(overrides: list[str]) -> str:
    """What identifies a multirun job: its task overrides (one per line)."""
    return "\n".join(overrides) + "\n"


def job_done(output_dir: Path, key: str) -> bool:
    """True when ``output_dir`` holds the completion marker of the job ``key``."""
    marker = Path(output_dir) / DONE_MARKER
    try:
        return marker.read_text() == key
    except OSError:
        return False


def mark_done(output_dir: Path, key: str) -> None:
    """Write the completion marker of the job ``key`` into ``output_dir`` (atomically)."""
    write_text(key, Path(output_dir) / DONE_MARKER)


def _hydra_main() -> Callable[[], None]:
    try:
        config_path = str(conf_dir())
    except ConfigError as exc:
        _fail(str(exc))
    register_configs()
    return hydra.main(config_path=config_path, config_name="config", version_base="1.3")(_app)


SUBCOMMANDS = {"gather": ("cartsim.sweep.gather", "main")}
"""Plain (non-Hydra) sub-commands: ``cartsim gather DIR`` gathers a multirun into one Dataset."""


def main() -> None:
    """Console-script entry point (``cartsim``)."""
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        import importlib

        module, name = SUBCOMMANDS[sys.argv[1]]
        sys.exit(getattr(importlib.import_module(module), name)(sys.argv[2:]))
    _hydra_main()()


if __name__ == "__main__":
    main()
