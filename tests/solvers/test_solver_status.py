"""Failure statuses: reported, never raised; NaN rows after the failure point."""

import numpy as np
import pytest
from conftest import DP5, RODAS

from cartsim.models import kernels as K
from cartsim.solvers import EventTable, driver, solve_batch

METHODS = [pytest.param(RODAS, id="rodas4"), pytest.param(DP5, id="dp5")]


@pytest.mark.parametrize("method", METHODS)
def test_max_steps(integ, method):
    te = np.linspace(0.0, 10.0, 101)
    st, y, stats, _ = integ(K.MODEL_TEST_VDP, method, [2.0, 0.0], [5.0], te, 0.0, 10.0,
                            rtol=1e-10, atol=1e-10, max_steps=20)
    assert st == driver.MAX_STEPS
    assert stats[0] + stats[1] == 20
    assert np.all(np.isfinite(y[0]))
    nan_rows = np.isnan(y).all(axis=1)
    first_nan = int(np.argmax(nan_rows))
    assert first_nan > 0 and nan_rows[first_nan:].all() and not nan_rows[:first_nan].any()


@pytest.mark.parametrize("method", METHODS)
def test_blowup_in_batch_does_not_raise(method):
    """y' = a y^2, y(0) = 1 blows up at t = 1/a: patient 0 fails, the others succeed."""
    te = np.linspace(0.0, 2.0, 21)
    p = np.array([[1.0], [0.1], [0.2]])
    res = solve_batch(K.MODEL_TEST_BLOWUP, y0=[1.0], p=p, t_eval=te, t0=0.0, t1=2.0,
                      events=None, rules=None, log_mask=[False],
                      method="rodas4" if method == RODAS else "dp5", rtol=1e-8, atol=1e-10)
    assert res.status[0] in (driver.STEP_UNDERFLOW, driver.NONFINITE, driver.MAX_STEPS)
    assert res.status[1] == driver.SUCCESS and res.status[2] == driver.SUCCESS
    assert np.isnan(res.y[0, te > 1.0]).all()
    np.testing.assert_allclose(res.y[0, te < 0.95, 0], 1.0 / (1.0 - te[te < 0.95]), rtol=1e-6)
    np.testing.assert_allclose(res.y[1, :, 0], 1.0 / (1.0 - 0.1 * te), rtol=1e-6)
    assert res.status_names()[1] == "success"


def test_unknown_model_is_nonfinite(integ):
    st, y, _, _ = integ(999, RODAS, [1.0], [1.0], [0.0, 1.0], 0.0, 1.0)
    assert st == driver.NONFINITE
    assert np.isnan(y[1]).all()


def test_nonfinite_after_event(integ):
    st, y, _, _ = integ(K.MODEL_TEST_DECAY, DP5, [1.0], [1.0, 0.0], [0.0, 0.5, 1.0], 0.0, 1.0,
                        events=[(0.5, driver.ADD_STATE, 0, np.inf)])
    assert st == driver.NONFINITE
    assert np.isfinite(y[0, 0]) and np.isnan(y[1:]).all()


def test_singular_iteration_matrix(integ):
    """y' = y with fixed h = 4: I/(h gamma) - J = 0 exactly at every attempt."""
    st, y, stats, _ = integ(K.MODEL_TEST_LINEAR, driver.METHOD_RODAS4_FIXED, [1.0], [1.0, 0.0],
                            [0.0, 8.0], 0.0, 8.0, h0=4.0)
    assert st == driver.SINGULAR
    assert stats[1] == 5 and np.isnan(y[1, 0])


def test_api_validation_errors():
    ok = dict(model_id=K.MODEL_TEST_DECAY, y0=[1.0], p=[1.0, 0.0], t_eval=[0.0, 1.0], t0=0.0,
              t1=1.0, events=None, rules=None, log_mask=[False], method="rodas4", rtol=1e-6,
              atol=1e-8)
    assert solve_batch(**ok).status.tolist() == [0]
    bad = [
        dict(model_id=12345), dict(model_id="nope"), dict(method="rk4"), dict(rtol=0.0),
        dict(atol=[1e-8, 1e-8]), dict(log_mask=[True, False]), dict(t_eval=[1.0, 0.0]),
        dict(t1=-1.0), dict(y0=[np.nan]), dict(p=[np.nan, 0.0]),
        dict(events=EventTable.from_lists([0.5], [driver.ADD_STATE], [3], [1.0])),
        dict(events=EventTable.from_lists([0.5], [driver.SET_PARAM], [2], [1.0])),
        dict(y0=np.ones((2, 1)), events=[EventTable.empty()] * 3),
        dict(events="abc"),
        dict(y0=np.ones((2, 1)), p=np.ones((3, 2))),
        dict(max_steps=0),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            solve_batch(**{**ok, **kw})
    with pytest.raises(ValueError):
        EventTable.from_lists([0.5], [7], [0], [1.0])
    with pytest.raises(ValueError):
        EventTable([0.5, 1.0], [0], [0], [1.0])


def test_status_codes_have_one_definition():
    """Every engine and the Dataset read the codes and names of ``cartsim.codes``."""
    from cartsim import batch, codes
    from cartsim.solvers import api
    from cartsim.stochastic import network

    assert api.STATUS_NAMES is codes.STATUS_NAMES
    for name in ("SUCCESS", "MAX_STEPS", "STEP_UNDERFLOW", "NONFINITE", "SINGULAR"):
        assert getattr(driver, name) == getattr(codes, name)
    assert network.STATUS_NAMES == {c: codes.STATUS_NAMES[c]
                                    for c in (codes.SUCCESS, codes.MAX_STEPS, codes.NONFINITE)}
    assert batch.STATUS_DESCRIPTION is codes.STATUS_DESCRIPTION
    # the long name lists every code once, in order, with its description
    head, body = codes.STATUS_DESCRIPTION.split(": ", 1)
    assert head == "solver status"
    listed = [item.split(" ", 1) for item in body.split(", ")]
    assert [int(c) for c, _ in listed] == sorted(codes.STATUS_NAMES)
    assert [text for _, text in listed] == [t for _, _, t in codes.STATUSES]
