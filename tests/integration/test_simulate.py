"""simulate(): scenario -> self-describing Dataset; batches; failures as data."""

import numpy as np
import pytest
import xarray as xr
import yaml

import cartsim
from cartsim.summary import format_summary, patient_readout

CONTRACT = ["car_copies_per_ug", "car_cells_per_ul", "car_pct_of_t", "marrow_blast_pct", "il6",
            "il10", "ifng", "tnfa", "t_cd7pos_per_ul", "t_cd7neg_per_ul", "flu_conc", "cy_conc"]


@pytest.fixture(scope="module")
def ds():
    return cartsim.simulate(cartsim.Scenario())


def test_dataset_is_self_describing(ds):
    assert ds.sizes["patient"] == 1 and ds.sizes["time"] == 371
    assert ds.time.attrs["units"] == "day"
    for name in CONTRACT:
        assert name in ds, name
    for name, var in ds.data_vars.items():
        assert "long_name" in var.attrs, name
        if var.dtype.kind == "f":
            assert "units" in var.attrs, name
    cfg = yaml.safe_load(ds.attrs["config"])
    assert cfg["regimen"]["car_dose_per_kg"] == 1e6
    assert ds.attrs["model"] == "cd7" and ds.attrs["cartsim_version"] == cartsim.__version__


def test_netcdf_round_trip(ds, tmp_path):
    path = tmp_path / "sim.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = xr.load_dataset(path, engine="h5netcdf")
    xr.testing.assert_allclose(back[CONTRACT], ds[CONTRACT])
    assert back["car_copies_per_ug"].attrs["units"] == "copies/ug"


def test_cells_never_negative(ds):
    for name in ("car_eff", "car_mem", "car_exh", "blast_cd7pos", "blast_cd7neg", "t_cd7pos",
                 "t_cd7neg"):
        assert float(ds[name].min()) > 0.0


def test_batch_equals_one_by_one():
    scs = [cartsim.Scenario(regimen=cartsim.Regimen(car_dose_per_kg=d)) for d in (1e5, 1e7)]
    batch = cartsim.simulate(scs)
    for i, sc in enumerate(scs):
        one = cartsim.simulate(sc).isel(patient=0)
        np.testing.assert_array_equal(batch["car_eff"].isel(patient=i).values,
                                      one["car_eff"].values)
    # a higher dose expands earlier
    peaks = [patient_readout(batch, i)["peak_day"] for i in range(2)]
    assert peaks[1] < peaks[0]


def test_batch_with_different_output_grids_is_rejected():
    a = cartsim.Scenario()
    b = cartsim.Scenario(output=cartsim.OutputOptions(t_end=100.0))
    with pytest.raises(ValueError, match="output"):
        cartsim.simulate([a, b])


def test_failed_solve_is_data_not_exception():
    sc = cartsim.Scenario(solver=cartsim.SolverOptions(max_steps=30))
    ds = cartsim.simulate(sc)
    assert int(ds["status"][0]) == 1 and str(ds["status_name"].values[0]) == "max_steps"
    assert np.isnan(ds["car_eff"].values[0, -1])
    assert "failed" in format_summary(ds)


def test_summary_reports_peak_cytokines_remission_and_escape(ds):
    text = format_summary(ds)
    for phrase in ("CAR-T peak", "copies/ug", "IL-6", "marrow blasts < 5%", "CD7- escape"):
        assert phrase in text


def test_tocilizumab_rule_fires_when_il6_crosses_threshold():
    base = cartsim.simulate(cartsim.Scenario()).isel(patient=0)
    thr = 0.5 * float(base["il6"].max())
    sc = cartsim.Scenario(regimen=cartsim.Regimen(toci_il6_threshold=thr))
    ds = cartsim.simulate(sc).isel(patient=0)
    day = float(ds["tocilizumab_rule_day"])
    # IL-6 of the untreated course crosses the threshold within the output day before
    crossed = base.time.values[np.argmax(base["il6"].values > thr)]
    assert crossed - 1.0 < day <= crossed
    assert float(ds["toci_conc"].sel(time=crossed + 1)) > 0
    assert float(ds["toci_conc"].sel(time=crossed - 1)) == 0


