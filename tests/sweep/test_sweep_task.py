"""`cartsim task=sweep`: the headline command, resuming across invocations, bad input."""

import subprocess
import sys

import numpy as np
import xarray as xr
from sweep_helpers import assert_same_values

from cartsim.config import load_run_config
from cartsim.sweep.task import run_sweep_task

SMALL = ["task=sweep", "sweep=dose_vs_burden", "sweep.chunk_size=2",
         "sweep.axes.0.num=2", "sweep.axes.1.values=[5.0,60.0]"]


def test_sweep_task_resumes_across_invocations(tmp_path):
    chunks = tmp_path / "chunks"
    cfg = load_run_config([*SMALL, f"sweep.resume_dir={chunks}"])
    first = run_sweep_task(cfg, tmp_path / "run1")
    stamps = {p.name: p.stat().st_mtime_ns for p in chunks.glob("chunk_*.nc")}
    assert len(stamps) == 2
    (chunks / "chunk_000001.nc").unlink()  # as if the first run had been killed there
    second = run_sweep_task(cfg, tmp_path / "run2")
    assert (chunks / "chunk_000000.nc").stat().st_mtime_ns == stamps["chunk_000000.nc"]
    with xr.open_dataset(first) as a, xr.open_dataset(second) as b:
        assert_same_values(a, b)
        assert a["mrd_neg_cr_d28"].dims == ("regimen.car_dose_per_kg",
                                            "patient.marrow_blast_pct")
        assert a.attrs["sweep_name"] == "dose_vs_burden"
        assert np.isin(a["status"].values, [0]).all()


def test_unknown_axis_on_the_command_line_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cartsim.cli", "task=sweep",
         "sweep.axes=[{name: dose, values: [1]}]", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "cartsim: error: sweep.axes[0].name='dose' is not accepted" in proc.stderr
    assert "regimen.car_dose_per_kg" in proc.stderr
