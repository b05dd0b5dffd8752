"""End to end, a few bad inputs of each kind through ``cartsim`` itself (a subprocess each,
so kept few; the Python-level corpus is in the other modules): exit code 2, one line
``cartsim: error: ...`` on stderr naming the key or file, and no traceback unless asked."""

from __future__ import annotations

import pytest
from robust_helpers import write


def _one_error_line(proc, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cartsim: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", ["cohort", "parameter", "observations", "output"])
def test_bad_inputs_exit_2_with_one_line(tmp_path, run_cli, kind):
    run = f"hydra.run.dir={tmp_path / 'run'}"
    if kind == "cohort":  # found while the task runs, not when the config is built
        path = write(tmp_path / "cohort.csv",
                     "patient_id;weight [kg];height [cm];marrow_blasts [%]\nA;70;170;40\n")
        proc = run_cli("task=trial", f"trial.cohort_file={path}", run)
        _one_error_line(proc, 2, str(path), "expected a comma-delimited UTF-8 CSV")
    elif kind == "parameter":
        proc = run_cli("+model.params.k_kill=1e9", run)
        _one_error_line(proc, 2, "model.params.k_kill=1000000000.0 is not accepted",
                        "[0.01, 20.0] 1/day")
    elif kind == "observations":
        path = write(tmp_path / "obs.csv", "ID,TIME,DV,ANALYTE,UNIT\nA,7,120,qpcr,copies/ug\n")
        proc = run_cli("task=fit", f"data={path}", "fit.parameters=[k_kill]", run)
        _one_error_line(proc, 2, str(path), "patient ID 'A' has no CAR-T dose record")
    else:  # an output directory that cannot be created (root ignores file permissions)
        blocker = write(tmp_path / "a_file", "")
        proc = run_cli(f"hydra.run.dir={blocker / 'run'}")
        _one_error_line(proc, 2, str(blocker / "run"), "expected a writable output directory")
    assert not list(tmp_path.rglob("*.nc"))


def test_debug_shows_the_traceback_and_keeps_the_exit_code(run_cli, tmp_path):
    run = f"hydra.run.dir={tmp_path / 'run'}"
    for proc in (run_cli("--debug", "seed=-1", run),
                 run_cli("seed=-1", run, env={"CARTSIM_DEBUG": "1"})):
        assert proc.returncode == 2
        assert "Traceback" in proc.stderr and "ScenarioError" in proc.stderr
        assert proc.stderr.rstrip().splitlines()[-1] == (
            "cartsim: error: seed=-1 is not accepted: expected an integer from 0 to 2**64 - 1")


def test_a_run_where_every_patient_fails_exits_3(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("solver.max_steps=1", "output.t_end=5", f"hydra.run.dir={run_dir}")
    line = _one_error_line(proc, 3, "every patient failed to solve (1 of 1",
                           str((run_dir / "simulation.nc").resolve()))
    assert "max_steps" in line
    assert (run_dir / "simulation.nc").is_file()  # written for inspection all the same
