"""Task ``trial`` with ``shard.count > 1``: compute one shard, or gather the shards' parts.

On a cluster (``conf/hydra/launcher/slurm.yaml``: one SLURM array task per shard)::

    cartsim -m task=trial population.n=1000000 shard.count=64 'shard.index=range(0,64)' \\
        hydra/launcher=slurm hydra.launcher.partition=cpu hydra.sweep.dir=runs/big

Job ``i`` writes ``runs/big/shards/part-<i>-of-0064.nc``; the job that completes the last
missing part gathers them into ``runs/big/trial_endpoints.nc`` and the results table, as one
job would have written them. Re-running the same command (same ``hydra.sweep.dir``) skips
every shard whose part is done, so only failed or killed shards run again. Gathering by
hand (refused, naming the shards, while any part is missing or from another config)::

    cartsim task=trial population.n=1000000 shard.count=64 shard.dir=runs/big
"""

from __future__ import annotations

import sys
from pathlib import Path

from cartsim.scenario import ScenarioError
from cartsim.tasks.common import engine_simulator

__all__ = ["run_trial_shard_task", "shard_directory"]


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
    if path is None:
        print(f"cartsim: shard {shard.index} of {shard.count} already done in "
              f"{directory}: skipped", flush=True)
        return
    print(f"cartsim: wrote shard {shard.index} of {shard.count}: {path}", flush=True)
    if not shard.gather:
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


def report_sharded_multirun(shard, sweep_dir) -> None:
    """What the end of a sharded multirun says (called by the gather callback in the
    launching process): where the gathered trial is, or which shards have no part yet."""
    from cartsim.shard.trial import PARTS_DIR, part_path

    directory = Path(str(shard.get("dir") or sweep_dir)).expanduser()
    count = int(shard.get("count"))
    missing = [i for i in range(count) if not part_path(directory, i, count).is_file()]
    gathered = directory / "trial_endpoints.nc"
    if missing:
        print(f"cartsim: sharded trial in {directory}: shards {', '.join(map(str, missing))} "
              f"of {count} have no part in {PARTS_DIR}/ (failed, killed or not run); re-run "
              f"the same command with hydra.sweep.dir={sweep_dir} to compute only those",
              file=sys.stderr, flush=True)
    elif gathered.is_file():
        print(f"cartsim: sharded trial of {count} shards gathered: {gathered}", flush=True)
    else:
        print(f"cartsim: sharded trial in {directory}: all {count} parts written; gather them "
              f"with the same overrides plus shard.index=null shard.dir={directory}",
              flush=True)
