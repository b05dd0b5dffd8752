"""In-job sweeps against independent truth: the same points simulated one by one."""

import dataclasses

import numpy as np
import pytest

from cartsim.clinical import endpoints
from cartsim.population import PopulationSpec
from cartsim.scenario import ModelConfig, Patient, Regimen, Scenario, ScenarioError
from cartsim.simulation import simulate
from cartsim.sweep import SweepAxis, SweepSpec, run_sweep
from cartsim.sweep.endpoints import add_derived
from cartsim.trial import run_trial, stream_seeds

KEEP = ["cr_d28", "mrd_neg_cr_d28", "crs_g3plus", "cmax_qpcr", "il6_peak", "pfs_12m",
        "best_response"]


def _one_by_one(sc: Scenario, seed: int):
    ds = simulate([dataclasses.replace(sc, seed=seed)])
    return add_derived(endpoints(ds, seed=stream_seeds(seed)[1]), KEEP).isel(patient=0)


def test_grid_sweep_equals_points_simulated_one_by_one(base):
    doses, k_kill, products = [1e5, 3e6], [0.4, 1.6], ["nanobody", "ko"]
    spec = SweepSpec(axes=[SweepAxis("product", values=products),
                           SweepAxis("regimen.car_dose_per_kg", values=doses),
                           SweepAxis("model.params.k_kill", values=k_kill)],
                     endpoints=KEEP, chunk_size=3)  # chunks of 3 cut across the grid
    from cartsim.config import load_run_config

    prods = {p: load_run_config([f"product={p}"]).product for p in products}
    ds = run_sweep(base, spec, seed=7)
    assert ds["cmax_qpcr"].dims == ("product", "regimen.car_dose_per_kg", "model.params.k_kill")
    assert ds["regimen.car_dose_per_kg"].attrs["units"] == "cells/kg"
    assert ds["model.params.k_kill"].attrs["units"] == "1/day"
    assert ds.attrs["n_points"] == 8 and ds.attrs["n_missing"] == 0 and ds.attrs["seed"] == 7
    varied = set()
    for p in products:
        for d in doses:
            for k in k_kill:
                sc = dataclasses.replace(base, product=prods[p],
                                         regimen=Regimen(car_dose_per_kg=d),
                                         model=ModelConfig(params={"k_kill": k}))
                ref = _one_by_one(sc, seed=7)
                got = ds.sel({"product": p, "regimen.car_dose_per_kg": d,
                              "model.params.k_kill": k})
                assert int(got["status"]) == 0
                for n in KEEP:
                    np.testing.assert_allclose(float(got[n]), float(ref[n]), rtol=1e-12,
                                               err_msg=f"{n} at {p}, {d}, {k}")
                varied.add(round(float(ref["cmax_qpcr"]), 3))
    assert len(varied) > 4  # the axes do change the result


def test_every_variable_has_units_and_long_name(base):
    spec = SweepSpec(axes=[SweepAxis("patient.marrow_blast_pct", values=[10.0, 60.0])],
                     population_n=3, endpoints=["cr_d28", "cmax_qpcr"])
    ds = run_sweep(base, spec)
    for name, v in ds.variables.items():
        assert "long_name" in v.attrs, name
        assert "units" in v.attrs, name
    assert {"config", "seed", "cartsim_version", "sweep_spec", "population_spec"} <= set(ds.attrs)
    assert {"cr_d28_ci_lo", "cr_d28_ci_hi", "cmax_qpcr_q25", "cmax_qpcr_q75",
            "n_evaluable"} <= set(ds.data_vars)


def test_population_point_equals_run_trial_of_that_point(base):
    pop = PopulationSpec(n=4)
    spec = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", values=[2e5, 4e6]),
                           SweepAxis("patient.marrow_blast_pct", values=[30.0])],
                     population_n=4, endpoints=["cr_d28", "crs_g3plus", "cmax_qpcr",
                                                "il6_peak"], chunk_size=5)
    ds = run_sweep(base, spec, pop, seed=3)
    # the swept covariate is taken from the point, not drawn: drop it from the population
    covs = {k: v for k, v in pop.covariates.items() if k != "marrow_blast_pct"}
    for dose in (2e5, 4e6):
        sc = dataclasses.replace(base, regimen=Regimen(car_dose_per_kg=dose),
                                 patient=dataclasses.replace(base.patient,
                                                             marrow_blast_pct=30.0))
        trial = run_trial(sc, dataclasses.replace(pop, covariates=covs), seed=3).endpoints
        trial = add_derived(trial, ["cr_d28", "crs_g3plus"])
        assert (trial["marrow_blast_pct"].values == 30.0).all()
        got = ds.sel({"regimen.car_dose_per_kg": dose, "patient.marrow_blast_pct": 30.0})
        ok = trial["status"].values == 0
        assert int(got["n_evaluable"]) == ok.sum()
        assert float(got["cr_d28"]) == pytest.approx(trial["cr_d28"].values[ok].mean())
        assert float(got["crs_g3plus"]) == pytest.approx(trial["crs_g3plus"].values[ok].mean())
        assert float(got["cmax_qpcr"]) == pytest.approx(
            np.median(trial["cmax_qpcr"].values[ok]), rel=1e-12)
        from cartsim.stats import binomial_ci

        k = int(trial["cr_d28"].values[ok].sum())
        lo, hi = binomial_ci(k, int(ok.sum()))
        assert float(got["cr_d28_ci_lo"]) == pytest.approx(lo, abs=1e-9)
        assert float(got["cr_d28_ci_hi"]) == pytest.approx(hi, abs=1e-9)


