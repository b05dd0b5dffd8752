"""Death model against closed-form survival; censoring, causes and the seed."""

import dataclasses

import numpy as np
import pytest
from scipy import stats

from cartsim.clinical import DeathModel, EndpointSettings, endpoints

OFF = {"leukemia_hazard_max_per_day": 0.0, "neutropenia_hazard_per_day": 0.0,
       "aplasia_hazard_per_day": 0.0, "crs_hazard_per_day": 0.0, "trm_1y": 0.0,
       "leukemia_onset_day": 0.0, "neutropenia_ramp_days": 0.0}


def settings(**death) -> EndpointSettings:
    return EndpointSettings(death=DeathModel(**{**OFF, **death}))


# hazards constant between output times: H is exact on a coarse hand-made grid, which keeps
# 10,000-20,000 patients fast (endpoints() warns about grids coarser than daily)
COARSE_GRID = pytest.mark.filterwarnings(
    r"ignore:endpoints\(\) reads an output grid:cartsim.CartsimWarning")


def assert_fraction(observed, p, n):
    """Binomial proportion within 4 standard errors."""
    assert abs(observed - p) < 4.0 * np.sqrt(p * (1 - p) / n), (observed, p)


@COARSE_GRID
def test_constant_hazard_gives_exponential_deaths(make_ds):
    n, h = 20_000, 0.004
    t = np.concatenate([[-5.0], np.arange(0.0, 181.0, 10.0)])  # H is exact on any grid
    e = endpoints(make_ds(n, t=t, t_cd7pos_per_ul=0.0), settings(aplasia_hazard_per_day=h),
                  seed=7)
    day = e.death_day.values
    for t_check in (30.0, 90.0, 180.0):
        assert_fraction(np.mean(day <= t_check), 1 - np.exp(-h * t_check), n)
    # given death by day 180, F(t)/F(180) is uniform
    dead = day[np.isfinite(day)]
    u = -np.expm1(-h * dead) / -np.expm1(-h * 180.0)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert (e.os_day.values == np.where(np.isfinite(day), day, 180.0)).all()
    assert (e.os_event.values == np.isfinite(day)).all()


