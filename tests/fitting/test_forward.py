"""The closed-form forward model of ``stein2019`` fits, evaluated in batches.

Independent truth: the Stein 2019 equations (science/parameters.md) written out here for one
patient at a time, with the expansion rate multiplied by Ftoci from the tocilizumab day when
it precedes the peak.
"""

import dataclasses
import math

import numpy as np
import pytest
from fitdata import DATA

from cartsim.fitting.data import read_observations
from cartsim.fitting.forward import ForwardModel
from cartsim.parameters.stein2019 import STEIN2019
from cartsim.scenario import ModelConfig, Scenario

STEIN6 = ["foldx", "Tmax", "Cmax", "alpha", "FB", "beta"]


def _stein(t, foldx, tmax, cmax, alpha, fb, beta, *, t_inf, toci, ftoci):
    """C(t): 0 before the infusion, (Cmax/foldx) exp(int g) up to the peak at t_inf + Tmax
    (g = ln(foldx)/Tmax, times Ftoci from the tocilizumab day on), biexponential after."""
    rho = math.log(foldx) / tmax
    t_pk = t_inf + tmax
    out = []
    for s in t:
        def growth(b):
            slowed = max(0.0, b - max(t_inf, toci)) if toci is not None and toci < t_pk else 0.0
            return rho * ((b - t_inf) + (ftoci - 1.0) * slowed)
        peak = cmax / foldx * math.exp(growth(t_pk))
        if s < t_inf:
            out.append(0.0)
        elif s < t_pk:
            out.append(cmax / foldx * math.exp(growth(s)))
        else:
            u = s - t_pk
            out.append((1 - fb) * peak * math.exp(-alpha * u) + fb * peak * math.exp(-beta * u))
    return np.array(out)


@pytest.fixture(scope="module")
def real_mixed():
    """The 14 real patients (different sampling days), every third one with tocilizumab on
    day 3 and every fifth infused on day 1: three dosing schedules in one cohort."""
    obs = read_observations(DATA / "bALL_cart_kinetics" / "car_t_cells_per_ul.csv")
    base = obs.scenarios(Scenario(model=ModelConfig(name="stein2019")))
    scs = []
    for i, sc in enumerate(base):
        reg = sc.regimen
        if i % 3 == 0:
            reg = dataclasses.replace(reg, toci_days=[3.0])
        if i % 5 == 1:
            reg = dataclasses.replace(reg, car_days=[1.0])
        scs.append(dataclasses.replace(sc, regimen=reg))
    return obs, scs


def test_batched_predictions_equal_the_equations_patient_by_patient(real_mixed):
    """A batch mixing patients, repeats and dosing schedules predicts, for every evaluation,
    the equations at that patient's own times, to 1e-12 relative; values outside the bounds
    or with alpha <= beta are NaN."""
    obs, scs = real_mixed
    fm = ForwardModel(obs, scs, STEIN6)
    assert len({(sc.regimen.car_days[0], bool(sc.regimen.toci_days)) for sc in scs}) == 4
    rng = np.random.default_rng(7)
    pats = np.concatenate([np.tile(np.arange(obs.n_patients), 3), rng.integers(0, 14, 9)])
    v = np.exp(rng.normal(np.log([40, 9, 200, 0.2, 0.05, 0.02]), 0.4, (pats.size, 6)))
    v[0, 3], v[0, 5] = 0.01, 0.02  # alpha <= beta
    v[1, 4] = 1.5  # FB above its bound
    pred = fm.predict(pats, v)
    ftoci = STEIN2019["Ftoci"].value
    for e, (i, row) in enumerate(zip(pats, v)):
        t = obs.time[obs.patient == i]
        assert pred[e].shape == t.shape
        if e < 2:
            assert np.isnan(pred[e]).all()
            continue
        toci = scs[i].regimen.toci_days[0] if scs[i].regimen.toci_days else None
        want = _stein(t, *row, t_inf=float(scs[i].regimen.car_days[0]), toci=toci, ftoci=ftoci)
        np.testing.assert_allclose(pred[e], want, rtol=1e-12, atol=0)


def test_one_patient_batch_equals_its_rows_in_a_cohort_batch(real_mixed):
    """An individual fit's batch (one patient) and the same rows inside a cohort batch give
    the same numbers: grouping patients does not change a prediction."""
    obs, scs = real_mixed
    fm = ForwardModel(obs, scs, STEIN6)
    v = np.tile([40.0, 9.0, 200.0, 0.2, 0.05, 0.02], (obs.n_patients, 1))
    v[:, 1] += np.arange(obs.n_patients)
    cohort = fm.predict(np.arange(obs.n_patients), v)
    for i in range(obs.n_patients):
        np.testing.assert_array_equal(fm.predict([i], v[i:i + 1])[0], cohort[i])
