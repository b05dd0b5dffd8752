"""The ``cartsim`` command: a Hydra app that runs one task on one composed config.

Examples::

    cartsim                            # default scenario -> outputs/<date>/<time>/simulation.nc
    cartsim product=ko patient.marrow_blast_pct=80
    cartsim -m regimen.car_dose_per_kg=1e5,1e6,1e7   # 3 jobs, one file each, in multirun/
    cartsim +experiment=high_burden_ko
    cartsim --cfg job                  # print the composed config, run nothing
    cartsim task=trial population.n=200 product=ns7car   # a virtual trial and its report
    cartsim -m task=trial population.n=100000 shard.count=8 'shard.index=range(0,8)'
                                       # one trial as 8 launcher jobs, gathered (cartsim.shard)
    cartsim -m task=sweep shard.count=8 'shard.index=range(0,8)'   # a sweep's chunks, likewise

Keys and types are checked by Hydra when the config is composed (its own error
message, exit code 1); values are checked when the config becomes a
:class:`~cartsim.scenario.Scenario`, and a :class:`~cartsim.scenario.ScenarioError`
is printed as ``cartsim: error: <message>`` with exit code 2. So is every other bad input
found while a task runs (a cohort table, an observation file, a model parameter: their
errors are ScenarioErrors too) and an output directory that cannot be written. Exit codes:

* 0: done;
* 1: Hydra could not compose the config (its message), or an internal error (one line;
  ``--debug`` or ``CARTSIM_DEBUG=1`` prints the traceback);
* 2: a value, a file or an output directory is not accepted (``cartsim: error: ...``);
* 3: the run finished, but every patient failed to solve (files written, message on stderr).

Tasks live in :data:`TASKS`, a name -> ``function(run_cfg, output_dir)`` registry;
``task=NAME`` picks one. Their implementations are in :mod:`cartsim.tasks` (and the
``task`` modules of the fitting, sweep and stochastic packages); this module only
composes the config, runs the job and turns errors into exit codes.
"""

from __future__ import annotations

import errno
import os
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
from cartsim.tasks.common import FAILED_RUNS, check_some_solved, engine_simulator
from cartsim.tasks.simulate import run_simulate
from cartsim.tasks.trial import run_trial_task

__all__ = ["TASKS", "check_some_solved", "engine_simulator", "main", "run_simulate",
           "run_trial_task", "write_netcdf"]

EXIT_USAGE = 2
"""Exit code for a rejected configuration value (as argparse uses for usage errors)."""
EXIT_INTERNAL = 1
"""Exit code for an unexpected error (a bug: ``--debug`` shows the traceback)."""
EXIT_ALL_FAILED = 3
"""Exit code of a run whose every patient failed to solve."""
DEBUG_FLAG = "--debug"
DEBUG_ENV = "CARTSIM_DEBUG"
"""``--debug`` on the command line or ``CARTSIM_DEBUG=1``: errors print their traceback."""

