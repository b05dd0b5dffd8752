"""Whole path: simulate (default and high-burden scenarios) -> endpoints; invariants hold."""

import numpy as np
import pytest

import cartsim
from cartsim.clinical import endpoints
from cartsim.scenario import OutputOptions, Patient, Scenario


@pytest.fixture(scope="module")
def sim():
    out = OutputOptions(t_end=180.0)
    return cartsim.simulate([Scenario(output=out),
                             Scenario(patient=Patient(marrow_blast_pct=80.0), output=out)])


@pytest.fixture(scope="module")
def ep(sim):
    return endpoints(sim)


def test_invariants(sim, ep):
    assert ep.evaluable.all() and (ep.follow_up_day == 180.0).all()
    for name, var in ep.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
    for suffix in ("qpcr", "flow"):
        assert ((ep[f"tmax_{suffix}"] >= 0.0) & (ep[f"tmax_{suffix}"] <= 180.0)).all()
    for name in ("crs_grade", "crs_grade_1m", "crs_grade_3m", "icans_grade", "icans_grade_1m",
                 "icans_grade_3m"):
        assert ((ep[name] >= 0) & (ep[name] <= 4)).all(), name
    assert (ep.crs_grade_1m <= ep.crs_grade_3m).all() and (ep.crs_grade_3m <= ep.crs_grade).all()
    assert ((ep.icans_grade == 0) | (ep.crs_grade >= 1)).all()  # no ICANS without CRS
    assert (ep.pfs_day <= ep.os_day).all()
    cr = ep.response_d28 == 2
    assert (ep.response_day.where(cr) <= 28.0).sum() == cr.sum()
    died = ep.death.values
    assert (ep.death_day.values[died] <= 180.0).all()
    assert not (ep.relapse_day.values[died] > ep.death_day.values[died]).any()
    # both patients respond and expand (CD7 CAR-T trials: CR 90-100%, expansion 13/14)
    assert ep.expansion.all() and (ep.best_response >= 1).all()


def test_peaks_agree_with_the_trajectories(sim, ep):
    post = sim.where(sim.time >= 0.0)
    alive = ~ep.death.values
    for name, var in (("cmax_qpcr", "car_copies_per_ug"), ("il6_peak", "il6"),
                      ("ifng_peak", "ifng")):
        expect = post[var].max("time").values
        assert (ep[name].values <= expect).all()
        np.testing.assert_array_equal(ep[name].values[alive], expect[alive])
