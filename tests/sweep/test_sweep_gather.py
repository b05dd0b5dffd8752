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


# --- synthetic multiruns (no simulation): layout, dtypes, refusals -----------------------

PRODUCTS, DOSES = ("nanobody", "ko", "ns7car"), (1e5, 3e6)


def make_multirun(root: Path, *, products=PRODUCTS, doses=DOSES, n_patient=3, n_time=4,
                  missing=(), corrupt=(), multirun_yaml=True, mode="MULTIRUN") -> Path:
    """A Hydra multirun as Hydra lays it out (multirun.yaml, <num>/.hydra/*.yaml), each job's
    ``sweep.nc`` holding floats, ints, booleans, strings (longer in later jobs), times and
    durations (hours apart between jobs), a scalar, a non-dimension coordinate and
    attributes; ``missing``/``corrupt`` job numbers."""
    import itertools

    root.mkdir(parents=True, exist_ok=True)
    if multirun_yaml:
        task = ["task=sweep", "product=" + ",".join(products),
                "regimen.car_dose_per_kg=" + ",".join(repr(d) for d in doses)]
        (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
            "task": task}}}))
    for num, (p, d) in enumerate(itertools.product(products, doses)):
        hydra = root / str(num) / ".hydra"
        hydra.mkdir(parents=True, exist_ok=True)
        (hydra / "overrides.yaml").write_text(yaml.safe_dump(
            ["task=sweep", f"product={p}", f"regimen.car_dose_per_kg={d!r}"]))
        (hydra / "config.yaml").write_text(yaml.safe_dump({"task": "sweep"}))
        (hydra / "hydra.yaml").write_text(f"hydra:\n  run:\n    dir: x\n  mode: {mode}\n")
        if num in missing:
            continue
        if num in corrupt:
            (root / str(num) / "sweep.nc").write_text("not netCDF")
            continue
        rng = np.random.default_rng(num)
        xr.Dataset(
            {"cmax": ("patient", rng.random(n_patient), {"units": "copies/ug"}),
             "traj": (("patient", "time"), rng.random((n_patient, n_time)), {"units": "1"}),
             "grade": ("patient", rng.integers(0, 5, n_patient)),
             "cr": ("patient", rng.random(n_patient) < 0.5),
             "status_name": ("patient", np.array(["success"] * (n_patient - 1)
                                                 + ["max_steps" + "!" * num])),
             "scalar": ((), float(num)),
             "when": ("patient", np.datetime64("2026-01-01", "ns")
                      + np.arange(n_patient) * np.timedelta64(31, "D")
                      + num * np.timedelta64(1, "h")),
             "lasted": ("patient", (np.arange(n_patient) + num) * np.timedelta64(90, "m")
                        .astype("timedelta64[ns]"))},
            coords={"patient": np.arange(n_patient), "time": np.arange(n_time, dtype=float),
                    "weight": ("patient", 60.0 + np.arange(n_patient))},
            attrs={"seed": 42, "config": f"job {num}"},
        ).to_netcdf(root / str(num) / "sweep.nc", engine="h5netcdf")
    return root


def _expected_cell(root: Path, num: int) -> xr.Dataset:
    with xr.open_dataset(root / str(num) / "sweep.nc", engine="h5netcdf") as f:
        return f.load()


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_streamed_gather_equals_every_job_file_with_its_dtypes(tmp_path, fmt):
    from cartsim.sweep.gather import gather_and_write

    root = make_multirun(tmp_path / "mr", missing=(1,), corrupt=(4,))
    ds, path = gather_and_write(root, fmt=fmt, out=tmp_path / f"g.{fmt}")
    ds = ds.load()
    assert path.exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert ds["traj"].dims == ("product", "regimen.car_dose_per_kg", "patient", "time")
    assert ds["product"].values.tolist() == list(PRODUCTS)
    assert ds["job_status"].values.tolist() == [[0, -1], [0, 0], [-2, 0]]
    assert (ds.attrs["n_jobs"], ds.attrs["n_missing"], ds.attrs["n_unreadable"]) == (6, 1, 1)
    assert ds.attrs["seed"] == 42 and ds.attrs["config"] == "job 0"  # the first job's
    for num, (i, j) in enumerate(np.ndindex(3, 2)):
        got = ds.isel(product=i, **{"regimen.car_dose_per_kg": j})
        if num in (1, 4):  # missing / unreadable: fill values, never numbers
            assert np.isnan(got["traj"]).all() and np.isnan(float(got["scalar"]))
            assert (got["grade"] == -1).all() and not got["cr"].any()
            assert (got["status_name"] == "").all()
            assert np.isnat(got["when"]).all() and np.isnat(got["lasted"]).all()
            continue
        ref = _expected_cell(root, num)
        for name in ref.data_vars:
            assert got[name].dtype.kind == ref[name].dtype.kind, name
            np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
            assert got[name].attrs == ref[name].attrs, name
    # the longest string (job 5) is not cut to the first job's width
    assert ds["status_name"].values[2, 1, -1] == "max_steps!!!!!"
    np.testing.assert_array_equal(ds["weight"].values, [60.0, 61.0, 62.0])


