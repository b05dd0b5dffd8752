"""Hydra multiruns through real launchers (basic, joblib, submitit local), gathered into one
Dataset that must equal the jobs' own files."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from sweep_helpers import assert_same_values

from cartsim.sweep.gather import EXIT_INCOMPLETE, gather, main


def _cartsim(args, cwd, timeout=240):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "cartsim.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _job_values(job: Path) -> dict:
    from cartsim.sweep.gather import _parse

    return dict(_parse(t)[:2] for t in yaml.safe_load((job / ".hydra/overrides.yaml").read_text()))


def _check_equals_job_files(ds: xr.Dataset, sweep_dir: Path, keys, fname):
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())
    assert len(jobs) == ds["job_status"].size
    for job in jobs:
        vals = _job_values(job)
        with xr.open_dataset(job / fname) as ref:
            got = ds.sel({k: vals[k] for k in keys})
            assert int(got["job_status"]) == 0
            assert_same_values(got[list(ref.data_vars)], ref)


@pytest.fixture(scope="module")
def basic_multirun(tmp_path_factory):
    root = tmp_path_factory.mktemp("basic")
    sweep_dir = root / "mr"
    proc = _cartsim(["-m", "task=sweep", "sweep.endpoints=[cmax_qpcr,cr_d28,crs_g3plus]",
                     "product=nanobody,ko", "regimen.car_dose_per_kg=1e5,3e6",
                     f"hydra.sweep.dir={sweep_dir}", "hydra/callbacks=gather"], cwd=root)
    return sweep_dir, proc


def test_basic_launcher_multirun_gathers_into_a_grid(basic_multirun):
    sweep_dir, proc = basic_multirun
    assert "4/4 jobs gathered" in proc.stdout  # the Hydra callback ran at the end
    with xr.open_dataset(sweep_dir / "gathered.nc") as ds:
        ds = ds.load()
    assert ds["cmax_qpcr"].dims == ("product", "regimen.car_dose_per_kg")
    assert ds["product"].values.tolist() == ["nanobody", "ko"]
    assert ds["regimen.car_dose_per_kg"].values.tolist() == [1e5, 3e6]
    assert ds["regimen.car_dose_per_kg"].attrs["units"] == "cells/kg"
    assert ds.attrs["n_missing"] == 0
    _check_equals_job_files(ds, sweep_dir, ["product", "regimen.car_dose_per_kg"], "sweep.nc")
    assert len({float(v) for v in ds["cmax_qpcr"].values.ravel()}) == 4


def test_missing_and_unreadable_jobs_are_reported(basic_multirun, tmp_path):
    import shutil

    src, _ = basic_multirun
    sweep_dir = tmp_path / "mr"
    shutil.copytree(src, sweep_dir)
    (sweep_dir / "gathered.nc").unlink()
    (sweep_dir / "1" / "sweep.nc").unlink()          # a job that crashed
    (sweep_dir / "2" / "sweep.nc").write_text("x")   # a corrupt file
    shutil.rmtree(sweep_dir / "3")                   # a job that never started
    out = tmp_path / "g.zarr"
    code = main([str(sweep_dir), "--format", "zarr", "--out", str(out)])
    assert code == EXIT_INCOMPLETE
    ds = xr.open_zarr(out).load()
    st = ds["job_status"].sel(product=["nanobody", "ko"]).values
    assert st.tolist() == [[0, -1], [-2, -1]]
    assert ds.attrs["n_missing"] == 2 and ds.attrs["n_unreadable"] == 1
    assert np.isnan(ds["cmax_qpcr"].values[0, 1]) and np.isfinite(ds["cmax_qpcr"].values[0, 0])
    with xr.open_dataset(src / "0" / "sweep.nc") as ref:
        np.testing.assert_allclose(float(ds["cmax_qpcr"][0, 0]), float(ref["cmax_qpcr"]))
    assert main([str(tmp_path / "nowhere")]) == 2


def test_joblib_launcher(tmp_path):
    sweep_dir = tmp_path / "mr"
    _cartsim(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "task=sweep",
              "sweep.endpoints=[cmax_qpcr]", "patient.marrow_blast_pct=5,60",
              f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    ds = gather(sweep_dir)
    assert ds["cmax_qpcr"].dims == ("patient.marrow_blast_pct",)
    _check_equals_job_files(ds, sweep_dir, ["patient.marrow_blast_pct"], "sweep.nc")


def test_submitit_local_launcher_runs_the_cluster_path(tmp_path):
    # submitit's local executor: the same pickled-job path as submitit_slurm, without SLURM
    sweep_dir = tmp_path / "mr"
    _cartsim(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
              "output.t_end=30", "product=nanobody,ko", f"hydra.sweep.dir={sweep_dir}"],
             cwd=tmp_path)
    assert (sweep_dir / ".submitit").is_dir()
    ds = gather(sweep_dir)
    assert ds["car_copies_per_ug"].dims == ("product", "patient", "time")
    _check_equals_job_files(ds, sweep_dir, ["product"], "simulation.nc")


def test_gather_without_multirun_yaml_infers_the_grid(basic_multirun, tmp_path):
    import shutil

    src, _ = basic_multirun
    sweep_dir = tmp_path / "mr"
    shutil.copytree(src, sweep_dir)
    (sweep_dir / "multirun.yaml").unlink()
    ds = gather(sweep_dir)
    # without Hydra's record the keys that vary between jobs become the dims (sorted names)
    assert ds["cmax_qpcr"].dims == ("product", "regimen.car_dose_per_kg")
    _check_equals_job_files(ds, sweep_dir, ["product", "regimen.car_dose_per_kg"], "sweep.nc")
