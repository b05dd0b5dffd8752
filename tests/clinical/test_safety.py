"""Surrogate CRS/ICANS grades, onset days, windows, aplasia, neutropenia and ANC recovery."""

import numpy as np
import pytest

from cartsim.clinical import endpoints

T = np.arange(-5.0, 181.0)


def bump(peak, day=7.0, base=5.0, width=4.0):
    """A cytokine bump from ``base`` with its maximum ``peak`` on ``day`` (on the grid)."""
    return base + (peak - base) * np.exp(-((T - day) ** 2) / width)


def test_il6_peaks_map_to_each_crs_grade(make_ds, no_death):
    thr = no_death.crs_il6_thresholds_pg_ml
    peaks = [thr[0] * 0.999, thr[0], thr[1] * 0.999, thr[1], thr[2], thr[3] * 0.999, thr[3], 1e5]
    e = endpoints(make_ds(len(peaks), il6=np.stack([bump(p) for p in peaks])), no_death)
    assert e.crs_grade.values.tolist() == [0, 1, 1, 2, 3, 3, 4, 4]
    assert e.il6_peak.values.tolist() == pytest.approx(peaks, rel=1e-12)
    assert set(e.crs_grade.attrs["flag_values"].tolist()) == {-1, 0, 1, 2, 3, 4}
    assert "SURROGATE" in e.crs_grade.attrs["long_name"]


def test_crs_onset_is_first_day_il6_reaches_grade_1(make_ds, no_death):
    thr1 = no_death.crs_il6_thresholds_pg_ml[0]
    il6 = np.where(T < 3, 5.0, np.where(T < 9, thr1 + 10.0 * (T - 3), 5.0))
    e = endpoints(make_ds(il6=il6), no_death).isel(patient=0)
    assert float(e.crs_onset_day) == 3.0 and int(e.crs_grade) == 1
    quiet = endpoints(make_ds(), no_death).isel(patient=0)
    assert int(quiet.crs_grade) == 0 and np.isnan(float(quiet.crs_onset_day))


def test_month_windows_grade_only_their_own_trajectory(make_ds, no_death):
    thr = no_death.crs_il6_thresholds_pg_ml
    il6 = bump(thr[0] * 1.5, day=7.0) + bump(thr[2] * 1.5, day=60.0, base=0.0)  # G1 early, G3 late
    e = endpoints(make_ds(il6=il6), no_death).isel(patient=0)
    assert (int(e.crs_grade_1m), int(e.crs_grade_3m), int(e.crs_grade)) == (1, 3, 3)
    assert float(e.crs_onset_day) < 30.0


def test_icans_is_the_lower_cytokine_grade_and_needs_crs(make_ds, no_death):
    il6_t, ifng_t = no_death.icans_il6_thresholds_pg_ml, no_death.icans_ifng_thresholds_pg_ml
    il6 = np.stack([bump(il6_t[2]), bump(il6_t[2]), bump(il6_t[0] * 0.99), bump(il6_t[3])])
    ifng = np.stack([bump(ifng_t[1], day=9.0), bump(ifng_t[0] * 0.99, day=9.0),
                     bump(ifng_t[3], day=9.0), bump(ifng_t[3], day=9.0)])
    e = endpoints(make_ds(4, il6=il6, ifng=ifng), no_death)
    assert e.icans_grade.values.tolist() == [2, 0, 0, 4]
    # onset: the first day both markers have reached grade 1 (IFN-gamma rises later)
    assert e.icans_onset_day.values[0] > e.crs_onset_day.values[0]
    assert np.isnan(e.icans_onset_day.values[1])


def test_icans_zero_without_crs(make_ds, no_death):
    from cartsim.clinical import EndpointSettings

    s = EndpointSettings(crs_il6_thresholds_pg_ml=[1e4, 2e4, 3e4, 4e4],
                         icans_il6_thresholds_pg_ml=[10.0, 20.0, 30.0, 40.0],
                         icans_ifng_thresholds_pg_ml=[10.0, 20.0, 30.0, 40.0], death=no_death.death)
    e = endpoints(make_ds(il6=bump(500.0), ifng=bump(500.0)), s).isel(patient=0)
    assert int(e.crs_grade) == 0 and int(e.icans_grade) == 0


def test_aplasia_and_neutropenia_durations(make_ds, no_death):
    t7 = np.where((T >= 10) & (T <= 39), 0.5, 600.0)  # 30 inner days below 50/uL
    anc = np.where((T >= 3) & (T <= 9), 100.0, np.where((T >= 1) & (T <= 12), 800.0, 2500.0))
    e = endpoints(make_ds(t_cd7pos_per_ul=t7, anc_per_ul=anc), no_death).isel(patient=0)
    assert float(e.t_aplasia_days) == 30.0
    assert float(e.neutropenia_g4_days) == 7.0
    assert bool(e.cytopenia_g34)
    assert float(e.anc_recovery_day) == 13.0
    assert float(e.cd7_clearance_day) == 10.0


def test_anc_recovery_must_be_sustained(make_ds, no_death):
    # nadir day 5; ANC >= 1000 on days 8-9 only (2 days), then from day 14 on
    anc = np.where(T < 2, 2500.0, np.where(T == 5, 100.0, 500.0))
    anc = np.where(np.isin(T, (8.0, 9.0)) | (T >= 14), 1000.0, anc)
    e = endpoints(make_ds(anc_per_ul=anc), no_death).isel(patient=0)
    assert float(e.anc_recovery_day) == 14.0
    never = endpoints(make_ds(), no_death).isel(patient=0)
    assert np.isnan(float(never.anc_recovery_day)) and not bool(never.cytopenia_g34)


def test_recovery_on_the_last_days_counts(make_ds, no_death):
    anc = np.where((T > 0) & (T < 178), 300.0, 1500.0)  # >= 1000 on days 178, 179, 180
    e = endpoints(make_ds(anc_per_ul=anc), no_death).isel(patient=0)
    assert float(e.anc_recovery_day) == 178.0