def test_batch_records_each_patients_scenario():
    import json

    scs = [cartsim.Scenario(regimen=cartsim.Regimen(car_dose_per_kg=d),
                            model=cartsim.ModelConfig(params={"rho_max": r}))
           for d, r in ((1e6, 0.75), (2e6, 0.75), (1e6, 0.9))]
    ds = cartsim.simulate(scs, method="bdf")
    diffs = json.loads(ds.attrs["patient_overrides"])
    assert diffs == [{}, {"regimen.car_dose_per_kg": 2e6}, {"model.params.rho_max": 0.9}]
    assert yaml.safe_load(ds.attrs["config"])["regimen"]["car_dose_per_kg"] == 1e6


def test_absent_populations_are_reported_as_zero(ds):
    one = ds.isel(patient=0)
    # before the infusion there is no CAR-T cell: the ln-state floor must not leak out
    assert float(one["car_copies_per_ug"].sel(time=-1)) == 0.0
    assert float(one["car_cells_per_ul"].sel(time=-1)) == 0.0
    assert float(one["car_copies_per_ug"].sel(time=1)) > 0.0
    # no extramedullary disease in the default T-ALL patient
    assert float(one["em_volume_cm3"].max()) == 0.0


def test_a_failed_solve_reports_nan_not_an_absent_population():
    """After a solver failure the states are NaN; counts shown as 0 'below one cell' must not
    turn that into a plausible-looking zero."""
    from cartsim.scenario import SolverOptions

    ds = cartsim.simulate(cartsim.Scenario(solver=SolverOptions(max_steps=20)))
    assert int(ds["status"].values[0]) != 0
    for name in ("car_total", "car_copies_per_ug", "marrow_blast_pct"):
        assert np.isnan(ds[name].values[0, -1]), name


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _overrides_by_asdict(scenarios):
    """The definition of ``patient_overrides``: flatten every scenario, keep what differs."""
    import dataclasses

    from cartsim.simulation import _plain

    flat = [_flat(_plain(dataclasses.asdict(s))) for s in scenarios]
    return [{k: v for k, v in f.items() if k not in flat[0] or flat[0][k] != v} for f in flat]


def test_patient_overrides_equal_the_flattened_difference():
    """The fast structural diff (shared sub-configs skipped) equals flattening every scenario."""
    import dataclasses
    import json

    from cartsim.population import PopulationSpec, draw_cohort
    from cartsim.simulation import patient_overrides

    base = cartsim.Scenario(model=cartsim.ModelConfig(params={"k_kill": 2.0}))
    cohort = draw_cohort(base, PopulationSpec(n=12), 3).scenarios
    edited = [dataclasses.replace(cohort[1], regimen=dataclasses.replace(
                  cohort[1].regimen, car_dose_per_kg=3e6, cy_mg_m2=500.0)),
              dataclasses.replace(base, model=cartsim.ModelConfig(params={"k_kill": 2.0})),
              dataclasses.replace(base, model=cartsim.ModelConfig(params={"rho_max": 0.8}))]
    scs = [base, *cohort, *edited]
    got = json.loads(patient_overrides(scs))
    assert got == _overrides_by_asdict(scs)
    assert got[-2] == {}  # an equal but distinct object is no override
    assert got[-1] == {"model.params.rho_max": 0.8}
    assert got[-3]["regimen.car_dose_per_kg"] == 3e6
    assert any(len(d) > 2 for d in got[1:13])  # the cohort varies several values


def test_variables_keeps_a_lean_dataset():
    """``variables=`` keeps the named (patient, time) variables, identical to the full
    result, plus every per-patient one; an unknown name is an error naming it."""
    scs = [cartsim.Scenario(regimen=cartsim.Regimen(car_dose_per_kg=d)) for d in (1e6, 3e6)]
    full = cartsim.simulate(scs)
    lean = cartsim.simulate(scs, variables=["car_copies_per_ug", "car_eff"])
    timed = {v for v in lean.data_vars if lean[v].dims == ("patient", "time")}
    assert timed == {"car_copies_per_ug", "car_eff"}
    for v in lean.data_vars:
        xr.testing.assert_identical(lean[v], full[v])
    assert {"status", "n_steps"} <= set(lean.data_vars)
    assert "patient_overrides" not in lean.attrs and "patient_overrides" in full.attrs
    with pytest.raises(ValueError, match="unknown.*'car_copies'"):
        cartsim.simulate(scs, variables=["car_copies"])
