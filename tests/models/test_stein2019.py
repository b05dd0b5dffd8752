"""Tests of the Stein et al. 2019 (CPT:PSP 8:285) CAR-T kinetics model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from cartsim import CartsimWarning
from cartsim.models import stein2019_kernel as K
from cartsim.models.stein2019 import Stein2019, closed_form, fill_derived, half_lives
from cartsim.parameters.base import ParameterError
from cartsim.parameters.stein2019 import (
    STEIN2019,
    STEIN2019_OMEGA2,
    STEIN2019_RESIDUAL_SD,
)
from cartsim.scenario import ModelConfig, OutputOptions, Regimen, Scenario
from cartsim.solvers.api import ADD_STATE, SET_PARAM, solve_batch

MODEL = Stein2019()
RTOL_CHECK = 1e-7


def _scenario(params=None, output=None, **regimen):
    return Scenario(model=ModelConfig(name="stein2019", params=dict(params or {})),
                    regimen=Regimen(**regimen), output=output or OutputOptions())


def _rhs(p):
    def f(t, y):
        d = np.empty(2)
        K.rhs(t, y, p, d)
        return d
    return f


def _jac(p):
    def f(t, y):
        J = np.empty((2, 2))
        K.jac(t, y, p, J)
        return J
    return f


def _integrate_segments(p, bounds, flag_changes, t_eval):
    """Integrate with scipy Radau from bounds[0] (state E0 added there) across segments.

    ``flag_changes[i]`` is a dict slot -> value applied at the start of segment i.
    """
    p = p.copy()
    y = np.array([p[K.P_CMAX] / p[K.P_FOLDX], 0.0])
    out = np.full((len(t_eval), 2), np.nan)
    segments = zip(bounds[:-1], bounds[1:], strict=True)
    for (a, b), changes in zip(segments, flag_changes, strict=True):
        for slot, v in changes.items():
            p[slot] = v
        sel = (t_eval >= a) & (t_eval <= b)
        t_seg = np.union1d(t_eval[sel], [b])  # always end on b to hand the state on
        sol = solve_ivp(_rhs(p), (a, b), y, method="Radau", jac=_jac(p), rtol=1e-10,
                        atol=1e-12, t_eval=t_seg)
        assert sol.success
        out[sel] = sol.y.T[np.isin(t_seg, t_eval[sel])]
        y = sol.y[:, -1]
    return out


def _rel_err(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


# --------------------------------------------------------------------------- parameters


def test_parameter_set_values_and_sources():
    expected = {"foldx": 3900, "Tmax": 9.3, "Cmax": 24000, "alpha": 0.16, "FB": 0.0079,
                "beta": 0.0032, "Ftoci": 1.2, "Fster": 1.0}
    assert list(STEIN2019) == list(expected)
    for k, v in expected.items():
        assert STEIN2019[k].value == pytest.approx(v)
        assert "Stein" in STEIN2019[k].source and "2019" in STEIN2019[k].source
    for i, k in enumerate(["foldx", "Tmax", "Cmax", "alpha", "FB", "beta", "Ftoci", "Fster"]):
        assert STEIN2019.index[k] == i
    assert STEIN2019.index["Fster"] == K.N_BASE - 1
    assert set(STEIN2019_OMEGA2) == {"foldx", "Tmax", "Cmax", "alpha", "FB", "beta"}
    assert STEIN2019_OMEGA2["foldx"] == 2.4
    assert STEIN2019_RESIDUAL_SD == 0.56


def test_parameter_vector_layout():
    p = MODEL.parameter_vector()
    assert p.shape == (K.N_P,)
    np.testing.assert_array_equal(p[: K.N_BASE], STEIN2019.values())
    assert p[K.P_RHO] == pytest.approx(math.log(3900) / 9.3)
    assert p[K.P_K] == pytest.approx(0.0079 * (0.16 - 0.0032))
    assert p[K.P_PHASE] == 0.0 and p[K.P_TOCI] == 0.0 and p[K.P_STER] == 0.0
    q = np.tile(p, (3, 1))
    q[:, K.P_TMAX] = [5.0, 10.0, 20.0]
    fill_derived(q)
    np.testing.assert_allclose(q[:, K.P_RHO], math.log(3900) / np.array([5.0, 10.0, 20.0]))


def test_unknown_parameter_names_key():
    with pytest.raises(ParameterError, match="not_a_param"):
        MODEL.build(_scenario({"not_a_param": 1.0}))


def test_out_of_bounds_and_alpha_le_beta_rejected():
    with pytest.raises(ParameterError, match="FB"):
        MODEL.build(_scenario({"FB": 2.0}))
    with pytest.raises(ParameterError, match="alpha"):
        MODEL.build(_scenario({"alpha": 0.01, "beta": 0.02}))


def test_half_lives_match_published():
    h = half_lives()
    assert round(h["initial_half_life"], 1) == 4.3
    assert h["terminal_half_life"] == pytest.approx(220.0, rel=0.025)  # 216.6 d, reported 220
    assert round(h["doubling_time"], 2) == 0.78


# --------------------------------------------------------------------------- kernel


@pytest.mark.parametrize("phase,toci,ster", [(0, 0, 0), (0, 1, 1), (1, 0, 0), (1, 1, 0)])
def test_jacobian_matches_finite_difference(phase, toci, ster):
    p = MODEL.parameter_vector({"Fster": 0.7})
    p[K.P_PHASE], p[K.P_TOCI], p[K.P_STER] = phase, toci, ster
    y = np.array([1234.5, 67.8])
    J = np.empty((2, 2))
    K.jac(0.0, y, p, J)
    Jfd = np.empty((2, 2))
    for j in range(2):
        h = 1e-6 * max(abs(y[j]), 1.0)
        yp, ym = y.copy(), y.copy()
        yp[j] += h
        ym[j] -= h
        fp, fm = np.empty(2), np.empty(2)
        K.rhs(0.0, yp, p, fp)
        K.rhs(0.0, ym, p, fm)
        Jfd[:, j] = (fp - fm) / (2 * h)
    np.testing.assert_allclose(J, Jfd, rtol=1e-7, atol=1e-12)


def test_rhs_phases():
    p = MODEL.parameter_vector()
    y = np.array([100.0, 10.0])
    d = np.empty(2)
    K.rhs(0.0, y, p, d)
    np.testing.assert_allclose(d, [p[K.P_RHO] * 100.0, 0.0])
    p[K.P_TOCI] = 1.0
    K.rhs(0.0, y, p, d)
    np.testing.assert_allclose(d, [1.2 * p[K.P_RHO] * 100.0, 0.0])
    p[K.P_PHASE] = 1.0
    K.rhs(0.0, y, p, d)
    np.testing.assert_allclose(d, [-0.16 * 100.0, p[K.P_K] * 100.0 - 0.0032 * 10.0])
    K.rhs(123.0, y, p, d)  # autonomous
    np.testing.assert_allclose(d, [-0.16 * 100.0, p[K.P_K] * 100.0 - 0.0032 * 10.0])


def test_rhs_segments_match_closed_form_scipy():
    p = MODEL.parameter_vector()
    tmax = p[K.P_TMAX]
    t = np.concatenate([np.arange(0.0, 366.0), [tmax]])
    t.sort()
    y = _integrate_segments(p, [0.0, tmax, 365.0], [{}, {K.P_PHASE: 1.0}], t)
    c = y.sum(axis=1)
    assert _rel_err(c, closed_form(t)) < RTOL_CHECK
    assert c[np.searchsorted(t, tmax)] == pytest.approx(24000.0, rel=1e-9)
    # memory pool: M = FB*Cmax*(exp(-beta u) - exp(-alpha u)) after the peak
    u = np.clip(t - tmax, 0, None)
    m = 0.0079 * 24000 * (np.exp(-0.0032 * u) - np.exp(-0.16 * u))
    np.testing.assert_allclose(y[:, 1], m, rtol=1e-7, atol=1e-9)


def test_rhs_segments_with_interventions_match_closed_form():
    p = MODEL.parameter_vector({"Fster": 0.5, "Tmax": 12.0})
    t_inf, toci, ster = 2.0, 5.0, 8.0
    t_pk = t_inf + 12.0
    t = np.linspace(t_inf, 200.0, 397)
    y = _integrate_segments(
        p, [t_inf, toci, ster, t_pk, 200.0],
        [{}, {K.P_TOCI: 1.0}, {K.P_STER: 1.0}, {K.P_PHASE: 1.0}], t)
    cf = closed_form(t, p, t_inf=t_inf, toci_day=toci, ster_day=ster)
    assert _rel_err(y.sum(axis=1), cf) < RTOL_CHECK
    # peak = Cmax * exp(rho*[(Ftoci-1)(t_pk-toci) + (Fster-1)(t_pk-ster) + cross term])
    rho = p[K.P_RHO]
    expo = rho * (0.2 * (t_pk - toci) - 0.5 * (t_pk - ster) + 0.2 * -0.5 * (t_pk - ster))
    assert closed_form(t_pk, p, t_inf, toci, ster) == pytest.approx(24000 * math.exp(expo))


def test_closed_form_pieces():
    assert closed_form(-0.5) == 0.0
    assert closed_form(0.0) == pytest.approx(24000 / 3900)
    assert closed_form(9.3) == pytest.approx(24000)
    # toci after the peak has no effect
    np.testing.assert_array_equal(closed_form([5.0, 50.0], toci_day=20.0),
                                  closed_form([5.0, 50.0]))


# --------------------------------------------------------------------------- build


def test_observables():
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    obs = MODEL.observables(y, np.tile(MODEL.parameter_vector(), (2, 1)), {})
    o = obs["car_copies_per_ug"]
    np.testing.assert_array_equal(o.data, [3.0, 7.0])
    assert o.units == "copies/ug"


def test_model_metadata():
    assert MODEL.name == "stein2019"
    assert MODEL.model_id == 1
    assert MODEL.state_names == ["E", "M"]
    assert not MODEL.log_mask.any()
    assert MODEL.parameters is STEIN2019
    assert MODEL.default_method == "rodas4"


def test_build_default_events():
    prob = MODEL.build(_scenario())
    np.testing.assert_array_equal(prob.y0, [0.0, 0.0])
    np.testing.assert_array_equal(prob.p, MODEL.parameter_vector())
    assert prob.t0 == -5.0
    ev = prob.events
    np.testing.assert_allclose(ev.t, [0.0, 9.3])
    np.testing.assert_array_equal(ev.kind, [ADD_STATE, SET_PARAM])
    np.testing.assert_array_equal(ev.idx, [K.I_E, K.P_PHASE])
    np.testing.assert_allclose(ev.val, [24000 / 3900, 1.0])
    assert len(prob.rules) == 0


def test_build_overrides_and_interventions():
    prob = MODEL.build(_scenario({"Tmax": 12.0, "foldx": 1000.0}, car_days=[1.0],
                                 toci_days=[-1.0, 4.0], steroid_days=[20.0]))
    assert prob.p[K.P_TMAX] == 12.0
    assert prob.p[K.P_RHO] == pytest.approx(math.log(1000.0) / 12.0)
    ev = prob.events
    np.testing.assert_allclose(ev.t, [-1.0, 1.0, 13.0])  # steroids after the peak: no event
    np.testing.assert_array_equal(ev.idx, [K.P_TOCI, K.I_E, K.P_PHASE])
    # output starting after the infusion: integration still starts at the first event
    prob = MODEL.build(_scenario(output=OutputOptions(t_start=5.0, t_end=30.0), car_days=[2.0]))
    assert prob.t0 == 2.0


def test_build_warns_on_unrepresentable_regimen():
    with pytest.warns(CartsimWarning, match="split dosing"):
        MODEL.build(_scenario(car_days=[0.0, 1.0], car_fractions=[0.5, 0.5]))
    with pytest.warns(CartsimWarning, match="IL-6"):
        MODEL.build(_scenario(toci_il6_threshold=100.0))


# --------------------------------------------------------------------------- solver


def _solve(prob, t_eval, method, rtol=1e-10, atol=1e-12, t1=None):
    res = solve_batch(MODEL.model_id, prob.y0, prob.p, t_eval, prob.t0,
                      float(t_eval[-1]) if t1 is None else t1, prob.events, prob.rules,
                      MODEL.log_mask, method=method, rtol=rtol, atol=atol)
    assert res.status.tolist() == [0], res.status_names()
    return res.y[0]


@pytest.mark.parametrize("method", ["rodas4", "dp5"])
def test_solver_reproduces_closed_form(method):
    prob = MODEL.build(_scenario())
    t = np.arange(-5.0, 366.0)
    y = _solve(prob, t, method)
    c = MODEL.observables(y, prob.p, prob.info)["car_copies_per_ug"].data
    cf = closed_form(t, prob.p)
    assert np.all(c[t < 0] == 0.0)
    assert _rel_err(c, cf) < RTOL_CHECK
    assert c[t == 0.0][0] == pytest.approx(24000 / 3900, rel=1e-12)  # right-continuous


@pytest.mark.parametrize("method", ["rodas4", "dp5"])
def test_solver_peak_and_half_lives(method):
    prob = MODEL.build(_scenario())
    t = np.array([-1.0, 0.0, 9.3, 9.3 + 4.3, 9.3 + 100.0, 9.3 + 300.0])
    c = _solve(prob, t, method).sum(axis=1)
    assert c[2] == pytest.approx(24000.0, rel=RTOL_CHECK)  # Cmax at Tmax
    assert c[2] == pytest.approx(c.max())
    # initial decline: half of the effector part gone after ln2/alpha = 4.3 d
    t_half = math.log(2) / 0.16
    c_half = _solve(prob, np.array([9.3, 9.3 + t_half]), method).sum(axis=1)[1]
    e_part = c_half - 0.0079 * 24000 * math.exp(-0.0032 * t_half)
    assert e_part == pytest.approx(0.5 * (1 - 0.0079) * 24000, rel=1e-7)
    assert round(t_half, 1) == 4.3
    # terminal phase: log-slope over days 109.3..309.3 gives ln2/beta = 217 d (published 220)
    slope = (math.log(c[5]) - math.log(c[4])) / 200.0
    t_term = -math.log(2) / slope
    cf = closed_form([9.3 + 100.0, 9.3 + 300.0])
    assert t_term == pytest.approx(-200.0 * math.log(2) / math.log(cf[1] / cf[0]), rel=1e-6)
    assert t_term == pytest.approx(math.log(2) / 0.0032, rel=1e-4)  # fast phase ~gone
    assert t_term == pytest.approx(220.0, rel=0.025)


@pytest.mark.parametrize("method", ["rodas4", "dp5"])
def test_solver_with_interventions_matches_closed_form(method):
    prob = MODEL.build(_scenario({"Fster": 0.8}, car_days=[1.0], toci_days=[3.0, 6.0],
                                 steroid_days=[5.5]))
    t = np.arange(-5.0, 200.0, 0.5)
    c = _solve(prob, t, method).sum(axis=1)
    cf = closed_form(t, prob.p, t_inf=1.0, toci_day=3.0, ster_day=5.5)
    assert _rel_err(c, cf) < RTOL_CHECK
    assert cf.max() != pytest.approx(24000.0, rel=1e-3)  # the peak moved


def test_solver_batch_of_patients():
    base = MODEL.build(_scenario())
    tmax = np.array([5.0, 9.3, 14.0])
    probs = [MODEL.build(_scenario({"Tmax": v, "alpha": 0.3})) for v in tmax]
    P = np.stack([pr.p for pr in probs])
    t = np.arange(-5.0, 120.0)
    res = solve_batch(MODEL.model_id, base.y0, P, t, base.t0, 120.0,
                      [pr.events for pr in probs], None, MODEL.log_mask,
                      method="rodas4", rtol=1e-10, atol=1e-12)
    assert res.ok.all()
    for i, pr in enumerate(probs):
        assert _rel_err(res.y[i].sum(axis=1), closed_form(t, pr.p)) < RTOL_CHECK


def test_solver_default_tolerances():
    scen = _scenario()
    prob = MODEL.build(scen)
    t = np.arange(-5.0, 366.0)
    y = _solve(prob, t, MODEL.default_method, rtol=scen.solver.rtol, atol=MODEL.atol)
    assert _rel_err(y.sum(axis=1), closed_form(t)) < 1e-4


def test_simulate_end_to_end():
    from cartsim.simulation import simulate

    scen = [_scenario(), _scenario({"Tmax": 12.0}, toci_days=[4.0])]
    for s in scen:
        s.solver.rtol = 1e-9
    ds = simulate(scen)
    assert ds.attrs["model"] == "stein2019"
    assert (ds["status"].values == 0).all()
    c = ds["car_copies_per_ug"]
    assert c.attrs["units"] == "copies/ug"
    t = ds["time"].values
    cf0 = closed_form(t)
    cf1 = closed_form(t, {"Tmax": 12.0}, toci_day=4.0)
    assert _rel_err(c.values[0], cf0) < 1e-5
    assert _rel_err(c.values[1], cf1) < 1e-5
