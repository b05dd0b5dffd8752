"""``cartsim gather`` streams: memory holds one slab of one job, not the multirun.

Measured with :mod:`tracemalloc` (it sees NumPy's buffers; HDF5's own chunk cache is
bounded by HDF5). Loading every job and assembling the result, as gather did before,
peaks above twice the multirun's size."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import xarray as xr
from test_sweep_gather import make_multirun

MB = 1e6


def _peak(fn):
    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_gathering_tens_of_mb_of_jobs_holds_a_few_mb(tmp_path, fmt):
    from cartsim.sweep.gather import gather_and_write

    root = make_multirun(tmp_path / "mr", products=("a", "b", "c", "d"),
                         n_patient=4, n_time=150_000)  # 8 jobs x 4.8 MB of trajectories
    size = sum(p.stat().st_size for p in root.rglob("sweep.nc"))
    assert size > 35 * MB
    (ds, path), peak = _peak(lambda: gather_and_write(root, fmt=fmt,
                                                       out=tmp_path / f"g.{fmt}"))
    assert peak < 25 * MB, f"gathering {size / MB:.0f} MB peaked at {peak / MB:.0f} MB"
    with xr.open_dataset(root / "7" / "sweep.nc", engine="h5netcdf") as ref:
        np.testing.assert_array_equal(ds["traj"].values[3, 1], ref["traj"].values)


def test_slabs_smaller_than_a_job_give_the_same_file(tmp_path, monkeypatch):
    """A job's variable larger than SLAB_BYTES is copied in slabs along its first dim."""
    from cartsim.sweep import gather_store
    from cartsim.sweep.gather import gather

    root = make_multirun(tmp_path / "mr", missing=(3,), n_patient=7, n_time=5)
    whole = gather(root)
    monkeypatch.setattr(gather_store, "SLAB_BYTES", 50)  # 1 row of traj (40 B) per slab
    assert list(gather_store._slabs((7, 5), 8)) == [(slice(i, i + 1),) for i in range(7)]
    slabbed = gather(root)
    for ds in (whole, slabbed):
        ds.attrs.pop("gathered")
    xr.testing.assert_identical(whole, slabbed)


def test_gather_refuses_more_expected_jobs_than_it_may_track(tmp_path, monkeypatch):
    import importlib

    from cartsim.budget import BudgetError

    g = importlib.import_module("cartsim.sweep.gather")

    root = make_multirun(tmp_path / "mr")
    monkeypatch.setattr(g, "MEMORY_LIMIT_BYTES", 5 * g.CELL_BYTES)
    with pytest.raises(BudgetError, match=r"\(6 expected jobs\) needs ~0\.0 GB of memory, "
                                          r"more than the 0\.0 GB available"):
        g.gather(root)