def test_in_memory_gather_equals_the_streamed_file(tmp_path):
    from cartsim.sweep.gather import gather, gather_and_write

    root = make_multirun(tmp_path / "mr", missing=(2,))
    mem = gather(root)
    on_disk, _ = gather_and_write(root, out=tmp_path / "g.nc")
    mem.attrs.pop("gathered")
    ref = on_disk.load()
    ref.attrs.pop("gathered")
    xr.testing.assert_identical(mem, ref)


def test_sparse_inferred_design_is_listed_along_job_not_a_huge_grid(tmp_path):
    """Without multirun.yaml and with every job at its own values (a random search), the
    keys' levels would make a 20^3 grid; the jobs are listed along ``job`` instead."""
    from cartsim.sweep.gather import gather

    root = tmp_path / "mr"
    rng = np.random.default_rng(0)
    for num in range(20):
        hydra = root / str(num) / ".hydra"
        hydra.mkdir(parents=True)
        a, b, c = rng.random(3)
        (hydra / "overrides.yaml").write_text(yaml.safe_dump(
            [f"patient.weight_kg={50 + a:.6f}", f"patient.marrow_blast_pct={b:.6f}",
             f"regimen.car_dose_per_kg={1e6 * c:.6f}"]))
        (hydra / "config.yaml").write_text(yaml.safe_dump({"task": "sweep"}))
        (hydra / "hydra.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
        xr.Dataset({"x": ((), float(num))}).to_netcdf(root / str(num) / "sweep.nc",
                                                        engine="h5netcdf")
    ds = gather(root)
    assert ds["x"].dims == ("job",) and ds["x"].values.tolist() == list(range(20))
    assert ds["patient.weight_kg"].dims == ("job",)


def test_jobs_with_different_grids_are_an_error_naming_the_index(tmp_path):
    from cartsim.sweep.gather import gather

    root = make_multirun(tmp_path / "mr", products=("ko",))
    other = _expected_cell(root, 1).assign_coords(time=np.arange(4) + 0.5)
    other.to_netcdf(root / "1" / "sweep.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match="different coordinates.*'time'"):
        gather(root)
    assert not list(root.glob(".*tmp"))


@pytest.mark.parametrize(("layout", "says"), [
    ("single_runs", "holds 2 single runs (e.g. 2026-01-01/12-00-00), not the jobs of one"),
    ("one_run", "is the output directory of a single run"),
    ("parent", "holds 2 multiruns (e.g. 2026-01-01/12-00-00); gather one of them"),
    ("empty", "holds no Hydra job and no multirun.yaml"),
])
def test_a_folder_that_is_not_one_multirun_is_refused_in_one_line(tmp_path, capsys, layout,
                                                                  says):
    folder = tmp_path / "outputs"
    folder.mkdir()
    runs = [folder / "2026-01-01" / "12-00-00", folder / "2026-01-01" / "13-00-00"]
    if layout == "single_runs":  # an ordinary outputs/ folder: runs without -m
        for run in runs:
            make_multirun(run, products=("ko",), doses=(1e5,), multirun_yaml=False,
                          mode="RUN")
            (run / ".hydra").mkdir()
    elif layout == "one_run":
        (folder / ".hydra").mkdir()
    elif layout == "parent":
        for run in runs:
            make_multirun(run, products=("ko",), doses=(1e5,))
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cartsim: error: ")
    assert f"{str(folder.resolve())!r} is not a Hydra multirun directory: expected the " \
        "directory of one multirun (hydra.sweep.dir)" in err
    assert says in err
    assert not list(folder.rglob("gathered*"))


def test_multirun_jobs_without_multirun_yaml_are_still_gathered(tmp_path):
    from cartsim.sweep.gather import gather

    root = make_multirun(tmp_path / "mr", multirun_yaml=False)
    ds = gather(root)
    assert ds["cmax"].dims == ("product", "regimen.car_dose_per_kg", "patient")
    assert sorted(ds["product"].values.tolist()) == sorted(PRODUCTS)
