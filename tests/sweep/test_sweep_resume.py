"""Resumable sweeps: interrupted, crashed or corrupted runs resume to the uninterrupted result."""

import json

import numpy as np
import pytest
from sweep_helpers import assert_same_values

from cartsim.simulation import simulate
from cartsim.sweep import SweepAxis, SweepSpec, run_sweep
from cartsim.sweep.store import SweepMismatchError

SPEC = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", space="logspace", start=1e5,
                                 stop=1e7, num=3),
                       SweepAxis("patient.marrow_blast_pct", values=[5.0, 50.0])],
                 endpoints=["cr_d28", "cmax_qpcr", "crs_g3plus"], chunk_size=2)  # 3 chunks


@pytest.fixture(scope="module")
def uninterrupted(base):
    return run_sweep(base, SPEC)


class Crash(RuntimeError):
    pass


def _crash_on(call_numbers, exc=Crash):
    calls = {"n": 0}

    def sim(scenarios, start):
        calls["n"] += 1
        if calls["n"] in call_numbers:
            raise exc("simulated crash")
        return simulate(scenarios)

    return sim, calls


def test_a_crashed_chunk_is_reported_missing_and_resumed(base, uninterrupted, tmp_path):
    sim, _ = _crash_on({2})
    with pytest.warns(UserWarning, match="chunk 1 .* failed"):
        first = run_sweep(base, SPEC, chunk_dir=tmp_path, simulate_fn=sim)
    assert first.attrs["n_missing"] == 2
    assert (first["status"].values == -1).sum() == 2
    assert json.loads(first.attrs["errors"])[0]["chunk"] == 1
    assert sorted(p.name for p in tmp_path.glob("chunk_*.nc")) == ["chunk_000000.nc",
                                                                  "chunk_000002.nc"]
    sim2, calls = _crash_on(set())
    resumed = run_sweep(base, SPEC, chunk_dir=tmp_path, simulate_fn=sim2)
    assert calls["n"] == 1  # only the missing chunk was computed
    assert resumed.attrs["n_missing"] == 0
    assert_same_values(resumed, uninterrupted)


def test_a_killed_run_resumes_to_the_same_dataset(base, uninterrupted, tmp_path):
    sim, _ = _crash_on({2}, exc=KeyboardInterrupt)  # the process is stopped mid-sweep
    with pytest.raises(KeyboardInterrupt):
        run_sweep(base, SPEC, chunk_dir=tmp_path, simulate_fn=sim)
    assert [p.name for p in tmp_path.glob("chunk_*.nc")] == ["chunk_000000.nc"]
    # a half-written file of the killed process sits under a temporary name
    (tmp_path / ".chunk_000001.nc.123.tmp").write_bytes(b"\x89HDF partial")
    sim2, calls = _crash_on(set())
    resumed = run_sweep(base, SPEC, chunk_dir=tmp_path, simulate_fn=sim2)
    assert calls["n"] == 2
    assert_same_values(resumed, uninterrupted)


def test_a_corrupt_or_foreign_chunk_is_recomputed(base, uninterrupted, tmp_path):
    run_sweep(base, SPEC, chunk_dir=tmp_path)
    (tmp_path / "chunk_000001.nc").write_bytes(b"not a netCDF file")
    other = tmp_path / "other"
    run_sweep(base, SweepSpec(axes=SPEC.axes, endpoints=SPEC.endpoints, chunk_size=2,
                              ci_level=0.9), chunk_dir=other)
    (other / "chunk_000002.nc").replace(tmp_path / "chunk_000002.nc")  # another sweep's
    sim, calls = _crash_on(set())
    with pytest.warns(UserWarning, match="recomputing"):
        resumed = run_sweep(base, SPEC, chunk_dir=tmp_path, simulate_fn=sim)
    assert calls["n"] == 2
    assert_same_values(resumed, uninterrupted)


def test_a_different_spec_is_refused(base, tmp_path):
    run_sweep(base, SPEC, chunk_dir=tmp_path)
    changed = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", values=[1e5])],
                        endpoints=SPEC.endpoints, chunk_size=2)
    with pytest.raises(SweepMismatchError, match="different sweep.*never mixed"):
        run_sweep(base, changed, chunk_dir=tmp_path)
    with pytest.raises(SweepMismatchError):
        run_sweep(base, SPEC, chunk_dir=tmp_path, seed=1)


def test_resume_false_recomputes(base, tmp_path):
    run_sweep(base, SPEC, chunk_dir=tmp_path)
    sim, calls = _crash_on(set())
    import dataclasses

    run_sweep(base, dataclasses.replace(SPEC, resume=False), chunk_dir=tmp_path,
              simulate_fn=sim)
    assert calls["n"] == 3


def test_trajectories_are_written_beside_the_chunks(base, tmp_path):
    import xarray as xr

    spec = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", values=[1e5, 1e6])],
                     endpoints=["cmax_qpcr"], save_trajectories=True)
    ds = run_sweep(base, spec, chunk_dir=tmp_path)
    with xr.open_dataset(tmp_path / "trajectories_000000.nc") as traj:
        assert traj.sizes["patient"] == 2
        assert traj["point"].values.tolist() == [0, 1]
        q = traj["car_copies_per_ug"].where(traj["time"] >= 0).max("time").values
    np.testing.assert_allclose(q, ds["cmax_qpcr"].values, rtol=1e-9)
