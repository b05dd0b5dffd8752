"""The lean result (issue 18): states are views of the solver's buffer, observables lazy.

Every value must be what the eager assembly gave: the lazily computed observables equal
``model.observables`` of the whole batch exactly, on any subset of patients and times, after
pickling and copying; selecting ``variables`` computes those at once and keeps no other state.
"""

import copy
import dataclasses
import pickle

import numpy as np
import pytest
import xarray as xr

import cartsim
from cartsim.batch import LazyObservable, LazyState, to_dataset
from cartsim.models import get_model
from cartsim.simulation import finish, prepare, solve_prepared

MODEL = get_model("cd7")


def _cohort():
    base = cartsim.Scenario()
    reg = base.regimen
    return [base,
            dataclasses.replace(base, model=cartsim.ModelConfig(params={"k_switch": 1e-3})),
            dataclasses.replace(base, regimen=dataclasses.replace(reg, car_dose_per_kg=1e5)),
            dataclasses.replace(base, patient=dataclasses.replace(base.patient,
                                                                  marrow_blast_pct=80.0)),
            dataclasses.replace(base, regimen=dataclasses.replace(reg, hsct_day=60.0)),
            dataclasses.replace(base, regimen=dataclasses.replace(reg, toci_il6_threshold=50.0))]


@pytest.fixture(scope="module")
def batch():
    b = prepare(_cohort())
    res = solve_prepared(b)
    res.y[-1, 200:] = np.nan  # a solve failed on day 195: NaN from there on, as the solver does
    res.status[-1] = 3
    return b, res


@pytest.fixture(scope="module")
def ds(batch):
    b, res = batch
    return finish(b, dataclasses.replace(res, y=res.y.copy()))


def _eager(batch):
    """The eager reference: ``model.to_linear`` and every observable of the whole batch."""
    b, res = batch
    y = MODEL.to_linear(res.y)
    p = np.stack([pr.p for pr in b.problems])
    keys = [k for k, v in b.problems[0].info.items() if np.isscalar(v)]
    info = {k: np.array([pr.info[k] for pr in b.problems]) for k in keys}
    return y, {k: np.asarray(o.data, dtype=np.float64)
               for k, o in MODEL.observables(y, p, info).items()}


def test_states_are_read_from_one_linear_buffer_and_assignable(batch, ds):
    y, _ = _eager(batch)
    assert ds["status"].values[-1] != 0  # the batch holds a failed solve (NaN states)
    sources = set()
    for i, name in enumerate(MODEL.state_names):
        assert not ds[name].variable._in_memory, name
        values = ds[name].values
        np.testing.assert_array_equal(values, y[..., i])  # the same values, NaN included
        assert values.flags.c_contiguous
        np.testing.assert_array_equal(ds[name].isel(patient=[3, 1], time=slice(5, 50, 7)).values,
                                      y[[3, 1], 5:50:7, i])
        lazy = ds[name].variable._data.array.array
        assert isinstance(lazy, LazyState) and not lazy.source.y.flags.writeable
        sources.add(id(lazy.source.y))
    assert len(sources) == 1
    mine = ds.copy(deep=True)
    mine["il6"][1, 40:] = np.nan  # assignable, as an eager Dataset (copied on write)
    mine["car_eff"][0, 10] = 0.0
    assert np.isnan(mine["il6"].values[1, 41]) and mine["car_eff"].values[0, 10] == 0.0
    np.testing.assert_array_equal(ds["il6"].values, y[..., MODEL.state_names.index("il6")])
    np.testing.assert_array_equal(ds["car_eff"].values, y[..., 0])


def test_observables_are_lazy_until_read_and_equal_the_eager_ones(batch):
    b, res = batch
    ds = finish(b, dataclasses.replace(res, y=res.y.copy()))
    _, eager = _eager(batch)
    assert set(eager) <= set(ds.data_vars)
    for name in eager:
        assert not ds[name].variable._in_memory, name
    for name, values in eager.items():
        got = ds[name].values
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, values, err_msg=name)  # exact, NaN where NaN
        assert ds[name].variable._in_memory  # cached once read


