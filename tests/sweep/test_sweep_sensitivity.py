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
