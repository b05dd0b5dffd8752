"""Result Datasets follow CF-1.10 (cartsim.cf), in memory and once written to disk.

cf_xarray reads the conventions as a CF-aware tool would (the time axis, the status
flags); its pint unit registry (UDUNITS-2 names) parses every unit, the count nouns
declared by ``cartsim.cf`` first replaced by 1.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import cartsim
from cartsim.cf import CONVENTIONS, cf_conventions, udunits
from cartsim.io import write_netcdf
from cartsim.scenario import OutputOptions, Scenario
from cartsim.solvers.api import STATUS_NAMES

cf_xarray = pytest.importorskip("cf_xarray")


@pytest.fixture(scope="module")
def ds():
    return cartsim.simulate(cartsim.load_config())


@pytest.fixture(scope="module")
def stochastic():
    from cartsim.stochastic import StochasticOptions
    from cartsim.stochastic.engine import simulate_stochastic

    sc = Scenario(output=OutputOptions(t_end=10.0, dt=5.0))
    return simulate_stochastic(sc, engine="agent", replicates=2, seed=3,
                               options=StochasticOptions(agent={"n_clones": 5}))


def _check(ds: xr.Dataset, *, typed: bool = True) -> None:
    """The conventions of cartsim.cf; ``typed=False`` for zarr, whose attributes are JSON
    (lists, not typed arrays)."""
    assert ds.attrs["Conventions"] == CONVENTIONS and "conventions" not in ds.attrs
    first = ds.attrs["history"].splitlines()[0]
    assert first.startswith(ds.attrs["created"]) and cartsim.__version__ in first
    assert ds.cf.axes == {"T": ["time"]}
    assert ds["time"].attrs["units"] == "day"
    status = ds["status"]
    assert status.cf.is_flag_variable
    np.testing.assert_array_equal(status.attrs["flag_values"], sorted(STATUS_NAMES))
    if typed:
        assert status.attrs["flag_values"].dtype == status.dtype
    assert status.attrs["flag_meanings"].split() == [STATUS_NAMES[k] for k in sorted(STATUS_NAMES)]
    assert bool((status.cf == "success").all()) == bool((status == 0).all())
    for name, var in ds.data_vars.items():
        if var.dtype.kind in "iu":
            assert var.dtype == np.int32, name
    for name, var in ds.variables.items():
        if "units" in var.attrs:
            assert var.attrs["units"] != "nat", name


def _units_parse(ds: xr.Dataset) -> None:
    from cf_xarray.units import units as ureg  # needs pint

    for var in ds.variables.values():
        if "units" in var.attrs:
            ureg.parse_units(udunits(var.attrs["units"]))  # raises on an unknown unit


def test_default_result_is_cf(ds):
    _check(ds)
    assert not ds["time"].isnull().any()
    assert "cells" in ds.attrs["comment"] and "copies" in ds.attrs["comment"]


def test_stochastic_and_agent_results_are_cf(stochastic):
    _check(stochastic)
    assert "agent" in stochastic.attrs["history"].splitlines()[0]
    assert stochastic["clone_shannon"].attrs["units"] == "1"
    assert "nats" in stochastic["clone_shannon"].attrs["long_name"]


def test_every_unit_is_udunits_after_the_declared_counts(ds, stochastic):
    pytest.importorskip("pint")
    _units_parse(ds)
    _units_parse(stochastic)
    assert udunits("cells/uL") == "1/uL" and udunits("copies/ug") == "1/ug"
    assert udunits("cells") == "1" and udunits("mg h/L") == "mg h/L"


def test_netcdf_keeps_the_conventions(ds, tmp_path):
    path = write_netcdf(ds, tmp_path / "sim.nc")
    raw = xr.open_dataset(path, engine="h5netcdf", decode_cf=False)
    assert "_FillValue" not in raw["time"].attrs and raw["time"].attrs["axis"] == "T"
    assert raw.attrs["Conventions"] == CONVENTIONS
    assert raw["status"].dtype == np.int32 and raw["n_steps"].dtype == np.int32
    np.testing.assert_array_equal(raw["status"].attrs["flag_values"], np.arange(5))
    back = xr.load_dataset(path, engine="h5netcdf")
    _check(back)
    xr.testing.assert_equal(back[["status", "n_steps", "car_total"]],
                            ds[["status", "n_steps", "car_total"]])


def test_zarr_keeps_the_conventions(ds, tmp_path):
    pytest.importorskip("zarr")
    from cartsim.sweep.gather import write_gathered

    path = write_gathered(ds, tmp_path / "sim.zarr", "zarr")
    back = xr.open_zarr(path).load()
    _check(back, typed=False)
    assert back["status"].attrs["flag_meanings"] == ds["status"].attrs["flag_meanings"]


def test_applying_twice_changes_nothing(ds):
    xr.testing.assert_identical(cf_conventions(ds), ds)


def test_counters_too_large_for_int32_stay_int64_and_the_input_is_not_modified():
    big = np.array([1, 2**40], dtype=np.int64)
    raw = xr.Dataset({"n": (("patient",), big), "k": (("patient",), np.array([1, 2]))},
                     coords={"time": ("time", [0.0, 1.0])},
                     attrs={"history": "2020-01-01 made by hand", "conventions": "prose"})
    out = cf_conventions(raw)
    assert out["n"].dtype == np.int64 and out["n"].values[1] == 2**40
    assert out["k"].dtype == np.int32
    assert out.attrs["history"].splitlines()[1] == "2020-01-01 made by hand"
    assert "comment" not in out.attrs  # no count units, no count comment
    assert raw["k"].dtype == np.int64 and "Conventions" not in raw.attrs
    assert "axis" not in raw["time"].attrs and "_FillValue" not in raw["time"].encoding