def test_any_subset_of_a_lazy_observable_equals_the_subset_of_the_whole(batch, ds):
    _, eager = _eager(batch)
    cases = [dict(patient=2), dict(patient=[4, 1]), dict(patient=slice(1, 5, 2)),
             dict(time=slice(100, 40, -3)), dict(patient=3, time=7),
             dict(patient=[0, 5], time=[300, 2, 50])]
    for name in ("marrow_blast_pct", "blast_cd7neg_pct", "car_copies_per_ug", "em_volume_cm3"):
        fresh = ds.copy()  # a shallow copy does not share the cache: each read computes
        for sel in cases:
            want = xr.DataArray(eager[name], dims=("patient", "time")).isel(sel).values
            got = fresh[name].isel(sel).values
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {sel}")


def test_a_subset_of_observables_equals_the_same_of_all(batch):
    y, eager = _eager(batch)
    b, _ = batch
    p = np.stack([pr.p for pr in b.problems])
    info = {k: np.array([pr.info[k] for pr in b.problems])
            for k, v in b.problems[0].info.items() if np.isscalar(v)}
    for name in eager:
        one = MODEL.observables(y, p, info, names=[name])
        assert list(one) == [name]
        np.testing.assert_array_equal(one[name].data, eager[name], err_msg=name)


def test_pickling_and_copies_carry_the_values(ds):
    ds = ds.copy()
    for other in (pickle.loads(pickle.dumps(ds)), copy.deepcopy(ds), ds.copy(deep=True)):
        xr.testing.assert_identical(other, ds)
        for name in ("il6", "car_total"):
            assert other[name].values.flags.writeable


def test_selected_variables_are_computed_at_once_and_keep_nothing_else(batch):
    b, res = batch
    _, eager = _eager(batch)
    full = finish(b, dataclasses.replace(res, y=res.y.copy()))
    lean = finish(b, dataclasses.replace(res, y=res.y.copy()),
                  variables=["car_pct_of_t", "il6"])
    for name in ("car_pct_of_t", "il6"):
        values = lean[name].values
        assert lean[name].variable._in_memory
        np.testing.assert_array_equal(values, full[name].values)
        owner = values.base if values.base is not None else values
        assert owner.nbytes == values.nbytes  # its own block, not a view of every state
    assert "car_eff" not in lean and "wbc_per_ul" not in lean


def test_to_dataset_leaves_the_result_alone_unless_told(batch):
    b, res = batch
    res = dataclasses.replace(res, y=res.y.copy())
    before = res.y.copy()
    args = (MODEL, b.problems, b.t_record, res, b.scenarios)
    a = to_dataset(*args, method=b.method)
    np.testing.assert_array_equal(res.y, before)  # copy=True (the default): untouched
    c = to_dataset(*args, method=b.method, copy=False)  # on res.y (read-only; exp on read)
    xr.testing.assert_identical(a.drop_attrs(), c.drop_attrs())
    assert not res.y.flags.writeable
    with pytest.raises(ValueError, match="copy=True"):
        to_dataset(*args, method=b.method, copy=False)  # never exponentiated twice


def test_endpoints_of_the_lazy_dataset_equal_those_of_a_loaded_one(ds):
    lazy = cartsim.endpoints(ds.copy())
    loaded = cartsim.endpoints(ds.copy().load())
    xr.testing.assert_identical(lazy, loaded)


def test_the_endpoints_observables_are_computed_together_on_a_first_whole_read(batch):
    from cartsim.grid import ENDPOINT_VARIABLES

    b, res = batch
    _, eager = _eager(batch)
    ds = finish(b, dataclasses.replace(res, y=res.y.copy()))
    lazy = ds["marrow_blast_pct"].variable._data.array.array.array
    assert isinstance(lazy, LazyObservable)
    y, _ = _eager(batch)
    states = {n: y[..., i] for i, n in enumerate(MODEL.state_names)}
    eager = {**eager, **states}
    group = {n for n in ENDPOINT_VARIABLES if n in eager}
    assert len(group) >= 10 and "il6" in group
    _ = ds["marrow_blast_pct"].isel(patient=[0, 2]).values  # a partial read: that one only
    assert lazy.source.pending == {}
    _ = ds["marrow_blast_pct"].values  # a whole read: the group, the others waiting
    assert set(lazy.source.pending) == group - {"marrow_blast_pct"}
    for name in sorted(group):
        np.testing.assert_array_equal(ds[name].values, eager[name], err_msg=name)
    assert lazy.source.pending == {}  # each handed over once, held by its variable only
    again = ds.copy()  # a copy's read computes its own, the group only once
    np.testing.assert_array_equal(again["anc_per_ul"].values, eager["anc_per_ul"])
    assert lazy.source.pending == {}
