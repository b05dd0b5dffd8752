"""One trial split into shards (cartsim.shard): each shard's slice, the parts, the gather.

The truth every test checks against is the same trial run as one job: the gathered
endpoints must be *identical* to it (values, dtypes, coordinates and every attribute:
``xarray.Dataset.identical``; a trial's attributes hold no timestamp, so none is ignored),
and its results table the same bytes.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cartsim
from cartsim.config import load_run_config
from cartsim.scenario import ScenarioError
from cartsim.shard.trial import (
    DONE,
    MISMATCH,
    MISSING,
    ShardError,
    gather_trial,
    part_path,
    part_states,
    run_trial_shard,
    shard_patients,
    trial_description,
    trial_hash,
)
from cartsim.trial import run_trial

ROOT = Path(cartsim.__file__).resolve().parents[1]
# chunks of 7 straddle the shards' boundaries (10 patients each): a patient's result must
# not depend on the batch it was solved in
OVERRIDES = ["task=trial", "population.n=40", "output.t_end=120", "trial.chunk_size=7"]
COUNT = 4


def _load(path) -> xr.Dataset:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def _cfg(*extra):
    return load_run_config([*OVERRIDES, *extra])


def _shards(cfg, directory, count=COUNT, indices=None):
    for i in range(count) if indices is None else indices:
        run_trial_shard(cfg.scenario(), cfg.population, cfg.endpoints, index=i, count=count,
                        directory=directory, options=cfg.trial)


def _hash(cfg, count=COUNT):
    return trial_hash(trial_description(cfg.scenario(), cfg.population, cfg.endpoints,
                                        cfg.trial, count=count))


@pytest.fixture(scope="module")
def one_job():
    cfg = _cfg()
    return run_trial(cfg.scenario(), cfg.population, cfg.endpoints, options=cfg.trial)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, one_job):
    directory = tmp_path_factory.mktemp("sharded")
    _shards(_cfg(), directory)
    return directory


def test_shards_tile_the_patients_in_order():
    for n, count in ((40, 4), (41, 4), (7, 7), (1000003, 64)):
        ranges = [shard_patients(n, count, i) for i in range(count)]
        assert ranges[0].start == 0 and ranges[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))
        assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
    with pytest.raises(ScenarioError, match="every shard needs a patient"):
        shard_patients(3, 4, 0)


def test_a_slice_of_the_cohort_equals_those_rows_of_the_whole_cohort():
    from cartsim.population import draw_cohort
    from cartsim.randomness import cohort_rng

    cfg = load_run_config(["population.n=400"])
    whole = draw_cohort(cfg.scenario(), cfg.population, cohort_rng(0))
    # the truncated draws are redrawn: the draw is one sequence, so a slice is not a
    # fresh draw of its size; this cohort redraws, which a naive slice would get wrong
    assert whole.table.attrs["n_redraws_covariates"] > 0
    part = draw_cohort(cfg.scenario(), cfg.population, cohort_rng(0), patients=range(150, 290))
    xr.testing.assert_identical(part.table, whole.table.isel(patient=slice(150, 290)))
    assert part.scenarios == whole.scenarios[150:290]
    with pytest.raises(ScenarioError, match="patients="):
        draw_cohort(cfg.scenario(), cfg.population, cohort_rng(0), patients=range(300, 401))


def test_gathered_shards_are_identical_to_one_job(sharded, one_job):
    assert part_states(sharded, COUNT, _hash(_cfg()), 40) == [DONE] * COUNT
    got = gather_trial(sharded, COUNT, _hash(_cfg()), n=40)
    assert got.endpoints.identical(one_job.endpoints)
    assert _same_rows(got.summary(), one_job.summary())
    # and the shards really did split the work: each part holds its own patients
    for i in range(COUNT):
        part = _load(part_path(sharded, i, COUNT))
        assert part["patient"].values.tolist() == list(shard_patients(40, COUNT, i))


def _same_rows(a, b) -> bool:
    """Rows equal value by value (NaN equal to NaN)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(
            (isinstance(x[k], float) and np.isnan(x[k]) and np.isnan(y[k])) or x[k] == y[k]
            for k in x) for x, y in zip(a, b))


