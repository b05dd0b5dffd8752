"""Global sensitivity: Sobol indices of the Ishigami function against their closed form,
Morris effects of a linear function against theirs, and the cartsim task end to end."""

import numpy as np
import pytest

from cartsim.sweep import SensitivityOptions, SweepAxis
from cartsim.sweep.sensitivity import run_sensitivity, sensitivity_design, sensitivity_indices

PI_RANGE = [SweepAxis(f"x{i}", space="linspace", start=-np.pi, stop=np.pi) for i in (1, 2, 3)]


def ishigami(x, a=7.0, b=0.1):
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_indices(a=7.0, b=0.1):
    """Closed form (Ishigami & Homma 1990; Sobol' & Levitan 1999): S1, ST, S13."""
    v1 = 0.5 * (1 + b * np.pi ** 4 / 5) ** 2
    v2 = a ** 2 / 8
    v13 = b ** 2 * np.pi ** 8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v, v13 / v


def test_sobol_indices_of_ishigami_match_the_closed_form():
    opts = SensitivityOptions(method="sobol", parameters=PI_RANGE, endpoints=["y"],
                              n_base=2048, second_order=True)
    x = sensitivity_design(PI_RANGE, opts, seed=2)
    assert x.shape == (2048 * 8, 3) and x.min() >= -np.pi and x.max() <= np.pi
    ds = sensitivity_indices(PI_RANGE, opts, x, {"y": ishigami(x)}, seed=2)
    s1, st, s13 = ishigami_indices()
    np.testing.assert_allclose(ds["S1"].sel(endpoint="y").values, s1, atol=0.04)
    np.testing.assert_allclose(ds["ST"].sel(endpoint="y").values, st, atol=0.04)
    assert float(ds["S2"].sel(endpoint="y", parameter="x1", parameter_2="x3")) == \
        pytest.approx(s13, abs=0.06)
    assert abs(float(ds["S2"].sel(endpoint="y", parameter="x1", parameter_2="x2"))) < 0.06


def test_sobol_bootstrap_intervals_are_reproducible_at_seed_0():
    # SALib takes seed=0 as "no seed" (NumPy's global RNG): the run seed must still decide
    opts = SensitivityOptions(method="sobol", parameters=PI_RANGE, endpoints=["y"], n_base=64,
                              second_order=False)
    x = sensitivity_design(PI_RANGE, opts, seed=0)
    runs = []
    for state in (1, 2):
        np.random.seed(state)  # noqa: NPY002 - the global RNG must play no part
        runs.append(sensitivity_indices(PI_RANGE, opts, x, {"y": ishigami(x)}, seed=0))
    assert runs[0]["S1_conf"].identical(runs[1]["S1_conf"])
    assert runs[0]["ST_conf"].identical(runs[1]["ST_conf"])
    other = sensitivity_indices(PI_RANGE, opts, x, {"y": ishigami(x)}, seed=1)
    assert not np.array_equal(other["S1_conf"].values, runs[0]["S1_conf"].values)


