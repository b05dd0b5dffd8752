"""A sweep and a sensitivity analysis split into shards (cartsim.shard.sweep), and gathered.

The truth every test checks against is the same run as one job: the gathered Dataset must
be *identical* to it (``xarray.Dataset.identical``: values bit for bit, dtypes, coordinates,
every attribute) once the two provenance stamps that differ between any two runs are set
equal: ``created`` (the time) and ``chunk_dir`` (where each run kept its chunks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cartsim
from cartsim.scenario import ScenarioError
from cartsim.shard.sweep import (
    DONE,
    chunk_directory,
    gather_sensitivity,
    gather_sweep,
    points_states,
    record_path,
    run_sensitivity_shard,
    run_sweep_shard,
    shard_chunks,
)
from cartsim.shard.trial import INCOMPLETE, MISMATCH, MISSING, ShardError
from cartsim.simulation import simulate
from cartsim.sweep import SensitivityOptions, SweepAxis, SweepSpec, run_sensitivity, run_sweep
from cartsim.sweep.run import prepare_sweep
from cartsim.sweep.store import chunk_path

ROOT = Path(cartsim.__file__).resolve().parents[1]

# 3 x 2 points, each a virtual population of 2 patients (cohort and death draws: the
# common random numbers of every point), one point per chunk: 6 chunks over 4 shards
# (1, 2, 1, 2 chunks)
SPEC = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", space="logspace", start=1e5,
                                 stop=1e7, num=3),
                       SweepAxis("patient.marrow_blast_pct", values=[5.0, 50.0])],
                 population_n=2, endpoints=["cr_d28", "cmax_qpcr", "crs_g3plus", "pfs_12m"],
                 chunk_size=2)
COUNT = 4
STAMPS = ("created", "chunk_dir")
"""Attributes that differ between any two runs of the same sweep (time, chunk directory)."""

SOBOL = SensitivityOptions(
    method="sobol", n_base=4, second_order=False, chunk_size=5,  # 16 runs in 4 chunks
    endpoints=["cmax_qpcr", "cr_d28"],
    parameters=[SweepAxis("model.params.rho_max", space="logspace", start=0.3, stop=1.3),
                SweepAxis("regimen.car_dose_per_kg", space="logspace", start=1e5, stop=1e7)])


def _same(got: xr.Dataset, one: xr.Dataset) -> bool:
    got = got.copy()
    for key in STAMPS:
        if key in one.attrs:
            got.attrs[key] = one.attrs[key]
    return got.identical(one)


def _shards(base, directory, spec=SPEC, count=COUNT, indices=None, **kw):
    return [run_sweep_shard(base, spec, index=i, count=count, directory=directory, **kw)
            for i in (range(count) if indices is None else indices)]


def _mtimes(directory, chunks):
    return {k: chunk_path(directory / "sweep_chunks", k).stat().st_mtime_ns for k in chunks}


@pytest.fixture(scope="module")
def one_job(base, tmp_path_factory):
    return run_sweep(base, SPEC, chunk_dir=tmp_path_factory.mktemp("one"))


@pytest.fixture(scope="module")
def sharded(base, tmp_path_factory):
    directory = tmp_path_factory.mktemp("sharded")
    _shards(base, directory)
    return directory


def test_shards_tile_the_chunks_in_order():
    for k, count in ((6, 4), (7, 7), (1001, 64)):
        ranges = [shard_chunks(k, count, i) for i in range(count)]
        assert ranges[0].start == 0 and ranges[-1].stop == k
        assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))
        assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
    with pytest.raises(ScenarioError, match=r"shard.count=5 is not accepted with 4 chunks.*"
                                            r"sensitivity.chunk_size"):
        shard_chunks(4, 5, 0, "sensitivity")
    with pytest.raises(ScenarioError, match=r"shard.index=4 is not accepted"):
        shard_chunks(6, 4, 4)
    with pytest.raises(ScenarioError, match=r"shard.index=-1 is not accepted"):
        shard_chunks(6, 4, -1)
    from cartsim.config import load_run_config

    with pytest.raises(ScenarioError, match=r"shard.index=-1 is not accepted with shard.count=4"):
        load_run_config(["task=sweep", "shard.count=4", "shard.index=-1"])


def test_gathered_sweep_shards_are_identical_to_one_job(base, sharded, one_job):
    job = prepare_sweep(base, SPEC)
    assert job.n_chunks == 6
    assert points_states(job, sharded, COUNT, sharded / "sweep_chunks") == [DONE] * COUNT
    got = gather_sweep(base, SPEC, count=COUNT, directory=sharded)
    assert _same(got, one_job)
    assert one_job.attrs["n_missing"] == 0 and (one_job["status"].values == 0).all()
    # the shards really did split the work: each record holds its own chunks
    for i in range(COUNT):
        record = json.loads(record_path(sharded, i, COUNT).read_text())
        assert record["chunks"] == [shard_chunks(6, COUNT, i).start,
                                    shard_chunks(6, COUNT, i).stop]


def test_a_deleted_chunk_is_refused_naming_its_shard_then_rerun_alone(base, sharded, one_job,
                                                                      tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(sharded, directory)
    chunk_path(directory / "sweep_chunks", 4).unlink()  # chunk 4: shard 3 (chunks 4-5)
    states = points_states(prepare_sweep(base, SPEC), directory, COUNT,
                           directory / "sweep_chunks")
    assert states == [DONE, DONE, DONE, INCOMPLETE]
    with pytest.raises(ShardError, match=r"shard 3 of 4 incomplete \(3: chunks 4 not in ") \
            as err:
        gather_sweep(base, SPEC, count=COUNT, directory=directory)
    assert "\n" not in str(err.value)
    others = [0, 1, 2, 3, 5]
    before = _mtimes(directory, others)
    assert _shards(base, directory)[3] is not None  # the same run again: shard 3 computes
    assert _mtimes(directory, others) == before  # ... chunk 4 alone
    assert _same(gather_sweep(base, SPEC, count=COUNT, directory=directory), one_job)


def test_a_killed_shard_without_record_is_refused_then_rerun_alone(base, sharded, one_job,
                                                                   tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(sharded, directory)
    record_path(directory, 1, COUNT).unlink()  # killed before its record (atomic write)
    chunk_path(directory / "sweep_chunks", 2).unlink()  # ... and before its chunk
    with pytest.raises(ShardError, match=r"cannot gather .*: shard 1 of 4 missing; re-run"):
        gather_sweep(base, SPEC, count=COUNT, directory=directory)
    records = {i: record_path(directory, i, COUNT).stat().st_mtime_ns for i in (0, 2, 3)}
    done = _shards(base, directory)
    assert [p is None for p in done] == [True, False, True, True]  # shard 1 alone ran
    assert {i: record_path(directory, i, COUNT).stat().st_mtime_ns
            for i in (0, 2, 3)} == records
    assert _same(gather_sweep(base, SPEC, count=COUNT, directory=directory), one_job)


def test_shards_of_another_config_or_count_are_refused(base, sharded, tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(sharded, directory)
    # one shard launched with other overrides: refused before it computes anything
    with pytest.raises(ShardError, match=r"cannot compute shard 3 of 4: .* holds chunks of a "
                                         r"different configuration") as err:
        _shards(base, directory, indices=[3], seed=1)
    assert "\n" not in str(err.value)
    # the same run gathered as 3 shards: no record is one of its shards'
    job = prepare_sweep(base, SPEC)
    assert points_states(job, directory, 3, directory / "sweep_chunks") == [MISSING] * 3
    # a record edited to another configuration's hash
    path = record_path(directory, 0, COUNT)
    path.write_text(path.read_text().replace(job.hash, "0" * 64))
    assert points_states(job, directory, COUNT, directory / "sweep_chunks")[0] == MISMATCH
    with pytest.raises(ShardError, match=r"shard 0 of 4 made with a different config"):
        gather_sweep(base, SPEC, count=COUNT, directory=directory)


def test_a_foreign_chunk_file_is_refused_naming_its_shard(base, sharded, tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(sharded, directory)
    chunk_path(directory / "sweep_chunks", 5).write_bytes(b"not a netCDF file")
    with pytest.warns(UserWarning, match="unreadable .*; left out"), \
            pytest.raises(ShardError, match=r"shard 3 of 4 incomplete \(3: chunks 5 unreadable"):
        gather_sweep(base, SPEC, count=COUNT, directory=directory)


def test_a_chunk_that_raised_is_reported_as_one_job_reports_it(base, tmp_path):
    # chunk 5 raises in both runs (not the first chunk its shard evaluates: that one would
    # stop the shard, as the first chunk of one job stops the job)
    spec = SweepSpec(axes=SPEC.axes, endpoints=SPEC.endpoints, chunk_size=1)

    def sim(scenarios, start):
        if start == 5:
            raise RuntimeError("simulated failure")
        return simulate(scenarios)

    with pytest.warns(UserWarning, match="sweep chunk 5 .* failed"):
        one = run_sweep(base, spec, chunk_dir=tmp_path / "one", simulate_fn=sim)
    assert json.loads(one.attrs["errors"])[0]["chunk"] == 5 and one.attrs["n_missing"] == 1
    with pytest.warns(UserWarning, match="sweep chunk 5 .* failed"):
        _shards(base, tmp_path / "sh", spec=spec, simulate_fn=sim)
    assert _same(gather_sweep(base, spec, count=COUNT, directory=tmp_path / "sh"), one)


def test_stochastic_engine_sweep_shards_are_identical_to_one_job(tmp_path):
    # every patient's stochastic stream is keyed by its global index: a shard that numbered
    # its points from 0 would draw other realisations
    import dataclasses

    from cartsim.config import load_run_config
    from cartsim.tasks.common import engine_simulator

    cfg = load_run_config(["task=sweep", "engine=stochastic", "output.t_end=60",
                           "sweep.population_n=2", "sweep.chunk_size=2",
                           "sweep.endpoints=[cmax_qpcr,crs_g3plus]",
                           "sweep.axes=[{name: regimen.car_dose_per_kg, space: logspace, "
                           "start: 1e5, stop: 1e7, num: 4}]"])
    kw = {"simulate_fn": engine_simulator(cfg),
          "engine": {"engine": "stochastic", "stochastic": dataclasses.asdict(cfg.stochastic)}}
    one = run_sweep(cfg.scenario(), cfg.sweep, cfg.population, cfg.endpoints,
                    chunk_dir=tmp_path / "one", **kw)
    assert len(np.unique(one["cmax_qpcr"].values)) == 4
    for i in range(3):
        run_sweep_shard(cfg.scenario(), cfg.sweep, cfg.population, cfg.endpoints, index=i,
                        count=3, directory=tmp_path / "sh", **kw)
    got = gather_sweep(cfg.scenario(), cfg.sweep, cfg.population, cfg.endpoints, count=3,
                       directory=tmp_path / "sh", engine=kw["engine"])
    assert _same(got, one)


def test_gathered_sensitivity_shards_are_identical_to_one_job(base, tmp_path):
    one = run_sensitivity(base, SOBOL, chunk_dir=tmp_path / "one")
    directory = tmp_path / "sh"
    for i in range(3):
        run_sensitivity_shard(base, SOBOL, index=i, count=3, directory=directory)
    assert chunk_directory("sensitivity", directory) == directory / "sensitivity_chunks"
    got = gather_sensitivity(base, SOBOL, count=3, directory=directory)
    assert _same(got, one)
    assert np.isfinite(one["ST"].values).all()  # indices computed from every run
    chunk_path(directory / "sensitivity_chunks", 3).unlink()  # the last chunk: shard 2
    with pytest.raises(ShardError, match=r"shard 2 of 3 incomplete"):
        gather_sensitivity(base, SOBOL, count=3, directory=directory)
    with pytest.raises(ScenarioError, match=r"shard.count=5 is not accepted with 4 chunks"):
        gather_sensitivity(base, SOBOL, count=5, directory=directory)


def test_sharded_sensitivity_task_gathers_the_one_job_files(tmp_path, capsys):
    from cartsim.config import load_run_config
    from cartsim.sweep.task import run_sensitivity_task
    from cartsim.tasks.shard import run_sensitivity_shard_task

    task = ["task=sensitivity", "sensitivity.n_base=4", "sensitivity.chunk_size=4",
            "sensitivity.endpoints=[cmax_qpcr,cr_d28]",
            "sensitivity.parameters=[{name: model.params.rho_max, space: logspace, start: 0.3, "
            "stop: 1.3}, {name: regimen.car_dose_per_kg, space: logspace, start: 1e5, "
            "stop: 1e7}]"]
    one = run_sensitivity_task(load_run_config(task), tmp_path / "one")
    run = tmp_path / "run"
    for i in (1, 0):  # any order: the job that completes the last shard gathers
        run_sensitivity_shard_task(load_run_config([*task, "shard.count=2", f"shard.index={i}",
                                                    f"shard.dir={run}"]), tmp_path / f"j{i}")
    out = capsys.readouterr().out
    assert "1 of 2 shards not done yet" in out and f"wrote {run / 'sensitivity.nc'}" in out
    assert _same(_load(run / "sensitivity.nc"), _load(one))
    assert (run / "sensitivity.png").stat().st_size > 1000
    run_sensitivity_shard_task(load_run_config([*task, "shard.count=2", "shard.index=0",
                                                f"shard.dir={run}"]), tmp_path / "again")
    assert "shard 0 of 2 already done" in capsys.readouterr().out


# --- the command line, through a real launcher -------------------------------------------

def _cartsim(args, cwd, expect=0, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "cartsim.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


CLI_SWEEP = ["task=sweep", "output.t_end=60", "sweep.population_n=0", "sweep.chunk_size=1",
             "sweep.endpoints=[cmax_qpcr,crs_g3plus]",
             "sweep.axes=[{name: regimen.car_dose_per_kg, space: logspace, start: 1e5, "
             "stop: 1e7, num: 4}]"]


def _load(path) -> xr.Dataset:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


@pytest.mark.slow
def test_submitit_local_sweep_shards_gather_to_the_one_job_file(tmp_path):
    one = tmp_path / "one"
    _cartsim([*CLI_SWEEP, f"hydra.run.dir={one}"], cwd=tmp_path)
    sweep = tmp_path / "mr"
    command = ["-m", *CLI_SWEEP, "shard.count=3", "shard.index=range(0,3)",
               "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
               f"hydra.sweep.dir={sweep}"]
    proc = _cartsim(command, cwd=tmp_path)
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit
    assert "sharded sweep of 3 shards gathered" in proc.stdout
    assert _same(_load(sweep / "sweep.nc"), _load(one / "sweep.nc"))
    # a killed shard: no record; gathering by hand is refused in one line naming it
    record_path(sweep, 1, 3).unlink()
    (sweep / "sweep.nc").unlink()
    proc = _cartsim([*CLI_SWEEP, "shard.count=3", f"shard.dir={sweep}",
                     f"hydra.run.dir={tmp_path / 'g'}"], cwd=tmp_path, expect=2)
    assert proc.stderr.strip().splitlines()[-1].startswith("cartsim: error: cannot gather")
    assert "shard 1 of 3 missing" in proc.stderr
    # the same command again runs shard 1 alone, which then gathers
    _cartsim(command, cwd=tmp_path)
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.out"))
    assert logs.count("already done") == 2
    assert _same(_load(sweep / "sweep.nc"), _load(one / "sweep.nc"))


def test_a_sharded_sweep_outside_a_multirun_needs_its_directory(tmp_path):
    proc = _cartsim([*CLI_SWEEP, "shard.count=2", "shard.index=0",
                     f"hydra.run.dir={tmp_path}"], cwd=tmp_path, expect=2)
    assert "shard.dir=null is not accepted with shard.count=2 outside a multirun" in proc.stderr