_state = {"debug": False, "all_failed": FAILED_RUNS}
"""Per process: debug mode, and the messages of jobs whose every patient failed."""


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
    "report": _lazy_task("cartsim.tasks.report", "run_report_task"),
}
"""Task registry: ``task=NAME`` runs ``TASKS[NAME](run_cfg, output_dir)``."""


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``cartsim: error: <message>`` as one line on stderr and exit with ``code``
    (in debug mode the traceback of the exception being handled first)."""
    _print_traceback_if_debug()
    _exit_with(message, code)


def _exit_with(message: str, code: int) -> NoReturn:
    one_line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"cartsim: error: {one_line}", file=sys.stderr, flush=True)
    sys.exit(code)


def _print_traceback_if_debug() -> None:
    if _state["debug"] and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()


def _app(cfg: DictConfig) -> None:
    """Body of the Hydra app: validate the composed config, then run its task.

    An error is reported here, inside the job (as one line, see :func:`_report`): one
    that left the job would make Hydra print its own header first."""
    task_name = cfg.get("task")
    if task_name not in TASKS:
        _fail(f"task={task_name!r} is not accepted: expected one of {', '.join(TASKS)}")
    try:
        _run_job(cfg, task_name)
    except Exception as exc:
        _report(exc)


SHARDED_TASKS: dict[str, Callable[[RunConfig, Path], None]] = {
    "trial": _lazy_task("cartsim.tasks.shard", "run_trial_shard_task"),
    "sweep": _lazy_task("cartsim.tasks.shard", "run_sweep_shard_task"),
    "sensitivity": _lazy_task("cartsim.tasks.shard", "run_sensitivity_shard_task"),
}
"""What ``task=NAME`` runs with ``shard.count > 1``: one shard, or the gather of the parts
(:mod:`cartsim.tasks.shard`)."""


def _run_job(cfg: DictConfig, task_name: str) -> None:
    run_cfg = to_run_config(cfg)
    if run_cfg.shard.sharded and task_name not in SHARDED_TASKS:
        raise ScenarioError(f"shard.count={run_cfg.shard.count} is not accepted with "
                            f"task={task_name}: expected task={' or '.join(SHARDED_TASKS)}, "
                            "or shard.count=1")
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # a shard job's part file is its completion record (re-run when missing or foreign)
    multirun = hc.mode == RunMode.MULTIRUN and not run_cfg.shard.sharded
    key = job_key(list(hc.overrides.task)) if multirun else None
    if multirun and job_done(output_dir, key):
        print(f"cartsim: job {hc.job.num} ({', '.join(hc.overrides.task) or 'no overrides'}) "
              f"already complete in {output_dir}: skipped", flush=True)
        return
    task = SHARDED_TASKS[task_name] if run_cfg.shard.sharded else TASKS[task_name]
    task(run_cfg, output_dir)
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


PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
               errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG)
"""OSErrors that mean a path the user chose cannot be used (exit 2); others (a full disk, an
I/O error) exit 1."""


def _report(exc: BaseException) -> NoReturn:
    """Turn an exception that ended the run into one line on stderr and an exit code."""
    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    from cartsim.parameters.base import ParameterError

    _print_traceback_if_debug()
    if isinstance(exc, CompactHydraException):  # composition: Hydra's message, as Hydra does
        sys.stderr.write(str(exc) + os.linesep)
        if isinstance(exc.__cause__, OmegaConfBaseException):
            sys.stderr.write(str(exc.__cause__) + os.linesep)
        sys.exit(1)
    if isinstance(exc, (ScenarioError, ParameterError)):
        _exit_with(str(exc), EXIT_USAGE)
    if isinstance(exc, OSError):
        code = EXIT_USAGE if exc.errno in PATH_ERRNOS else EXIT_INTERNAL
        if not exc.strerror:  # a whole message, as cartsim.io.OutputError carries
            _exit_with(str(exc), code)
        where = f"{exc.filename}: " if exc.filename else ""
        hint = (": expected a writable output directory (hydra.run.dir=DIR, or "
                "hydra.sweep.dir=DIR with -m) and readable input files"
                if code == EXIT_USAGE else "")
        _exit_with(f"{where}{exc.strerror}{hint}", code)
    _exit_with(f"internal error: {type(exc).__name__}: {exc} (run again with {DEBUG_FLAG} "
               f"or {DEBUG_ENV}=1 for the traceback)", EXIT_INTERNAL)


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
    """Console-script entry point (``cartsim``).

    ``--debug`` (anywhere on the command line, or ``CARTSIM_DEBUG=1``) lets errors print
    their full traceback; otherwise every error is one line (see the module docstring).
    """
    debug = (DEBUG_FLAG in sys.argv[1:]
             or any(os.environ.get(v, "") not in ("", "0") for v in (DEBUG_ENV,
                                                                      "HYDRA_FULL_ERROR")))
    sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != DEBUG_FLAG)]
    _state["debug"] = debug
    FAILED_RUNS.clear()
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        import importlib

        module, name = SUBCOMMANDS[sys.argv[1]]
        sys.exit(getattr(importlib.import_module(module), name)(sys.argv[2:]))
    # Hydra prints a trimmed traceback of any error unless HYDRA_FULL_ERROR is set, in which
    # case it re-raises: set it, and report the error here as one line
    saved = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()()
    except Exception as exc:
        _report(exc)
    finally:
        if saved is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved
    if _state["all_failed"]:
        sys.exit(EXIT_ALL_FAILED)


if __name__ == "__main__":
    main()