@COARSE_GRID
def test_leukemia_hazard_follows_the_hill_burden_curve(make_ds):
    n = 10_000
    em = np.repeat([[0.0], [250.0]], n // 2, axis=0)  # x = 0.4/0.25 (+ 250/250)
    s = settings(leukemia_hazard_max_per_day=0.01)
    t = np.concatenate([[-5.0], np.arange(0.0, 181.0, 10.0)])
    e = endpoints(make_ds(n, t=t, em_volume_cm3=em), s, seed=3)
    dead = np.isfinite(e.death_day.values)
    for half, x in ((slice(0, n // 2), 1.6), (slice(n // 2, n), 2.6)):
        h = 0.01 * x**2 / (1 + x**2)
        assert_fraction(dead[half].mean(), 1 - np.exp(-h * 180.0), n // 2)
    assert (e.death_cause.values[dead] == 1).all()  # refractory: death with active disease


@COARSE_GRID
def test_transplant_related_mortality_at_one_year(make_ds):
    n = 10_000
    t = np.arange(-5.0, 401.0, 5.0)
    e = endpoints(make_ds(n, t=t, marrow_blast_pct=0.0, hsct_day=10.0), settings(trm_1y=0.15),
                  seed=11)
    day = e.death_day.values
    assert not (day < 10.0).any()
    assert_fraction(np.mean(day <= 375.0), 0.15, n)
    no_hsct = endpoints(make_ds(50, t=t, hsct_day=np.nan), settings(trm_1y=0.15))
    assert not no_hsct.death.any()


def test_death_before_relapse_suppresses_it(make_ds):
    t = np.arange(-5.0, 181.0)
    b = np.stack([np.where(t < 12, 40.0, np.where(t < 120, 0.001, 30.0)), np.full(t.size, 40.0)])
    anc = np.where(t >= 50.0, 100.0, 2500.0)  # hazard 10/day from day 50: death within ~a day
    e = endpoints(make_ds(2, marrow_blast_pct=b, anc_per_ul=anc),
                  settings(neutropenia_hazard_per_day=10.0), seed=1)
    assert e.death.values.all() and ((e.death_day > 49.0) & (e.death_day < 52.0)).all()
    p = e.isel(patient=0)
    assert not bool(p.relapse) and np.isnan(float(p.relapse_day))
    assert int(p.death_cause) == 2  # died in remission: non-relapse mortality
    assert float(p.pfs_day) == float(p.death_day) and bool(p.pfs_event)
    assert float(p.dor_day) == pytest.approx(float(p.death_day) - 12.0) and bool(p.dor_event)
    assert not bool(p.mrd_flow_neg_m3) and not bool(p.car_detectable_m6)
    assert int(e.death_cause.values[1]) == 1  # never in remission: leukemia


def test_same_seed_same_deaths_and_patient_order(make_ds):
    s = settings(aplasia_hazard_per_day=0.01)
    big = make_ds(200, t_cd7pos_per_ul=0.0, seed=5)
    a, b = endpoints(big, s), endpoints(big, s)
    np.testing.assert_array_equal(a.death_day.values, b.death_day.values)
    small = endpoints(make_ds(50, t_cd7pos_per_ul=0.0, seed=5), s)
    np.testing.assert_array_equal(small.death_day.values, a.death_day.values[:50])
    other = endpoints(big, s, seed=6)
    assert not np.array_equal(np.isfinite(other.death_day.values), np.isfinite(a.death_day.values))
    assert other.attrs["seed"] == 6 and a.attrs["seed"] == 5


def test_default_death_model_spares_a_healthy_remission(make_ds):
    e = endpoints(make_ds(2000, marrow_blast_pct=0.0), EndpointSettings())
    assert not e.death.any()  # no burden, normal counts, no transplant: zero hazard
    assert dataclasses.asdict(EndpointSettings().death)["trm_1y"] > 0.0


def test_leukemia_hazard_waits_for_its_onset_day(make_ds):
    """No leukemic death before ``leukemia_onset_day``; after it the Hill hazard as usual."""
    n = 10_000
    s = settings(leukemia_hazard_max_per_day=0.05, leukemia_onset_day=14.0)
    e = endpoints(make_ds(n, t=np.arange(-5.0, 61.0)), s, seed=5)
    day = e.death_day.values
    assert not (day < 13.0).any()  # the hazard is linear between output times (days 13-14)
    h = 0.05 * 1.6**2 / (1 + 1.6**2)
    assert_fraction(np.mean(day <= 60.0), 1 - np.exp(-h * 46.5), n)
    assert (e.death_mechanism.values[np.isfinite(day)] == 1).all()


def test_neutropenic_infection_hazard_grows_with_the_duration_of_neutropenia(make_ds):
    """Constant grade-4 neutropenia from day 0: H(t) = h t^2 / (2 r) for t <= r, then
    h (t - r/2) (closed form of the linear ramp over r days)."""
    n, h, r = 20_000, 0.05, 7.0
    t = np.arange(-5.0, 31.0, 0.25)
    e = endpoints(make_ds(n, t=t, marrow_blast_pct=0.0, anc_per_ul=100.0),
                  settings(neutropenia_hazard_per_day=h, neutropenia_ramp_days=r), seed=2)
    day = e.death_day.values
    for t_check in (3.0, 7.0, 20.0):
        H = h * t_check**2 / (2 * r) if t_check <= r else h * (t_check - r / 2)
        assert_fraction(np.mean(day <= t_check), 1 - np.exp(-H), n)
    assert (e.death_mechanism.values[np.isfinite(day)] == 2).all()  # infection


def test_fatal_crs_only_in_the_grade4_il6_range(make_ds):
    """CRS deaths happen while IL-6 is at or above the grade-4 threshold, and only then."""
    n = 4_000
    t = np.arange(-5.0, 61.0, 0.5)
    il6 = np.where((t >= 5.0) & (t < 8.0), 5000.0, 5.0)  # 3 days of grade-4 surrogate IL-6
    e = endpoints(make_ds(n, t=t, marrow_blast_pct=0.0, il6=il6),
                  settings(crs_hazard_per_day=0.2), seed=4)
    day = e.death_day.values
    dead = np.isfinite(day)
    assert ((day[dead] >= 4.5) & (day[dead] <= 8.0)).all()
    assert_fraction(dead.mean(), 1 - np.exp(-0.2 * 3.0), n)
    assert (e.death_mechanism.values[dead] == 3).all()
    assert (e.death_mechanism.values[~dead] == 0).all()


def test_cmax_is_not_cut_short_by_a_death_draw(make_ds):
    """A patient dying on day ~2 keeps the Cmax/Tmax its trajectory reached (day 12)."""
    t = np.arange(-5.0, 61.0)
    car = np.where(t >= 0, 50.0 * np.exp(0.5 * np.minimum(t, 12.0)), 0.0)
    e = endpoints(make_ds(1, t=t, car_copies_per_ug=car, anc_per_ul=100.0),
                  settings(neutropenia_hazard_per_day=10.0), seed=0)
    p = e.isel(patient=0)
    assert float(p.death_day) < 5.0
    assert float(p.tmax_qpcr) == 12.0
    assert float(p.cmax_qpcr) == pytest.approx(50.0 * np.exp(6.0))
    assert float(p.persistence_qpcr) <= float(p.death_day)  # persistence stops at death
