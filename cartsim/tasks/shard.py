"""Tasks ``trial``, ``sweep`` and ``sensitivity`` with ``shard.count > 1``: compute one shard,
or gather the shards' parts.

On a cluster (``conf/hydra/launcher/slurm.yaml``: one SLURM array task per shard)::

    cartsim -m task=trial population.n=1000000 shard.count=64 'shard.index=range(0,64)' \\
        hydra/launcher=slurm hydra.launcher.partition=cpu hydra.sweep.dir=runs/big

Job ``i`` writes ``runs/big/shards/part-<i>-of-0064.nc``; the job that completes the last
missing part gathers them into ``runs/big/trial_endpoints.nc`` and the results table, as one
job would have written them. Re-running the same command (same ``hydra.sweep.dir``) skips
every shard whose part is done, so only failed or killed shards run again. Gathering by
hand (refused, naming the shards, while any part is missing or from another config)::

    cartsim task=trial population.n=1000000 shard.count=64 shard.dir=runs/big

A sweep or a sensitivity analysis is sharded the same way (:mod:`cartsim.shard.sweep`): job
``i`` computes its slice of the run's chunks into the shared chunk store
(``runs/big/sweep_chunks/`` or ``sensitivity_chunks/``) and writes its record
``runs/big/shards/part-<i>-of-0064.json``; the gather writes ``runs/big/sweep.nc`` (or
``sensitivity.nc`` and ``sensitivity.png``)::

    cartsim -m task=sensitivity sensitivity.n_base=4096 shard.count=64 \\
        'shard.index=range(0,64)' hydra/launcher=slurm hydra.sweep.dir=runs/sobol
"""

from __future__ import annotations

import sys
from pathlib import Path

from cartsim.scenario import ScenarioError
from cartsim.tasks.common import engine_simulator

__all__ = ["report_sharded_multirun", "run_sensitivity_shard_task", "run_sweep_shard_task",
           "run_trial_shard_task", "shard_directory"]


def shard_directory(shard, output_dir) -> Path:
    """The sharded run's directory: ``shard.dir``, else ``hydra.sweep.dir`` of a multirun."""
    if shard.dir is not None:
        return Path(shard.dir).expanduser()
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    raise ScenarioError(f"shard.dir=null is not accepted with shard.count={shard.count} "
                        f"outside a multirun: expected shard.dir=DIR, the sharded run's "
                        "directory (its parts are in DIR/shards/)")


def _engine(run_cfg) -> dict | None:
    """What the parts record of a stochastic engine (None for the ODE)."""
    if run_cfg.engine == "ode":
        return None
    import dataclasses

    return {"engine": run_cfg.engine, "stochastic": dataclasses.asdict(run_cfg.stochastic)}


def _digest(run_cfg) -> str:
    from cartsim.shard.trial import trial_description, trial_hash

    return trial_hash(trial_description(run_cfg.scenario(), run_cfg.population,
                                        run_cfg.endpoints, run_cfg.trial,
                                        count=run_cfg.shard.count, engine=_engine(run_cfg)))


def run_trial_shard_task(run_cfg, output_dir) -> None:
    """``shard.index`` set: compute that shard (skipped when its part is done) and, when it
    completed the last missing part and ``shard.gather``, gather; ``shard.index`` null:
    gather (a :class:`~cartsim.shard.trial.ShardError` while any part is not done)."""
    from cartsim.shard.trial import DONE, part_states, run_trial_shard

    shard = run_cfg.shard
    directory = shard_directory(shard, output_dir)
    if shard.index is None:
        _gather(run_cfg, directory)
        return
    path = run_trial_shard(run_cfg.scenario(), run_cfg.population, run_cfg.endpoints,
                           index=shard.index, count=shard.count, directory=directory,
                           options=run_cfg.trial, simulate_fn=engine_simulator(run_cfg),
                           engine=_engine(run_cfg))
    if not _written(shard, directory, path):
        return
    states = part_states(directory, shard.count, _digest(run_cfg), _n(run_cfg))
    waiting = [i for i, s in enumerate(states) if s != DONE]
    if waiting:
        print(f"cartsim: {len(waiting)} of {shard.count} shards not done yet; the job that "
              "completes the last one gathers them", flush=True)
        return
    _gather(run_cfg, directory)


def _n(run_cfg) -> int | None:
    """Patients of the whole trial when known without reading a table."""
    return None if run_cfg.trial.cohort_file is not None else int(run_cfg.population.n)


def _gather(run_cfg, directory: Path) -> None:
    from cartsim.shard.trial import gather_trial, trial_cohort_head
    from cartsim.tasks.report import MAX_TRAJECTORIES
    from cartsim.tasks.trial import write_trial_result

    result = gather_trial(directory, run_cfg.shard.count, _digest(run_cfg), n=_n(run_cfg),
                          title=run_cfg.trial.title, html_report=run_cfg.trial.html_report)
    if result.html_report and result.trajectories is None:
        # the page re-simulates the first patients, as one job's report does
        result.cohort = trial_cohort_head(run_cfg.scenario(), run_cfg.population,
                                          run_cfg.trial, MAX_TRAJECTORIES)
    print(f"cartsim: gathered {run_cfg.shard.count} shards of "
          f"{result.endpoints.sizes['patient']} patients into {directory}", file=sys.stderr,
          flush=True)
    write_trial_result(result, run_cfg, directory)


