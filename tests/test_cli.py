"""The ``cartsim`` command line: help, --cfg, error reporting, writing outputs, multirun."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import cartsim
from cartsim import cli


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m cartsim.cli ARGS`` in ``cwd`` (a tmp dir, so nothing lands in the repo)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", "cartsim.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_help_lists_groups_and_options(tmp_path):
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cartsim: simulate CD7-targeted CAR-T therapy" in proc.stdout
    assert ("product: allo_ko, ko, ko_donor, nanobody, nanobody_donor, ns7car, ns7car_donor"
            in proc.stdout)
    assert "regimen: flu_cy, flu_cy_high, flu_cy_low" in proc.stdout
    assert not any(tmp_path.iterdir())


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).parent / "cartsim"
    if not script.exists():
        pytest.skip("cartsim console script not installed in this environment")
    proc = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Configuration groups" in proc.stdout


def test_cfg_job_prints_the_composed_config(tmp_path):
    proc = run_cli("--cfg", "job", "product=ko", "regimen.car_dose_per_kg=5e5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["task"] == "simulate"
    assert cfg["output_file"] == "simulation.nc"
    assert cfg["product"]["name"] == "ko"
    assert cfg["product"]["residual_cd7"] == 0.02
    assert cfg["regimen"]["car_dose_per_kg"] == 5e5
    assert cfg["patient"]["marrow_blast_pct"] == 40.0
    assert "hydra" not in cfg
    assert not any(tmp_path.iterdir())  # printing the config runs nothing


@pytest.mark.parametrize(("override", "needles"), [
    ("regimen.car_dose=1", ["regimen.car_dose", "Key 'car_dose' not in 'Regimen'"]),
    ("regimen.car_dose_per_kg=abc", ["regimen.car_dose_per_kg", "'abc'", "Float"]),
    ("product=foo", ["product/foo", "Available options in 'product'", "ko_donor"]),
], ids=["unknown-key", "wrong-type", "unknown-product"])
def test_composition_errors_exit_non_zero_with_hydras_message(tmp_path, override, needles):
    proc = run_cli(override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0
    for needle in needles:
        assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("overrides", "message"), [
    (["regimen.car_dose_per_kg=-1"],
     "regimen.car_dose_per_kg=-1.0 is not accepted: expected a number >= 0.0"),
    (["regimen.car_dose_per_kg=nan"],
     "regimen.car_dose_per_kg=nan is not accepted: expected a finite number"),
    (["patient.marrow_blast_pct=120"],
     "patient.marrow_blast_pct=120.0 is not accepted: expected a number < 100.0"),
    (["regimen.ld_days=[-3,-4,-5]"],
     "regimen.ld_days=[-3.0, -4.0, -5.0] is not accepted: expected strictly increasing days"),
    (["task=fly"], "task='fly' is not accepted: expected one of simulate"),
    (["+regimen.car_dose=1"], "regimen.car_dose is not a known key: accepted keys in regimen"),
], ids=["negative", "nan", "blast120", "ld_order", "task", "appended-key"])
def test_value_errors_print_cartsim_error_and_exit_2(tmp_path, overrides, message):
    proc = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"cartsim: error: {message}")
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("*.nc"))


def test_tasks_registry_maps_names_to_callables():
    assert "simulate" in cli.TASKS
    assert all(callable(f) for f in cli.TASKS.values())


# --- writing outputs, with a stand-in simulate (in-process), so the CLI is tested on its own ---

@pytest.fixture
def stand_in_simulate(monkeypatch):
    """Replace cartsim.simulate / cartsim.summary by tiny fakes whose output depends on the dose."""
    calls = []

    def simulate(scenario):
        calls.append(scenario)
        dose = scenario.regimen.car_dose_per_kg
        return xr.Dataset({"car_t": ("time", np.arange(4.0) * dose, {"units": "cells"})},
                          coords={"time": ("time", np.arange(4.0), {"units": "day"})})

    simulate_module = types.ModuleType("cartsim.simulation")
    simulate_module.simulate = simulate
    summary_module = types.ModuleType("cartsim.summary")
    summary_module.format_summary = lambda ds: f"peak CAR-T {float(ds.car_t.max()):.3g} cells"
    # patch the attribute first: looking up the old value runs the lazy export, which must
    # resolve to (and restore) the real function, not the stand-in module below
    monkeypatch.setattr(cartsim, "simulate", simulate, raising=False)
    monkeypatch.setitem(sys.modules, "cartsim.simulation", simulate_module)
    monkeypatch.setitem(sys.modules, "cartsim.summary", summary_module)
    return calls


def run_in_process(monkeypatch, *args: str) -> None:
    # "none" leaves logging alone, so Hydra does not rewire pytest's handlers
    monkeypatch.setattr(sys, "argv", ["cartsim", *args, "hydra/job_logging=none",
                                      "hydra/hydra_logging=none"])
    cli.main()


def test_simulate_writes_netcdf_and_prints_path_and_summary(tmp_path, monkeypatch, capsys,
                                                            stand_in_simulate):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    run_in_process(monkeypatch, "product=ko", "output_file=out.nc", f"hydra.run.dir={run_dir}")
    out = capsys.readouterr().out.splitlines()
    path = run_dir / "out.nc"
    assert out[0] == f"cartsim: wrote {path.resolve()}"
    assert out[1] == "peak CAR-T 3e+06 cells"
    assert stand_in_simulate[0].product.name == "ko"
    assert type(stand_in_simulate[0]) is cartsim.scenario.Scenario
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds.car_t.values, np.arange(4.0) * 1e6)
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".hydra")) == [
        "out.nc"]  # no temporary file left behind
    assert os.getcwd() == str(tmp_path)  # hydra.job.chdir is false


def test_multirun_writes_one_file_per_job(tmp_path, monkeypatch, capsys, stand_in_simulate):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    run_in_process(monkeypatch, "-m", "regimen.car_dose_per_kg=1e5,1e6,1e7",
                   f"hydra.sweep.dir={sweep}")
    wrote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("cartsim:")]
    paths = [sweep / str(i) / "simulation.nc" for i in range(3)]
    assert wrote[:3] == [f"cartsim: wrote {p.resolve()}" for p in paths]
    for path, dose in zip(paths, (1e5, 1e6, 1e7), strict=True):
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            assert float(ds.car_t[1]) == dose
    # the multirun ends by gathering its jobs (conf/hydra/callbacks/gather.yaml, on by default)
    assert wrote[3].startswith(f"cartsim: gathered {sweep / 'gathered.nc'}: 3/3 jobs gathered")
    with xr.open_dataset(sweep / "gathered.nc", engine="h5netcdf") as g:
        np.testing.assert_array_equal(g["regimen.car_dose_per_kg"].values, [1e5, 1e6, 1e7])


def test_rerunning_a_multirun_skips_completed_jobs(tmp_path, monkeypatch, capsys,
                                                   stand_in_simulate):
    """The same command with the same sweep dir resumes: only unfinished jobs run again."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    args = ("-m", "regimen.car_dose_per_kg=1e5,1e6,1e7", f"hydra.sweep.dir={sweep}")
    run_in_process(monkeypatch, *args)
    assert len(stand_in_simulate) == 3
    capsys.readouterr()
    # job 1 was killed before it finished: no marker (its file may be there or not)
    (sweep / "1" / cli.DONE_MARKER).unlink()
    run_in_process(monkeypatch, *args)
    out = capsys.readouterr().out
    assert len(stand_in_simulate) == 4  # only job 1 ran again
    assert stand_in_simulate[-1].regimen.car_dose_per_kg == 1e6
    assert out.count("already complete") == 2
    assert "3/3 jobs gathered" in out
    # a marker of different overrides (another sweep in the same dir) does not count
    (sweep / "2" / cli.DONE_MARKER).write_text(cli.job_key(["regimen.car_dose_per_kg=5"]))
    run_in_process(monkeypatch, *args)
    assert len(stand_in_simulate) == 5 and stand_in_simulate[-1].regimen.car_dose_per_kg == 1e7


