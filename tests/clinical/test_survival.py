"""Death model against closed-form survival; censoring, causes and the seed."""

import dataclasses

import numpy as np
import pytest
from scipy import stats

from cartsim.clinical import DeathModel, EndpointSettings, endpoints

OFF = {"leukemia_hazard_max_per_day": 0.0, "neutropenia_hazard_per_day": 0.0,
       "aplasia_hazard_per_day": 0.0, "trm_1y": 0.0}


def settings(**death) -> EndpointSettings:
    return EndpointSettings(death=DeathModel(**{**OFF, **death}))


def assert_fraction(observed, p, n):
    """Binomial proportion within 4 standard errors."""
    assert abs(observed - p) < 4.0 * np.sqrt(p * (1 - p) / n), (observed, p)


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