def run_sweep_shard_task(run_cfg, output_dir) -> None:
    """Task ``sweep`` sharded: ``shard.index`` set: compute that shard's chunks (skipped when
    done) and, when it completed the last shard and ``shard.gather``, gather into
    ``sweep.nc``; ``shard.index`` null: gather (a
    :class:`~cartsim.shard.trial.ShardError` while any shard is not done)."""
    _run_points_task(run_cfg, output_dir, "sweep")


def run_sensitivity_shard_task(run_cfg, output_dir) -> None:
    """Task ``sensitivity`` sharded: as :func:`run_sweep_shard_task`, the gather writing
    ``sensitivity.nc`` and ``sensitivity.png``."""
    _run_points_task(run_cfg, output_dir, "sensitivity")


def _points_job(run_cfg, kind: str, directory: Path):
    """(job, chunk directory, simulate_fn) of a sharded sweep or sensitivity analysis, as
    the unsharded task builds them (:mod:`cartsim.sweep.task`)."""
    from cartsim.shard.sweep import chunk_directory

    if kind == "sweep":
        from cartsim.sweep.run import prepare_sweep

        job = prepare_sweep(run_cfg.scenario(), run_cfg.sweep, run_cfg.population,
                            run_cfg.endpoints, engine=_engine(run_cfg))
        return job, chunk_directory(kind, directory, run_cfg.sweep), engine_simulator(run_cfg)
    from cartsim.sweep.sensitivity import prepare_sensitivity

    job = prepare_sensitivity(run_cfg.scenario(), run_cfg.sensitivity, run_cfg.population,
                              run_cfg.endpoints)
    return job, chunk_directory(kind, directory), None  # the ODE, as task=sensitivity


def _run_points_task(run_cfg, output_dir, kind: str) -> None:
    from cartsim.shard.sweep import DONE, points_states, run_points_shard
    from cartsim.sweep.task import progress_printer

    shard = run_cfg.shard
    directory = shard_directory(shard, output_dir)
    job, chunk_dir, simulate_fn = _points_job(run_cfg, kind, directory)
    if shard.index is None:
        _gather_points(job, run_cfg, directory, chunk_dir, kind)
        return
    path = run_points_shard(job, index=shard.index, count=shard.count, directory=directory,
                            chunk_dir=chunk_dir, kind=kind, simulate_fn=simulate_fn,
                            progress=progress_printer(f"{kind} shard {shard.index} of "
                                                      f"{shard.count}"))
    if not _written(shard, directory, path):
        return
    waiting = [i for i, s in enumerate(points_states(job, directory, shard.count, chunk_dir,
                                                     kind)) if s != DONE]
    if waiting:
        print(f"cartsim: {len(waiting)} of {shard.count} shards not done yet; the job that "
              "completes the last one gathers them", flush=True)
        return
    _gather_points(job, run_cfg, directory, chunk_dir, kind)


def _gather_points(job, run_cfg, directory: Path, chunk_dir: Path, kind: str) -> None:
    from cartsim.shard.sweep import gather_points
    from cartsim.sweep.task import write_sensitivity, write_sweep

    ds = gather_points(job, count=run_cfg.shard.count, directory=directory,
                       chunk_dir=chunk_dir, kind=kind)
    print(f"cartsim: gathered {run_cfg.shard.count} shards of {job.plan.n_points} points "
          f"into {directory}", file=sys.stderr, flush=True)
    (write_sweep if kind == "sweep" else write_sensitivity)(ds, directory)


GATHERED_FILES = {"trial": "trial_endpoints.nc", "sweep": "sweep.nc",
                  "sensitivity": "sensitivity.nc"}
"""What the gather of a sharded run of each task writes into the run's directory."""


def report_sharded_multirun(shard, sweep_dir, task: str = "trial") -> None:
    """What the end of a sharded multirun says (called by the gather callback in the
    launching process): where the gathered result is, or which shards have no part yet."""
    from cartsim.shard.trial import PARTS_DIR, part_path

    directory = Path(str(shard.get("dir") or sweep_dir)).expanduser()
    count = int(shard.get("count"))
    suffix = ".nc" if task == "trial" else ".json"
    missing = [i for i in range(count)
               if not part_path(directory, i, count, suffix=suffix).is_file()]
    gathered = directory / GATHERED_FILES.get(task, "trial_endpoints.nc")
    if missing:
        print(f"cartsim: sharded {task} in {directory}: shards "
              f"{', '.join(map(str, missing))} of {count} have no part in {PARTS_DIR}/ "
              f"(failed, killed or not run); re-run the same command with "
              f"hydra.sweep.dir={sweep_dir} to compute only those", file=sys.stderr,
              flush=True)
    elif gathered.is_file():
        print(f"cartsim: sharded {task} of {count} shards gathered: {gathered}", flush=True)
    else:
        print(f"cartsim: sharded {task} in {directory}: all {count} parts written; gather "
              f"them with the same overrides plus shard.index=null shard.dir={directory}",
              flush=True)


def _written(shard, directory, path) -> bool:
    """Say what a shard job did; True when it wrote its part and should try the gather."""
    if path is None:
        print(f"cartsim: shard {shard.index} of {shard.count} already done in "
              f"{directory}: skipped", flush=True)
        return False
    print(f"cartsim: wrote shard {shard.index} of {shard.count}: {path}", flush=True)
    return bool(shard.gather)
