"""Cellular kinetics and pharmacodynamics against closed forms of hand-made trajectories."""

import numpy as np
import pytest
from scipy.integrate import trapezoid

from cartsim.clinical import endpoints


def test_gaussian_peak_gives_exact_cmax_tmax(make_ds, no_death):
    a, tp, w = 5e4, 12.0, 30.0
    ds = make_ds(car_copies_per_ug=lambda t: a * np.exp(-(t - tp) ** 2 / w),
                 car_cells_per_ul=lambda t: 600.0 * np.exp(-(t - 17.0) ** 2 / w))
    e = endpoints(ds, no_death).isel(patient=0)
    assert float(e.cmax_qpcr) == a and float(e.tmax_qpcr) == tp
    assert float(e.cmax_flow) == 600.0 and float(e.tmax_flow) == 17.0


def test_peak_ignores_pre_infusion_values(make_ds, no_death):
    ds = make_ds(car_copies_per_ug=lambda t: np.where(t < 0, 1e6, 100.0 + t))
    e = endpoints(ds, no_death).isel(patient=0)
    assert float(e.cmax_qpcr) == 280.0 and float(e.tmax_qpcr) == 180.0


@pytest.mark.parametrize("grid", [np.arange(-5.0, 181.0), np.arange(-5.0, 181.0, 0.7)])
def test_auc28_of_linear_ramp_is_exact(make_ds, no_death, grid):
    # x = 100 + 50 t  ->  int_0^28 x dt = 100*28 + 25*28^2, also on a grid holding neither 0 nor 28
    ds = make_ds(t=grid, car_copies_per_ug=lambda t: 100.0 + 50.0 * t,
                 car_cells_per_ul=lambda t: 2.0 * t)
    e = endpoints(ds, no_death).isel(patient=0)
    assert float(e.auc28_qpcr) == pytest.approx(100.0 * 28 + 25.0 * 28**2, rel=1e-12)
    assert float(e.auc28_flow) == pytest.approx(28.0**2, rel=1e-12)


def test_auc28_matches_scipy_trapezoid_on_daily_grid(make_ds, no_death):
    f = lambda t: 3e4 * np.exp(-((t - 10.0) ** 2) / 20.0) + 50.0  # noqa: E731
    ds = make_ds(car_copies_per_ug=f)
    days = np.arange(0.0, 29.0)
    e = endpoints(ds, no_death).isel(patient=0)
    assert float(e.auc28_qpcr) == pytest.approx(trapezoid(f(days), days), rel=1e-12)


def test_auc28_needs_follow_up_to_day_28(make_ds, no_death):
    ds = make_ds(t=np.arange(-5.0, 21.0), car_copies_per_ug=100.0)
    assert np.isnan(float(endpoints(ds, no_death).auc28_qpcr[0]))


def test_persistence_is_last_day_above_lloq(make_ds, no_death):
    # 1e4 exp(-k t) crosses the 50 copies/ug LLOQ at t* = ln(200)/k = 106.5
    k = np.log(1e4 / 50.0) / 106.5
    ds = make_ds(car_copies_per_ug=lambda t: 1e4 * np.exp(-k * np.maximum(t, 0.0)),
                 car_cells_per_ul=lambda t: np.where(t <= 40.0, 5.0, 0.5))
    e = endpoints(ds, no_death).isel(patient=0)
    assert float(e.persistence_qpcr) == 106.0
    assert float(e.persistence_flow) == 40.0
    assert bool(e.car_detectable_m6) is False


def test_persistence_nan_when_never_detectable(make_ds, no_death):
    e = endpoints(make_ds(car_copies_per_ug=10.0), no_death).isel(patient=0)
    assert np.isnan(float(e.persistence_qpcr)) and not bool(e.expansion)


def test_expansion_threshold_and_month6_detectability_boundaries(make_ds, no_death):
    thr, lloq = no_death.expansion_threshold_copies_per_ug, no_death.lloq_copies_per_ug
    peaks = np.array([thr, thr * (1 - 1e-9)])[:, None]
    t = np.arange(-5.0, 200.0)
    level_m6 = np.array([lloq, lloq * (1 - 1e-9)])[:, None]
    copies = np.where(t == 10.0, peaks, np.where(t >= 100.0, level_m6, 1.0))
    e = endpoints(make_ds(2, t=t, car_copies_per_ug=copies), no_death)
    assert e.expansion.values.tolist() == [True, False]
    assert e.car_detectable_m6.values.tolist() == [True, False]


def test_cd7_clearance_and_cytokine_peaks(make_ds, no_death):
    ds = make_ds(t_cd7pos_per_ul=lambda t: 600.0 * np.exp(-0.5 * np.maximum(t, 0.0)),
                 il10=lambda t: 5.0 + 80.0 * np.exp(-((t - 9.0) ** 2) / 8.0),
                 flu_auc=lambda t: np.clip(t + 5.0, 0.0, 3.0) * 6.5)
    e = endpoints(ds, no_death).isel(patient=0)
    # 600 exp(-t/2) < 1  <=>  t > 2 ln 600 = 12.79
    assert float(e.cd7_clearance_day) == 13.0
    assert float(e.il10_peak) == 85.0 and float(e.il10_peak_day) == 9.0
    assert float(e.flu_auc) == pytest.approx(19.5)
    assert float(e.il6_peak) == 5.0