def test_a_missing_part_is_refused_naming_the_shard_then_rerun_alone(sharded, tmp_path):
    import shutil

    directory = tmp_path / "run"
    shutil.copytree(sharded, directory)
    part_path(directory, 2, COUNT).unlink()  # a killed shard leaves no part (atomic write)
    with pytest.raises(ShardError, match=r"shard 2 of 4 missing") as err:
        gather_trial(directory, COUNT, _hash(_cfg()), n=40)
    assert "\n" not in str(err.value)
    stamps = {i: part_path(directory, i, COUNT).stat().st_mtime_ns for i in (0, 1, 3)}
    _shards(_cfg(), directory)  # the same run again: only shard 2 is computed
    assert {i: part_path(directory, i, COUNT).stat().st_mtime_ns for i in (0, 1, 3)} == stamps
    assert part_states(directory, COUNT, _hash(_cfg()), 40) == [DONE] * COUNT


def test_a_part_from_another_config_is_refused(sharded, tmp_path, one_job):
    import shutil

    directory = tmp_path / "run"
    shutil.copytree(sharded, directory)
    with pytest.warns(UserWarning, match="from another configuration; recomputing"):
        _shards(_cfg("seed=1"), directory, indices=[3])  # shard 3 redone with another seed
    assert part_states(directory, COUNT, _hash(_cfg()), 40) == [DONE, DONE, DONE, MISMATCH]
    with pytest.raises(ShardError, match=r"shard 3 of 4 made with a different config"):
        gather_trial(directory, COUNT, _hash(_cfg()), n=40)
    # another shard count is another run: none of these parts is its part
    assert part_states(directory, 2, _hash(_cfg(), 2), 40) == [MISSING, MISSING]
    # re-running the original config recomputes shard 3 only, and the gather is exact again
    with pytest.warns(UserWarning, match="recomputing"):
        _shards(_cfg(), directory)
    got = gather_trial(directory, COUNT, _hash(_cfg()), n=40)
    assert got.endpoints.identical(one_job.endpoints)


def test_stochastic_engine_shards_are_identical_to_one_job(tmp_path):
    # each patient is one stochastic realisation whose stream is keyed by its global index
    from cartsim.tasks.common import engine_simulator

    cfg = load_run_config(["task=trial", "population.n=12", "output.t_end=60",
                           "trial.chunk_size=5", "engine=stochastic"])
    simulate_fn = engine_simulator(cfg)
    one = run_trial(cfg.scenario(), cfg.population, cfg.endpoints, options=cfg.trial,
                    simulate_fn=simulate_fn)
    engine = {"engine": "stochastic", "stochastic": dataclasses.asdict(cfg.stochastic)}
    for i in range(3):
        run_trial_shard(cfg.scenario(), cfg.population, cfg.endpoints, index=i, count=3,
                        directory=tmp_path, options=cfg.trial, simulate_fn=simulate_fn,
                        engine=engine)
    digest = trial_hash(trial_description(cfg.scenario(), cfg.population, cfg.endpoints,
                                          cfg.trial, count=3, engine=engine))
    assert gather_trial(tmp_path, 3, digest, n=12).endpoints.identical(one.endpoints)
    # the engine is part of the configuration: the ODE's hash does not accept these parts
    ode = trial_hash(trial_description(cfg.scenario(), cfg.population, cfg.endpoints,
                                       cfg.trial, count=3))
    assert part_states(tmp_path, 3, ode, 12) == [MISMATCH] * 3


TRAJECTORY_ATTRS_IGNORED = ("created", "history", "patient_overrides")
"""Attributes of kept trajectories that differ: the time each chunk was simulated, and the
per-patient overrides, which ``run_trial`` keeps for its first chunk only (a shard's first
chunk is another length)."""