def test_lhs_sweep_has_a_sample_dim_with_values_in_range(base):
    spec = SweepSpec(method="lhs", n_samples=6, endpoints=["cmax_qpcr"],
                     axes=[SweepAxis("regimen.car_dose_per_kg", space="logspace", start=1e5,
                                     stop=1e7),
                           SweepAxis("patient.marrow_blast_pct", space="linspace", start=5,
                                     stop=50)])
    ds = run_sweep(base, spec, seed=1)
    assert ds["cmax_qpcr"].dims == ("sample",)
    dose = ds["regimen.car_dose_per_kg"].values
    assert ((dose >= 1e5) & (dose <= 1e7)).all()
    # Latin hypercube: one point in each of the 6 equal-probability strata of every axis
    strata = np.floor((np.log10(dose) - 5) / 2 * 6).astype(int)
    assert sorted(strata) == list(range(6))
    blasts = ds["patient.marrow_blast_pct"].values
    assert sorted(np.floor((blasts - 5) / 45 * 6).astype(int)) == list(range(6))
    sc = dataclasses.replace(base, regimen=Regimen(car_dose_per_kg=float(dose[2])),
                             patient=Patient(marrow_blast_pct=float(blasts[2])))
    assert float(ds["cmax_qpcr"][2]) == pytest.approx(float(_one_by_one(sc, 1)["cmax_qpcr"]),
                                                      rel=1e-12)
    again = run_sweep(base, spec, seed=1)
    np.testing.assert_array_equal(again["regimen.car_dose_per_kg"].values, dose)


def test_a_solver_failure_is_data_and_the_sweep_goes_on(base):
    def failing_second(scenarios, start):
        ds = simulate(scenarios)
        st = ds["status"].values.copy()
        st[1] = 1  # as if patient 1 hit max_steps
        return ds.assign(status=ds["status"].copy(data=st))

    spec = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", values=[1e5, 1e6, 1e7])],
                     endpoints=["cmax_qpcr", "cr_d28"])
    ds = run_sweep(base, spec, simulate_fn=failing_second)
    assert ds["status"].values.tolist() == [0, 1, 0]
    # a failed point is missing (NaN), not a non-response (cr_d28 = 0)
    assert np.isnan(ds["cmax_qpcr"].values[1]) and np.isnan(ds["cr_d28"].values[1])
    assert np.isfinite(ds["cmax_qpcr"].values[[0, 2]]).all()
    assert np.isin(ds["cr_d28"].values[[0, 2]], (0.0, 1.0)).all()
    assert ds.attrs["n_failed"] == 1


def test_an_invalid_point_is_reported_not_raised(base):
    # each value is valid alone; together memory + exhausted fractions exceed 1
    spec = SweepSpec(axes=[SweepAxis("product.memory_fraction", values=[0.3, 0.9]),
                           SweepAxis("product.exhausted_fraction", values=[0.05, 0.5])],
                     endpoints=["cmax_qpcr"])
    ds = run_sweep(base, spec)
    assert ds["status"].values.tolist() == [[0, 0], [0, -2]]
    assert ds.attrs["n_invalid"] == 1 and "memory_fraction" in ds.attrs["invalid"]


def test_a_bad_axis_value_is_an_error_naming_the_field(base):
    spec = SweepSpec(axes=[SweepAxis("patient.marrow_blast_pct", values=[10.0, 100.0])])
    with pytest.raises(ScenarioError, match=r"patient.marrow_blast_pct=100.0"):
        run_sweep(base, spec)
    with pytest.raises(ScenarioError, match="option 'nope' is not accepted"):
        run_sweep(base, SweepSpec(axes=[SweepAxis("product", values=["nope"])]))


def test_no_axes_is_one_point(base):
    ds = run_sweep(base, SweepSpec(endpoints=["cmax_qpcr"]))
    assert ds["cmax_qpcr"].dims == ()
    assert float(ds["cmax_qpcr"]) == pytest.approx(float(_one_by_one(base, 0)["cmax_qpcr"]))


def test_sobol_sweep_is_seeded_and_in_range(base):
    spec = SweepSpec(method="sobol", n_samples=4, endpoints=["cmax_qpcr"],
                     axes=[SweepAxis("product.residual_cd7", space="linspace", start=0.0,
                                     stop=0.3)])
    a, b = run_sweep(base, spec, seed=5), run_sweep(base, spec, seed=6)
    x = a["product.residual_cd7"].values
    assert x.shape == (4,) and ((x >= 0) & (x <= 0.3)).all()
    # a scrambled Sobol sequence of 4 points puts one point in each quarter of the range
    assert sorted(np.floor(x / 0.075).astype(int)) == [0, 1, 2, 3]
    assert not np.array_equal(x, b["product.residual_cd7"].values)


def test_setup_errors_fail_fast(base):
    short = dataclasses.replace(base, output=dataclasses.replace(base.output, t_end=60.0))
    with pytest.raises(ScenarioError, match="pfs_12m needs follow-up to day 365"):
        run_sweep(short, SweepSpec(endpoints=["pfs_12m"]))

    def broken(scenarios, start):
        raise TypeError("simulator misconfigured")

    with pytest.raises(TypeError, match="misconfigured"):  # the first chunk raises at once
        run_sweep(base, SweepSpec(endpoints=["cmax_qpcr"]), simulate_fn=broken)
