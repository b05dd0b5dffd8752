"""Leave-one-trial-out never uses the held-out trial's targets; coverage counts honestly."""

import numpy as np
import pandas as pd
from calib_helpers import store_frame, toy_targets

from cartsim.calibration.loto import coverage, format_loto, leave_one_trial_out

T = toy_targets()  # trials A (2 targets), B (2), C (1)


GOOD = [0.9, 100.0, 0.5, 0.5, 0.2]


def _store():
    # point 0 holds the start values (a previous calibration's best: perfect everywhere);
    # point 1 fits trial A perfectly and B, C badly; point 2 fits B and C, misses A badly
    bad = [0.05, 5.0, 0.99, 0.05, 0.9]
    p1 = GOOD[:2] + bad[2:]
    p2 = bad[:2] + GOOD[2:]
    return store_frame(T, [GOOD, p1, p2])


def test_held_out_trial_is_predicted_by_the_point_the_others_choose():
    rows = leave_one_trial_out(_store(), T)
    assert {r["point_in"] for r in rows} == {1}  # with A counted, point 1 wins: a leak shows
    a = [r for r in rows if r["trial"] == "A"]
    # without A, B and C choose point 2, whatever A would have said (a leak would pick 1)
    assert {r["point_out"] for r in a} == {2}
    assert all(abs(r["z_out"]) > 3 for r in a)
    for trial in ("B", "C"):
        assert {r["point_out"] for r in rows if r["trial"] == trial} == {1}


def test_the_start_point_is_never_a_candidate():
    """Point 0 (the start values, tuned to every trial by the previous calibration) is left
    out like the refinement steps, though it fits every trial perfectly."""
    rows = leave_one_trial_out(_store(), T)
    assert 0 not in {r["point_in"] for r in rows} | {r["point_out"] for r in rows}
    cover = coverage(_store(), T)
    assert all(c["members"] == 2 for c in cover)


def test_in_sample_point_is_the_best_under_all_targets():
    rows = leave_one_trial_out(_store(), T)
    assert len({r["point_in"] for r in rows}) == 1
    assert len(rows) == len(T)


def test_refinement_rows_are_not_used_out_of_sample():
    df = _store()
    extra = df.iloc[[0]].copy()
    extra["id"], extra["source"] = 3, "refine:1"
    extra[[t.key for t in T]] = [GOOD]  # perfect everywhere
    rows = leave_one_trial_out(pd.concat([df, extra], ignore_index=True), T)
    assert 3 not in {r["point_out"] for r in rows}


def test_coverage_counts_observed_figures_inside_the_intervals():
    rng = np.random.default_rng(0)
    obs = np.array([t.observed for t in T])
    vals = obs * np.exp(rng.normal(0, 0.02, (40, len(T))))
    vals[:, [0, 2, 3, 4]] = np.clip(vals[:, [0, 2, 3, 4]], 0.01, 0.99)
    cover = coverage(store_frame(T, vals), T)
    assert all(c["in_predictive"] for c in cover)
    assert all(c["members"] > 0 for c in cover)
    far = coverage(store_frame(T, np.tile([0.1, 5000.0, 0.99, 0.95, 0.9], (10, 1))), T)
    assert not any(c["in_model"] for c in far)


def test_refinement_without_the_held_out_trial_never_simulates_it_for_the_objective():
    from cartsim.calibration.design import Space
    from cartsim.calibration.loto import refine_out_of_sample

    calls = []

    def simulate_for(ts):
        def sim(overrides):
            calls.append({t.trial for t in ts})
            return {t.key: (t.observed, 1000) for t in ts}, "ok"
        return sim

    df = _store()
    space = Space(("a", "b"), (1.0, 1.0), (0.1, 0.1), (10.0, 10.0))
    rows = refine_out_of_sample(df, space, leave_one_trial_out(df, T), maxiter=3, targets=T,
                                simulate_for=simulate_for)
    # per held-out trial: 3 objective calls on the other trials, then 1 prediction of it
    assert calls == [{"B", "C"}] * 3 + [{"A"}] + [{"A", "C"}] * 3 + [{"B"}] \
        + [{"A", "B"}] * 3 + [{"C"}]
    assert all(abs(r["z_refined"]) < 0.5 for r in rows)
    assert "refined" in format_loto(rows)
