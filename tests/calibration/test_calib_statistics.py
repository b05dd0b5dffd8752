"""Trial figures read off a hand-made endpoints Dataset, where each answer is known."""

import math

import numpy as np
import pytest
import xarray as xr

from cartsim.calibration.statistics import infection_death_causes, statistic

NAN = math.nan


def _ep(causes="alive leukemia non_relapse_mortality"):
    n = 6
    flags = causes.split()
    data = {
        "evaluable": [True, True, True, True, True, False],
        "response_day": [10.0, 20.0, NAN, 14.0, 30.0, 5.0],
        "death_day": [NAN, 20.0, 15.0, NAN, NAN, NAN],
        "persistence_qpcr": [20.0, 40.0, 10.0, NAN, 60.0, 100.0],
        "persistence_flow": [15.0, 10.0, 10.0, NAN, 20.0, 100.0],
        "relapse": [True, False, False, True, True, True],
        "relapse_day": [100.0, NAN, NAN, 200.0, 50.0, 10.0],
        "relapse_cd7neg": [True, False, False, False, True, True],
        "cd7_clearance_day": [8.0, 11.0, 12.0, NAN, 3.0, 1.0],
        "death_cause": [0, 2, 1, 0, 0, 2],
        "crs_grade": [0, 1, 3, 4, 2, 4],
    }
    ds = xr.Dataset({k: ("patient", np.asarray(v)) for k, v in data.items()},
                    coords={"patient": np.arange(n)})
    ds["death_cause"].attrs = {"flag_values": np.arange(len(flags)),
                               "flag_meanings": " ".join(flags)}
    return ds


def test_rates_count_evaluable_patients_only():
    assert statistic(_ep(), "rate_crs_g3") == (pytest.approx(2 / 5), 5)
    assert statistic(_ep(), "rate_cd7_cleared_d11") == (pytest.approx(3 / 5), 5)


def test_response_within_one_month():
    assert statistic(_ep(), "rate_response_m1")[0] == pytest.approx(3 / 5)


def test_undetectable_at_day_28_among_responders_alive_on_day_28():
    # responders by day 28 alive on day 28: patients 0 and 3 (1 died on day 20, 4 responded
    # on day 30); 0 persists to day 20 < 28 (gone), 3 never detected (gone)
    assert statistic(_ep(), "rate_car_undetectable_d28") == (pytest.approx(1.0), 2)


def test_relapse_by_a_day_and_the_cd7_negative_share():
    assert statistic(_ep(), "rate_relapse")[0] == pytest.approx(3 / 5)
    assert statistic(_ep(), "rate_relapse", 150.0)[0] == pytest.approx(2 / 5)
    assert statistic(_ep(), "share_cd7neg_relapse") == (pytest.approx(2 / 3), 3)
    assert statistic(_ep(), "median_relapse_month")[0] == pytest.approx(100 / (365.25 / 12))


def test_infection_deaths_fall_back_to_non_relapse_mortality():
    assert infection_death_causes(_ep()) == ("death_cause", [2])
    assert statistic(_ep(), "rate_death_infection")[0] == pytest.approx(1 / 5)


def test_infection_deaths_read_the_death_mechanism_when_there_is_one():
    ep = _ep()
    ep["death_mechanism"] = ("patient", np.array([0, 3, 2, 0, 0, 2]), {
        "flag_values": np.arange(5), "flag_meanings": "alive leukemia infection crs transplant"})
    assert infection_death_causes(ep) == ("death_mechanism", [2])
    assert statistic(ep, "rate_death_infection")[0] == pytest.approx(1 / 5)  # patient 2 only


def test_unknown_statistic_is_an_error_naming_the_known_ones():
    with pytest.raises(KeyError, match="rate_crs_g3"):
        statistic(_ep(), "rate_of_everything")