def test_morris_effects_of_a_linear_function_are_exact():
    # y = 3 x1 - 2 x2 + 0 x3 on x in [0, 10]: every elementary effect per normalised range
    # is the coefficient times the range (30, -20, 0), with sigma = 0
    ps = [SweepAxis(f"x{i}", space="linspace", start=0.0, stop=10.0) for i in (1, 2, 3)]
    opts = SensitivityOptions(method="morris", parameters=ps, endpoints=["y"], n_base=10)
    x = sensitivity_design(ps, opts, seed=0)
    assert x.shape == (10 * 4, 3)
    ds = sensitivity_indices(ps, opts, x, {"y": 3 * x[:, 0] - 2 * x[:, 1]}, seed=0)
    np.testing.assert_allclose(ds["mu"].values[0], [30.0, -20.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(ds["mu_star"].values[0], [30.0, 20.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(ds["sigma"].values[0], 0.0, atol=1e-9)


def test_log_ranges_are_sampled_log_uniformly():
    ps = [SweepAxis("d", space="logspace", start=1e4, stop=1e8)]
    opts = SensitivityOptions(parameters=ps, endpoints=["y"], n_base=256)
    x = sensitivity_design(ps, opts, seed=0)[:, 0]
    assert x.min() >= 1e4 and x.max() <= 1e8
    assert np.median(np.log10(x)) == pytest.approx(6.0, abs=0.2)


def test_cartsim_sensitivity_task_writes_dataset_and_plot(tmp_path):
    from cartsim.config import load_run_config
    from cartsim.sweep.task import run_sensitivity_task

    cfg = load_run_config([
        "task=sensitivity", "sensitivity.n_base=4", "sensitivity.endpoints=[cmax_qpcr,cr_d28]",
        "sensitivity.parameters=[{name: model.params.rho_max, space: logspace, start: 0.3, "
        "stop: 1.3}, {name: regimen.car_dose_per_kg, space: logspace, start: 1e5, stop: 1e7}]"])
    path = run_sensitivity_task(cfg, tmp_path)
    import xarray as xr

    with xr.open_dataset(path) as ds:
        assert ds["S1"].dims == ("endpoint", "parameter")
        assert ds["inputs"].shape == (4 * 4, 2)
        assert ds.attrs["n_failed"] == 0 and "config" in ds.attrs
        y = ds["outputs"].sel(endpoint="cmax_qpcr").values
    assert np.isfinite(y).all() and np.ptp(y) > 0
    assert (tmp_path / "sensitivity.png").stat().st_size > 1000


def test_run_sensitivity_needs_parameters(base):
    from cartsim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="sensitivity.parameters"):
        run_sensitivity(base, SensitivityOptions())


# ------------------------------------------------------------ failures: missing, never 0

DOSE_RANGE = [SweepAxis("regimen.car_dose_per_kg", space="logspace", start=1e5, stop=1e7),
              SweepAxis("model.params.k_kill", space="logspace", start=0.4, stop=1.6)]


def _fail_odd_patients(scenarios, start):
    """The ODE, with every patient of odd global index reported as a failed solve."""
    from cartsim.simulation import simulate

    ds = simulate(scenarios)
    st = ds["status"].values.copy()
    st[(start + np.arange(st.size)) % 2 == 1] = 1
    return ds.assign(status=ds["status"].copy(data=st))


def test_failed_runs_are_missing_counted_and_reported(base):
    from cartsim import CartsimWarning

    opts = SensitivityOptions(method="morris", parameters=DOSE_RANGE, n_base=2,
                              endpoints=["cr_d28", "crs_grade", "cmax_qpcr"])
    with pytest.warns(CartsimWarning, match=r"sensitivity: 3 of 6 model runs did not succeed"
                                            r".*cr_d28 3/6, crs_grade 3/6, cmax_qpcr 3/6"):
        ds = run_sensitivity(base, opts, simulate_fn=_fail_odd_patients)
    assert ds.attrs["n_failed"] == 3 and ds["status"].values.tolist() == [0, 1] * 3
    out = ds["outputs"].values
    assert np.isnan(out[1::2]).all()  # a failed run is no response, not cr_d28 = 0
    assert np.isfinite(out[0::2]).all() and np.isin(out[0::2, 0], (0.0, 1.0)).all()
    assert ds["n_nonfinite"].values.tolist() == [3, 3, 3]


def test_a_population_point_without_evaluable_patients_is_missing(base):
    from cartsim import CartsimWarning

    opts = SensitivityOptions(method="morris", parameters=DOSE_RANGE, n_base=2,
                              population_n=1, endpoints=["cr_d28"])
    with pytest.warns(CartsimWarning, match="3 of 6 model runs"):
        ds = run_sensitivity(base, opts, simulate_fn=_fail_odd_patients)
    assert np.isnan(ds["outputs"].values[1::2, 0]).all()
    assert np.isfinite(ds["outputs"].values[0::2, 0]).all()


def test_an_endpoint_the_follow_up_does_not_reach_is_missing_and_said_so(base):
    import dataclasses

    from cartsim import CartsimWarning, OutputOptions

    short = dataclasses.replace(base, output=OutputOptions(t_end=20.0))
    opts = SensitivityOptions(method="morris", parameters=DOSE_RANGE, n_base=2,
                              endpoints=["cr_d28", "crs_g3plus"])
    with pytest.warns(CartsimWarning, match=r"0 of 6 .*cr_d28 6/6.*not estimable: cr_d28: "
                                            r"follow-up ends day 20 < day 28"):
        ds = run_sensitivity(short, opts)
    assert np.isnan(ds["outputs"].sel(endpoint="cr_d28")).all()
    assert np.isnan(ds["mu_star"].sel(endpoint="cr_d28")).all()  # no index, not mu* = 0
    assert np.isfinite(ds["outputs"].sel(endpoint="crs_g3plus")).all()
    assert np.isfinite(ds["mu_star"].sel(endpoint="crs_g3plus")).all()


def test_plots_show_missing_points_as_missing():
    import matplotlib

    matplotlib.use("Agg")
    import xarray as xr

    from cartsim.plot.sweep import plot_sensitivity, plot_window

    p = np.array([[0.2, np.nan], [0.6, 0.9]])
    ds = xr.Dataset({"cr_d28": (("dose", "burden"), p, {"units": "1"})},
                    coords={"dose": [1e5, 1e6], "burden": [5.0, 50.0]})
    ax = plot_window(ds, "cr_d28", contour=None)
    assert "1 of 4 points without a value" in ax.get_title()
    mesh = ax.collections[-1]
    assert np.ma.getmaskarray(mesh.get_array()).sum() == 1  # masked, not drawn as 0
    opts = SensitivityOptions(method="morris", parameters=[
        SweepAxis("a", space="linspace", start=0.0, stop=1.0),
        SweepAxis("b", space="linspace", start=0.0, stop=1.0)], endpoints=["y"], n_base=2)
    x = sensitivity_design(opts.parameters, opts, seed=0)
    y = x[:, 0].copy()
    y[2] = np.nan
    ax = plot_sensitivity(sensitivity_indices(opts.parameters, opts, x, {"y": y}))
    assert "1 of 6 runs without a value" in ax.get_title()