def test_every_patient_failed_exits_3_after_writing(tmp_path, monkeypatch, capsys,
                                                   stand_in_simulate):
    """A run whose every patient failed still writes its file, then says so and exits 3;
    one patient solved is a result (exit 0)."""
    def failing(scenario, status=(1, 2)):
        return xr.Dataset({"car_t": ("time", np.full(2, np.nan)),
                           "status": ("patient", np.array(status)),
                           "status_name": ("patient", np.array(["max_steps", "underflow"]))})

    monkeypatch.setattr(sys.modules["cartsim.simulation"], "simulate", failing)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        run_in_process(monkeypatch, f"hydra.run.dir={tmp_path / 'run'}")
    assert info.value.code == cli.EXIT_ALL_FAILED
    err = capsys.readouterr().err.strip()
    assert err.startswith("cartsim: error: every patient failed to solve (2 of 2; solver "
                          "status max_steps, underflow)") and "\n" not in err
    assert (tmp_path / "run" / "simulation.nc").is_file()
    monkeypatch.setattr(sys.modules["cartsim.simulation"], "simulate",
                        lambda sc: failing(sc, status=(0, 2)))
    run_in_process(monkeypatch, f"hydra.run.dir={tmp_path / 'run2'}")  # no SystemExit
    assert "every patient failed" not in capsys.readouterr().err


