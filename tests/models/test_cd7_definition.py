"""The cd7 model definition: parameter set, reaction network and right-hand side agree."""

import numpy as np
import pytest

from cartsim.models import cd7_kernel as K
from cartsim.models.cd7 import Cd7Model
from cartsim.parameters.base import ParameterError
from cartsim.parameters.cd7 import CD7_LD_PK, CD7_PARAMETERS, CD7_PHYSIOLOGY
from cartsim.scenario import Disease, ModelConfig, Regimen, Scenario


def test_parameter_set_matches_kernel_layout():
    assert tuple(CD7_PARAMETERS) == K.PARAM_NAMES


@pytest.mark.parametrize("pset", [CD7_PARAMETERS, CD7_PHYSIOLOGY, CD7_LD_PK])
def test_every_parameter_has_unit_bounds_and_source(pset):
    for name in pset:
        p = pset[name]
        assert p.unit and p.source and p.lower <= p.value <= p.upper


def test_stoichiometry_shape_and_conservation_of_differentiation():
    # differentiation reactions move a cell between CAR compartments: net zero
    for name in ("car_eff_to_mem", "car_mem_to_eff", "car_eff_to_exh", "b7_to_b0_switch"):
        r = K.REACTION_NAMES.index(name)
        assert K.STOICH[r].sum() == 0 and np.abs(K.STOICH[r]).sum() == 2
    assert K.STOICH.shape == (K.N_REACTION, K.N_CELL)


def _random_state(rng):
    m = Cd7Model()
    pr = m.build(Scenario(disease=Disease(em_volume_cm3=20.0),
                          regimen=Regimen(toci_days=[1.0], steroid_days=[2.0])))
    y = pr.y0.copy()
    y[: K.N_CELL] = np.log(10 ** rng.uniform(0, 12, K.N_CELL))
    y[K.N_CELL:] = np.abs(y[K.N_CELL:]) * rng.uniform(0.5, 3.0, K.N_STATE - K.N_CELL) + 0.1
    return y, pr.p


def test_rhs_is_the_reaction_network():
    """The per-capita rhs (written separately) equals (S^T a(x)) / x of the network."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        y, p = _random_state(rng)
        d = np.empty(K.N_STATE)
        K.rhs(0.0, y, p, d)
        x = np.exp(y[: K.N_CELL])
        c = y[K.N_CELL:]
        a = np.empty(K.N_REACTION)
        K.propensities(x, c, p, a)
        assert np.all(a >= 0.0), "propensities must be non-negative (stochastic reuse)"
        np.testing.assert_allclose(d[: K.N_CELL], K.STOICH.T @ a / x, rtol=1e-10, atol=1e-12)
        drv = K.drivers(x[K.S_E], x[K.S_M], x[K.S_X], x[K.S_B7], x[K.S_L], x[K.S_T7], c, p)
        dc = np.empty(K.N_STATE - K.N_CELL)
        car = x[K.S_E] + x[K.S_M] + x[K.S_X]
        rho = K._growth_terms(car, c, p, drv[0], drv[3])[0]
        K.continuous_rhs(x[K.S_E], car, rho, x[K.S_T7] + x[K.S_T0] + car, c, p, drv, dc)
        # the same terms; the compiler may order the floating-point operations differently
        np.testing.assert_allclose(d[K.N_CELL:], dc, rtol=1e-14, atol=0)


def test_unknown_model_parameter_is_rejected_with_its_name():
    with pytest.raises(ParameterError, match="no_such_param"):
        Cd7Model().build(Scenario(model=ModelConfig(params={"no_such_param": 1.0})))


def test_out_of_bounds_model_parameter_is_rejected():
    with pytest.raises(ParameterError, match=r"model.params.rho_max=-1"):
        Cd7Model().build(Scenario(model=ModelConfig(params={"rho_max": -1.0})))


def test_build_places_doses_at_the_right_times_and_amounts():
    sc = Scenario(regimen=Regimen(car_dose_per_kg=2e6, car_days=[0.0, 2.0],
                                  car_fractions=[0.4, 0.6]))
    pr = Cd7Model().build(sc)
    car = [(t, v) for t, kind, idx, v in pr.events if kind == 0 and idx in (K.S_E, K.S_M, K.S_X)]
    total = 2e6 * sc.patient.weight_kg
    assert sum(v for t, v in car if t == 0.0) == pytest.approx(0.4 * total)
    assert sum(v for t, v in car if t == 2.0) == pytest.approx(0.6 * total)
    # each infusion switches on and off: net rate change zero
    rate = [v for t, kind, idx, v in pr.events if kind == 2]
    assert sum(rate) == pytest.approx(0.0, abs=1e-6)
    assert pr.t0 == -5.0


def test_extinction_is_absorbing_for_the_leukemia():
    """Below one cell a clone is gone for good; a clone never present stays 0; NaN stays NaN."""
    from cartsim.models.cd7 import extinct_absorbing

    x = np.array([[5.0, 2.0, 0.5, 3.0, 50.0],      # falls below 1, then ODE regrowth: hidden
                  [0.1, 0.2, 2.0, 4.0, 8.0],       # first appears later: reported from then on
                  [1e-6, 1e-3, 0.9, 1e-6, 0.5],    # never present
                  [3.0, np.nan, np.nan, np.nan, np.nan]])
    out = extinct_absorbing(x)
    np.testing.assert_array_equal(out[0], [5.0, 2.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(out[1], [0.0, 0.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(out[2], np.zeros(5))
    assert out[3, 0] == 3.0 and np.isnan(out[3, 1:]).all()