def test_kept_trajectories_gather_to_the_one_job_values(tmp_path):
    cfg = _cfg("population.n=20", "trial.save_trajectories=true")
    one = run_trial(cfg.scenario(), cfg.population, cfg.endpoints, options=cfg.trial)
    _shards(cfg, tmp_path)
    got = gather_trial(tmp_path, COUNT, _hash(cfg), n=20)
    assert got.endpoints.identical(one.endpoints)
    a, b = one.trajectories, got.trajectories
    assert a.equals(b)  # every variable and coordinate, bit for bit
    for name in a.variables:
        assert a[name].attrs.keys() == b[name].attrs.keys(), name
    keep = set(a.attrs) - set(TRAJECTORY_ATTRS_IGNORED)
    assert keep == set(b.attrs) - set(TRAJECTORY_ATTRS_IGNORED)
    assert all(str(a.attrs[k]) == str(b.attrs[k]) for k in keep)


def test_shard_options_are_validated():
    with pytest.raises(ScenarioError, match=r"shard.index=4 is not accepted"):
        load_run_config(["shard.count=4", "shard.index=4"])
    with pytest.raises(ScenarioError, match=r"shard.count=0 is not accepted"):
        load_run_config(["shard.count=0"])
    cfg = load_run_config(["shard.count=4", "shard.index=3"])
    assert cfg.shard.sharded and cfg.shard.index == 3


# --- the command line, through a real launcher -------------------------------------------

def _cartsim(args, cwd, expect=0, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "cartsim.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


TRIAL_FILES = ("trial_endpoints.nc", "trial_summary.csv", "trial_summary.md")


def _assert_same_trial(a: Path, b: Path):
    assert _load(a / "trial_endpoints.nc").identical(_load(b / "trial_endpoints.nc"))
    for name in TRIAL_FILES[1:]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow
def test_submitit_local_shards_gather_to_the_one_job_files_and_a_killed_shard_reruns(tmp_path):
    one = tmp_path / "one"
    _cartsim([*OVERRIDES, f"hydra.run.dir={one}"], cwd=tmp_path)
    sweep = tmp_path / "mr"
    command = ["-m", *OVERRIDES, f"shard.count={COUNT}", f"shard.index=range(0,{COUNT})",
               "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
               f"hydra.sweep.dir={sweep}"]
    proc = _cartsim(command, cwd=tmp_path)
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit
    assert f"sharded trial of {COUNT} shards gathered" in proc.stdout
    _assert_same_trial(sweep, one)

    # a killed shard: its part never reached its final name; the trial's files are stale
    part_path(sweep, 2, COUNT).unlink()
    for name in TRIAL_FILES:
        (sweep / name).unlink()
    stamps = {i: part_path(sweep, i, COUNT).stat().st_mtime_ns for i in (0, 1, 3)}
    # gathering by hand is refused, in one line naming the shard
    proc = _cartsim([*OVERRIDES, f"shard.count={COUNT}", f"shard.dir={sweep}",
                     f"hydra.run.dir={tmp_path / 'g'}"], cwd=tmp_path, expect=2)
    assert proc.stderr.strip().splitlines()[-1].startswith("cartsim: error: cannot gather")
    assert "shard 2 of 4 missing" in proc.stderr
    # the same command again runs shard 2 alone, which then gathers
    _cartsim(command, cwd=tmp_path)
    assert {i: part_path(sweep, i, COUNT).stat().st_mtime_ns for i in (0, 1, 3)} == stamps
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.out"))
    assert logs.count("already done") == 3
    _assert_same_trial(sweep, one)


def test_sharding_is_refused_for_other_tasks(tmp_path):
    proc = _cartsim(["task=simulate", "shard.count=2", "shard.index=0",
                     f"hydra.run.dir={tmp_path}"], cwd=tmp_path, expect=2)
    assert ("shard.count=2 is not accepted with task=simulate: expected task=trial or sweep "
            "or sensitivity") in proc.stderr