def test_an_internal_error_is_one_line_unless_debugging(tmp_path, monkeypatch, capsys,
                                                         stand_in_simulate):
    def broken(scenario):
        raise RuntimeError("boom")

    monkeypatch.setattr(sys.modules["cartsim.simulation"], "simulate", broken)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARTSIM_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info:
        run_in_process(monkeypatch, f"hydra.run.dir={tmp_path / 'run'}")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err == ("cartsim: error: internal error: RuntimeError: boom (run again with --debug "
                   "or CARTSIM_DEBUG=1 for the traceback)\n")
    assert "HYDRA_FULL_ERROR" not in os.environ  # restored after the run
    with pytest.raises(SystemExit) as info:
        run_in_process(monkeypatch, "--debug", f"hydra.run.dir={tmp_path / 'run'}")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and 'raise RuntimeError("boom")' in err
    assert err.rstrip().endswith("RuntimeError: boom (run again with --debug or "
                                 "CARTSIM_DEBUG=1 for the traceback)")


def test_write_netcdf_leaves_no_file_when_writing_fails(tmp_path):
    class Broken:
        def to_netcdf(self, path, engine):
            Path(path).write_text("half a file")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cli.write_netcdf(Broken(), tmp_path / "simulation.nc")
    assert not any(tmp_path.iterdir())


# --- end to end with the real model -------------------------------------------------------

def test_cli_simulates_the_default_scenario(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    path = (run_dir / "simulation.nc").resolve()
    lines = proc.stdout.splitlines()
    wrote = lines.index(f"cartsim: wrote {path}")
    assert any(line.strip() for line in lines[wrote + 1:]), "no summary printed"
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.data_vars
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_cli_multirun_writes_three_distinct_files(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "regimen.car_dose_per_kg=1e5,1e6,1e7", f"hydra.sweep.dir={sweep}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    paths = [(sweep / str(i) / "simulation.nc").resolve() for i in range(3)]
    for path in paths:
        assert f"cartsim: wrote {path}" in proc.stdout
    datasets = [xr.load_dataset(p, engine="h5netcdf") for p in paths]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not datasets[i].equals(datasets[j]), f"jobs {i} and {j} wrote the same data"


@pytest.mark.parametrize(("exc", "code", "line"), [
    (NotADirectoryError(20, "Not a directory", "/x/run"), 2,
     "cartsim: error: /x/run: Not a directory: expected a writable output directory"),
    (OSError(28, "No space left on device", "/x/run/.hydra"), 1,
     "cartsim: error: /x/run/.hydra: No space left on device\n"),
    (cli.ScenarioError("seed=-1 is not accepted: expected an integer"), 2,
     "cartsim: error: seed=-1 is not accepted: expected an integer\n"),
], ids=["not-a-directory", "disk-full", "scenario"])
def test_report_turns_errors_into_one_line_and_an_exit_code(capsys, monkeypatch, exc, code,
                                                            line):
    monkeypatch.setitem(cli._state, "debug", False)
    with pytest.raises(SystemExit) as info:
        cli._report(exc)
    assert info.value.code == code
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1
