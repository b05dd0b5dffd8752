"""The endpoint Dataset contract: names, units, categories, failed solves, input errors."""

import numpy as np
import pytest
import xarray as xr
import yaml

from cartsim.clinical import EndpointSettings, endpoints

CONTRACT = """
status status_name evaluable follow_up_day
cmax_qpcr tmax_qpcr auc28_qpcr persistence_qpcr cmax_flow tmax_flow auc28_flow persistence_flow
expansion car_detectable_m6
response_d28 mrd_flow_neg_d28 mrd_mol_neg_d28 mrd_flow_neg_m3 mrd_mol_neg_m3 best_response
response_day best_mrd_flow_neg best_mrd_mol_neg em_present em_best_response
relapse relapse_day relapse_cd7neg progression progression_day
death death_day death_cause pfs_day pfs_event os_day os_event dor_day dor_event
crs_grade crs_onset_day crs_grade_1m crs_grade_3m icans_grade icans_onset_day icans_grade_1m
icans_grade_3m t_aplasia_days neutropenia_g4_days cytopenia_g34 anc_recovery_day
cd7_clearance_day il6_peak il6_peak_day ifng_peak ifng_peak_day il10_peak il10_peak_day
tnfa_peak tnfa_peak_day flu_auc
""".split()
CATEGORIES = {"response_d28": 2, "best_response": 2, "em_best_response": 4, "death_cause": 2,
              **{f"{k}_grade{w}": 4 for k in ("crs", "icans") for w in ("", "_1m", "_3m")}}
EVENTS = ["expansion", "car_detectable_m6", "relapse", "progression", "death", "pfs_event",
          "os_event", "dor_event", "cytopenia_g34", "em_present"]


@pytest.fixture
def failed_pair(make_ds):
    """Patient 0 solved; patient 1 failed on day 50 (NaN from then on, status 3)."""
    t = np.arange(-5.0, 181.0)
    il6 = np.stack([np.full(t.size, 300.0), np.where(t >= 50, np.nan, 300.0)])
    return make_ds(2, il6=il6, status=[0, 3])


def test_every_contract_variable_with_units_and_long_name(failed_pair):
    e = endpoints(failed_pair)
    assert set(CONTRACT) <= set(e.data_vars)
    assert e.sizes == {"patient": 2}
    for name, var in e.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
    for name, top in CATEGORIES.items():
        assert e[name].dtype.kind == "i", name
        assert set(range(top + 1)) <= set(e[name].attrs["flag_values"].tolist()), name
        assert len(e[name].attrs["flag_meanings"].split()) == len(e[name].attrs["flag_values"])
    for name in EVENTS:
        assert e[name].dtype == bool, name
    for key in ("settings", "surrogate_note", "seed", "config", "model", "cartsim_version"):
        assert key in e.attrs, key
    assert "SURROGATE" in e.attrs["surrogate_note"]
    assert EndpointSettings.from_dict(yaml.safe_load(e.attrs["settings"])) == EndpointSettings()


def test_failed_solve_is_not_evaluable(failed_pair):
    e = endpoints(failed_pair)
    bad = e.isel(patient=1)
    assert e.evaluable.values.tolist() == [True, False]
    assert float(bad.follow_up_day) == 180.0 and int(bad.status) == 3
    for name, var in bad.data_vars.items():
        if name in ("status", "status_name", "evaluable", "follow_up_day"):
            continue
        value = var.values.item()
        if var.dtype == bool:
            assert value is False, name
        elif var.dtype.kind == "i":
            assert value == (0 if name == "em_best_response" else -1), name
        else:
            assert np.isnan(value), name
    assert int(e.crs_grade[0]) == 2  # the solved patient is unaffected


def test_netcdf_round_trip(failed_pair, tmp_path):
    e = endpoints(failed_pair)
    e.to_netcdf(tmp_path / "ep.nc", engine="h5netcdf")
    back = xr.load_dataset(tmp_path / "ep.nc", engine="h5netcdf")
    xr.testing.assert_identical(back[["crs_grade", "death_day", "relapse"]],
                                e[["crs_grade", "death_day", "relapse"]])


def test_missing_variable_is_named(make_ds):
    with pytest.raises(ValueError, match="anc_per_ul"):
        endpoints(make_ds().drop_vars("anc_per_ul"))


def test_non_finite_value_of_a_solved_patient_is_an_error(make_ds):
    t = np.arange(-5.0, 181.0)
    with pytest.raises(ValueError, match=r"'il6' of patient 0 is nan at day 7"):
        endpoints(make_ds(il6=np.where(t == 7.0, np.nan, 5.0)))


def test_seed_is_required_and_checked(make_ds):
    ds = make_ds()
    del ds.attrs["seed"]
    with pytest.raises(ValueError, match="seed"):
        endpoints(ds)
    assert endpoints(ds, seed=3).attrs["seed"] == 3
    with pytest.raises(ValueError, match="seed=-1"):
        endpoints(ds, seed=-1)


def test_grid_must_reach_past_day_0_and_increase(make_ds):
    with pytest.raises(ValueError, match="two output times"):
        endpoints(make_ds(t=[-5.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match="strictly increasing"):
        endpoints(make_ds(t=[-5.0, 0.0, 2.0, 1.0]))


def test_settings_type_is_checked(make_ds):
    with pytest.raises(TypeError, match="EndpointSettings"):
        endpoints(make_ds(), {"lloq_copies_per_ug": 50.0})

