"""A full disk or a lost write is an error naming the file, never a crash or a stray file.

Every writer goes through :func:`cartsim.io.atomic`; here its one low-level write
(``cartsim.io._write_file``) or ``os.fsync`` fails as a full disk or a lost write does, and,
where this machine lets an unprivileged user mount a small tmpfs (``unshare``), a real
full disk is tried end to end: before, HDF5 met the full disk itself and the process died of
a segmentation fault (exit 139) with an 889 kB temporary file left behind."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cartsim.io as cio
from cartsim.io import OutputError

NO_SPACE = "no space left on the device"


def _fail_after(monkeypatch, n_ok: int, code: int = errno.ENOSPC) -> dict:
    """Let ``n_ok`` writes through, then fail like a full disk: half a file, then OSError."""
    real, calls = cio._write_file, {"n": 0}

    def write(tmp, data):
        calls["n"] += 1
        if calls["n"] > n_ok:
            with open(tmp, "wb") as fh:
                fh.write(bytes(data)[:100])
            raise OSError(code, os.strerror(code))
        return real(tmp, data)

    monkeypatch.setattr(cio, "_write_file", write)
    return calls


def _figure():
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    return fig


WRITERS = {
    "netcdf": lambda p: cio.write_netcdf(xr.Dataset({"x": ("t", np.arange(50.0))}), p),
    "text": lambda p: cio.write_text("a table\n", p),
    "bytes": lambda p: cio.write_bytes(b"\x89PNG...", p),
    "figure": lambda p: cio.write_figure(_figure(), p, dpi=50),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_full_disk_is_an_output_error_and_the_old_file_stays(tmp_path, monkeypatch, kind):
    path = tmp_path / f"result.{'png' if kind == 'figure' else 'out'}"
    WRITERS[kind](path)
    before = path.read_bytes()
    _fail_after(monkeypatch, 0)
    with pytest.raises(OutputError) as info:
        WRITERS[kind](path)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert str(info.value).startswith(f"cannot write {path}: {NO_SPACE}; nothing was written")
    assert "\n" not in str(info.value)
    assert sorted(tmp_path.iterdir()) == [path] and path.read_bytes() == before


def test_a_lost_write_at_fsync_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(cio.os, "fsync", fsync)
    with pytest.raises(OutputError, match=r"cannot write .*summary\.csv: Input/output error "
                                          r"\(errno 5\)"):
        cio.write_text("x", tmp_path / "summary.csv")
    assert not any(tmp_path.iterdir())


def test_a_netcdf_too_large_to_build_in_memory_is_refused_before_hdf5_writes(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setattr(cio, "IMAGE_LIMIT_BYTES", 0)
    monkeypatch.setattr(cio.shutil, "disk_usage",
                        lambda p: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    ds = xr.Dataset({"x": ("t", np.zeros(10**6))})
    with pytest.raises(OutputError, match=r"needs ~0\.03 GB and the disk has 0\.00 GB free"):
        cio.write_netcdf(ds, tmp_path / "big.nc")
    assert not any(tmp_path.iterdir())


def test_a_sweep_keeps_its_completed_chunks_when_the_disk_fills(tmp_path, monkeypatch):
    from cartsim.scenario import Scenario
    from cartsim.simulation import simulate
    from cartsim.sweep import SweepAxis, SweepSpec, run_sweep

    spec = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", values=[1e5, 1e6, 1e7])],
                     endpoints=["cr_d28", "cmax_qpcr"], chunk_size=1)  # 3 chunks
    calls = _fail_after(monkeypatch, 3)  # sweep_spec.json, chunks 0 and 1
    with pytest.raises(OutputError, match=f"chunk_000002.nc: {NO_SPACE}"):
        run_sweep(Scenario(), spec, chunk_dir=tmp_path)
    assert calls["n"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chunk_000000.nc", "chunk_000001.nc", "sweep_spec.json"]
    monkeypatch.undo()
    solved = []

    def counting(scenarios, start):
        solved.append(start)
        return simulate(scenarios)

    resumed = run_sweep(Scenario(), spec, chunk_dir=tmp_path, simulate_fn=counting)
    assert solved == [2]  # the two completed chunks were reused, only the lost one ran
    assert resumed.attrs["n_missing"] == 0 and (resumed["status"].values == 0).all()


def test_gather_into_a_full_disk_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "sweep"))
    from test_sweep_gather import make_multirun

    from cartsim.sweep.gather import main

    root = make_multirun(tmp_path / "mr")
    monkeypatch.setattr(cio.shutil, "disk_usage",
                        lambda p: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    for fmt in ("netcdf", "zarr"):
        assert main([str(root), "--format", fmt, "--out", str(tmp_path / f"g.{fmt}")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"cartsim: error: cannot write {tmp_path / f'g.{fmt}'}: it "
                              "needs ~0.02 GB and the disk has 0.00 GB free") and \
            err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mr"]


# --- a real full disk: a 200 kB tmpfs in a private mount namespace ---------------------------

def _tmpfs_shell(mount: Path, size: str, command: str) -> subprocess.CompletedProcess:
    """Run ``command`` (sh) with a tmpfs of ``size`` mounted on ``mount``, in a private mount
    namespace (as root, or as a user mapped to root where user namespaces are allowed)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not available")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    script = f"mount -t tmpfs -o size={size} tmpfs {mount} || exit 97; {command}"
    proc = subprocess.run(["unshare", *user, "--mount", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 97 or "unshare failed" in proc.stderr \
            or "Operation not permitted" in proc.stderr[:500]:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    return proc


def test_a_real_full_disk_raises_output_error_not_a_segfault(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    code = ("import numpy as np, xarray as xr; from cartsim.io import write_netcdf; "
            "write_netcdf(xr.Dataset({'x': (('a', 'b'), np.random.rand(300, 100))}), "
            f"'{mount}/out.nc')")
    proc = _tmpfs_shell(mount, "100k", f"{sys.executable} -c \"{code}\"; echo rc=$?; "
                                       f"ls -A {mount}")
    out = proc.stdout.strip().splitlines()
    assert out[0] == "rc=1", proc.stdout + proc.stderr  # an exception, not signal 11
    assert f"OutputError: cannot write {mount}/out.nc: {NO_SPACE}" in proc.stderr
    assert out[1:] == []  # no temporary file, no partial file


def test_the_cli_on_a_real_full_disk_exits_with_one_line_and_no_temporary_file(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    cartsim = Path(sys.executable).parent / "cartsim"
    proc = _tmpfs_shell(mount, "100k", f"cd {tmp_path} && {cartsim} hydra.run.dir={mount}/run;"
                                       f" echo rc=$?; find {mount} -name '*.tmp*'")
    rc = next(line for line in proc.stdout.splitlines() if line.startswith("rc="))
    assert rc not in ("rc=0", "rc=139"), proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("cartsim: error:")]
    assert len(errors) == 1 and NO_SPACE in errors[0] and "simulation.nc" in errors[0]
    assert "Traceback" not in proc.stderr and "Segmentation" not in proc.stderr
    assert proc.stdout.strip().endswith(rc)  # find listed no temporary file
