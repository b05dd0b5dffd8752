"""The design store: resumable, extensible, and strict about what it mixes."""

import numpy as np
import pandas as pd
import pytest
from calib_helpers import toy_targets

from cartsim.calibration.design import (
    DesignStore,
    Space,
    design_points,
    loglik_matrix,
    model_fingerprint,
    refine,
    run_design,
)

SPACE = Space(("x.a", "x.b"), (1.0, 10.0), (0.1, 1.0), (10.0, 100.0))
TARGETS = toy_targets()


def fake_simulator(calls=None, crash_at=None):
    """Deterministic figures from the parameter values; optionally raises on call ``crash_at``."""
    state = {"n": 0}

    def simulate(overrides):
        state["n"] += 1
        if crash_at is not None and state["n"] == crash_at:
            raise KeyboardInterrupt
        a, b = (float(o.split("=")[1]) for o in overrides)
        f = a / (a + 1.0)
        vals = {t.key: (f if t.kind != "lognormal" else 10 * b, 1000) for t in TARGETS}
        if calls is not None:
            calls.append(overrides)
        return vals, "ok"

    return simulate


def _run(path, n, **kw):
    return run_design(SPACE, n, path, replicates=1, targets=TARGETS, log=None, **kw)


def test_interrupted_design_resumes_to_the_same_rows(tmp_path):
    whole = _run(tmp_path / "whole.csv", 6, simulate=fake_simulator())
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut.csv", 6, simulate=fake_simulator(crash_at=4))
    assert len(DesignStore(tmp_path / "cut.csv", _meta(), TARGETS).frame()) == 3
    calls = []
    resumed = _run(tmp_path / "cut.csv", 6, simulate=fake_simulator(calls))
    assert len(calls) == 3  # only the missing points were simulated
    pd.testing.assert_frame_equal(resumed, whole)


def _meta():
    return {"free": SPACE.to_dict(), "seed": 0, "replicates": 1, "fixed": [],
            "targets": [t.key for t in TARGETS], "model": model_fingerprint()}


def test_a_longer_design_extends_the_shorter_one():
    short, long = design_points(SPACE, 5), design_points(SPACE, 9)
    np.testing.assert_array_equal(long[:5], short)
    np.testing.assert_allclose(short[0], SPACE.start)
    assert ((long >= SPACE.lower) & (long <= SPACE.upper)).all()


def test_design_is_space_filling_on_the_log_scale():
    u = SPACE.unit(design_points(SPACE, 65)[1:])
    for j in range(2):  # every quarter of each axis holds a quarter of the points
        counts = np.histogram(u[:, j], bins=4, range=(0, 1))[0]
        assert (counts == 16).all()


def test_a_cut_last_line_is_ignored(tmp_path):
    path = tmp_path / "d.csv"
    _run(path, 3, simulate=fake_simulator())
    with path.open("a") as f:
        f.write("3,design,ok,0.5")  # a write cut short by a kill
    assert len(DesignStore(path, _meta(), TARGETS).frame()) == 3


def test_resuming_with_other_settings_is_an_error(tmp_path):
    path = tmp_path / "d.csv"
    _run(path, 2, simulate=fake_simulator())
    with pytest.raises(ValueError, match="differing: replicates"):
        run_design(SPACE, 2, path, replicates=2, targets=TARGETS, log=None,
                   simulate=fake_simulator())
    with pytest.raises(ValueError, match="targets"):
        DesignStore(path, _meta(), TARGETS[:2])


def test_refine_appends_its_evaluations_and_improves(tmp_path):
    path = tmp_path / "d.csv"
    _run(path, 5, simulate=fake_simulator())
    df = refine(SPACE, path, starts=1, maxiter=8, targets=TARGETS, log=None,
                simulate=fake_simulator())
    assert (df["source"] == "design").sum() == 5
    assert df["source"].str.startswith("refine:").sum() == 8
    assert df["id"].is_unique
    ll = loglik_matrix(df, TARGETS).sum(axis=1)
    assert ll[df["source"] != "design"].max() >= ll[df["source"] == "design"].max()


def test_a_design_of_another_model_is_not_resumed(tmp_path, monkeypatch):
    import cartsim.calibration.design as design

    path = tmp_path / "d.csv"
    _run(path, 2, simulate=fake_simulator())
    monkeypatch.setattr(design, "model_fingerprint", lambda: "another-model")
    with pytest.raises(ValueError, match="differing: model"):
        _run(path, 3, simulate=fake_simulator())


