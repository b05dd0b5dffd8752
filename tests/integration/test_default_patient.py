"""The default scenario looks like a CD7 CAR-T patient (qualitative calibration, issue 2).

Facts from CD7 CAR-T trials (science/targets.md): peak CAR copies 3e3-3e5
copies/ug between day 7 and day 21 (NCT05290155: median 62,390, day 12, range 10-21);
marrow blasts < 5% by day 28 (CR 90-100%: Pan 2021, Lu 2022); CD7+ normal T cells
depleted while CD7- T cells expand (Pan 2021); cytokines peak in the first two weeks
and fall; CAR-T persist for months (detectable in 5/5 at month 6, Pan 2021).
"""

import numpy as np
import pytest

import cartsim


@pytest.fixture(scope="module")
def ds():
    return cartsim.simulate(cartsim.Scenario()).isel(patient=0)


def at(ds, var, day):
    return float(ds[var].sel(time=day, method="nearest"))


def test_solve_succeeds(ds):
    assert int(ds["status"]) == 0


def test_expansion_peak_in_clinical_range_and_window(ds):
    c = ds["car_copies_per_ug"].where(ds.time >= 0)
    peak = float(c.max())
    day = float(ds.time[int(np.nanargmax(c.values))])
    assert 3e3 <= peak <= 3e5
    assert 7 <= day <= 21


def test_marrow_remission_by_day_28(ds):
    assert at(ds, "marrow_blast_pct", -5) > 5.0
    assert at(ds, "marrow_blast_pct", 28) < 5.0
    # MRD-negative by flow (< 1e-4 = 0.01%) at day 28 in the default case
    assert at(ds, "marrow_blast_pct", 28) < 0.01


def test_cd7pos_t_cells_depleted_while_cd7neg_recover(ds):
    t7_0, t0_0 = at(ds, "t_cd7pos_per_ul", 0), at(ds, "t_cd7neg_per_ul", 0)
    assert at(ds, "t_cd7pos_per_ul", 28) < 0.01 * t7_0
    assert at(ds, "t_cd7pos_per_ul", 90) < 1.0  # T-cell aplasia of CD7+ cells, cells/uL
    nadir = float(ds["t_cd7neg_per_ul"].sel(time=slice(-5, 28)).min())
    assert at(ds, "t_cd7neg_per_ul", 90) > 10 * nadir
    assert at(ds, "t_cd7neg_per_ul", 90) > t0_0


@pytest.mark.parametrize("cyt,baseline_param", [("il6", "il60"), ("ifng", "ifng0"),
                                                ("il10", "il100"), ("tnfa", "tnfa0")])
def test_cytokines_peak_in_first_two_weeks_then_fall(ds, cyt, baseline_param):
    from cartsim.parameters.cd7 import CD7_PARAMETERS

    base = CD7_PARAMETERS[baseline_param].value
    v = ds[cyt].where(ds.time >= 0)
    peak = float(v.max())
    day = float(ds.time[int(np.nanargmax(v.values))])
    assert 0 < day <= 14
    assert peak > 3 * base
    assert at(ds, cyt, 42) < base + 0.1 * (peak - base)


def test_memory_driven_persistence_for_months(ds):
    assert at(ds, "car_cells_per_ul", 180) > 1.0
    assert at(ds, "car_mem", 180) > at(ds, "car_eff", 180)
    # multiphasic: fast contraction after the peak, slow terminal decline
    c = ds["car_total"]
    fast = np.log(at(ds, "car_total", 14) / at(ds, "car_total", 28)) / 14
    slow = np.log(at(ds, "car_total", 180) / at(ds, "car_total", 365)) / 185
    assert fast > 5 * slow > 0
    assert c.sel(time=slice(0, None)).min() > 0


def test_lymphodepletion_lowers_lymphocytes(ds):
    alc = ds["t_cd7pos_per_ul"] + ds["t_cd7neg_per_ul"]
    assert float(alc.sel(time=0)) < 0.2 * float(alc.sel(time=-5))