def test_a_design_extended_after_a_refinement_evaluates_every_new_point(tmp_path):
    path = tmp_path / "d.csv"
    _run(path, 4, simulate=fake_simulator())
    refine(SPACE, path, starts=1, maxiter=5, targets=TARGETS, log=None,
           simulate=fake_simulator())
    calls = []
    df = _run(path, 8, simulate=fake_simulator(calls))
    assert len(calls) == 4
    assert sorted(df.loc[df["source"] == "design", "id"]) == list(range(8))
    assert df["id"].is_unique


def test_bad_bounds_are_an_error():
    with pytest.raises(ValueError, match="x.a"):
        Space.from_config({"x.a": [5.0, 0.1, 1.0]})


def test_refining_a_design_of_another_model_is_an_error(tmp_path, monkeypatch):
    import cartsim.calibration.design as design

    path = tmp_path / "d.csv"
    _run(path, 2, simulate=fake_simulator())
    monkeypatch.setattr(design, "model_fingerprint", lambda: "another-model")
    with pytest.raises(ValueError, match="another model"):
        refine(SPACE, path, targets=TARGETS, log=None)


def test_a_default_start_is_read_from_the_shipped_values():
    space = Space.from_config({"x.a": ["default", 0.1, 10.0], "x.b": [2.0, 1.0, 4.0]},
                              resolve=lambda key: 0.5)
    assert space.start == (0.5, 2.0)
    with pytest.raises(ValueError, match="resolve"):
        Space.from_config({"x.a": ["default", 0.1, 10.0]})


def test_refine_maximises_only_the_objective_targets_but_stores_all(tmp_path):
    """``objective`` (e.g. a structural miss left out of the fit) changes what is maximised,
    not what is simulated and stored. Every rate is f = a/(a+1): the response target alone
    (9/10) puts the optimum at a = 9, while all three rates (9/10, 5/10, 2/10) compromise
    near a = 1."""
    response = [t for t in TARGETS if t.name == "response"]
    best_a = {}
    for label, objective in (("response", response), ("all", None)):
        path = tmp_path / f"{label}.csv"
        _run(path, 6, simulate=fake_simulator())
        df = refine(SPACE, path, starts=1, maxiter=60, targets=TARGETS, log=None,
                    simulate=fake_simulator(), objective=objective)
        assert all(t.key in df for t in TARGETS)  # every target still stored
        refined = df[df["source"] != "design"]
        ll = loglik_matrix(refined, objective or TARGETS).sum(axis=1)
        best_a[label] = float(refined.iloc[int(np.argmax(ll))]["x.a"])
    assert abs(best_a["response"] - 9.0) < 1.5, best_a
    assert best_a["all"] < 3.0, best_a


def test_restamp_takes_a_model_change_only_when_the_stored_figures_reproduce(
        tmp_path, monkeypatch):
    """A source change that leaves every figure as stored re-stamps the store, which then
    resumes under the new model with its rows unchanged; a change that moves one figure is
    refused (naming the point) and leaves the store as it was."""
    import cartsim.calibration.design as design
    from cartsim.calibration.design import restamp

    path = tmp_path / "d.csv"
    before = _run(path, 4, simulate=fake_simulator())
    text = path.read_text()
    monkeypatch.setattr(design, "model_fingerprint", lambda: "refactored")

    def moved(overrides):
        vals, status = fake_simulator()(overrides)
        key = TARGETS[0].key
        vals[key] = (vals[key][0] * (1 + 1e-6), vals[key][1])
        return vals, status

    with pytest.raises(ValueError, match=r"point \d+ gives"):
        restamp(path, 2, targets=TARGETS, simulate=moved, log=None)
    assert path.read_text() == text  # untouched
    calls = []
    assert restamp(path, 2, targets=TARGETS, simulate=fake_simulator(calls), log=None) != \
        "refactored"
    assert len(calls) == 2
    assert DesignStore.open(path, TARGETS).meta["model"] == "refactored"
    pd.testing.assert_frame_equal(DesignStore.open(path, TARGETS).frame(), before)
    assert restamp(path, 2, targets=TARGETS, simulate=fake_simulator(calls), log=None) == \
        "refactored" and len(calls) == 2  # nothing to do
    more = []
    df = _run(path, 6, simulate=fake_simulator(more))  # resumes under the new stamp
    assert len(more) == 2 and len(df) == 6
