"""The ensemble filter (history matching), its file and its provenance."""

import numpy as np
import pytest
from calib_helpers import store_frame, toy_targets

from cartsim.calibration.design import Space
from cartsim.calibration.ensemble import (
    ensemble,
    implausibility,
    plausible,
    provenance,
    read_ensemble,
    write_best,
    write_ensemble,
)
from cartsim.calibration.likelihood import zscore

T = toy_targets()
SPACE = Space(("a", "b"), (1.0, 1.0), (0.1, 0.1), (10.0, 10.0))
CENTRE = [0.9, 100.0, 0.5, 0.5, 0.2]


def test_implausibility_is_the_largest_absolute_z():
    df = store_frame(T, [CENTRE, [0.3, 100.0, 0.5, 0.5, 0.2]])
    imp = implausibility(df, T)
    assert imp[1] == pytest.approx(abs(zscore(T[0], 0.3, 1000)))
    assert imp[0] < 1


def test_points_beyond_the_cut_are_ruled_out():
    df = store_frame(T, [CENTRE, [0.3, 100.0, 0.5, 0.5, 0.2], [0.85, 130.0, 0.45, 0.5, 0.25]])
    keep, met = plausible(df, T, cut=3.0, fallback=2)
    assert met and keep.tolist() == [True, False, True]


def test_too_few_plausible_points_are_topped_up_to_the_minimum():
    """One survivor would claim no model uncertainty: the least implausible others join."""
    df = store_frame(T, [CENTRE, [0.3, 100.0, 0.5, 0.5, 0.2], [0.2, 100.0, 0.5, 0.5, 0.2],
                         [0.9, np.nan, 0.5, 0.5, 0.2], [0.1, 100.0, 0.5, 0.5, 0.2]])
    imp = implausibility(df, T)
    assert imp[0] < 3.0 < imp[1] < imp[2] < imp[4] < np.inf
    keep, met = plausible(df, T, cut=3.0, fallback=3)
    assert met and keep.tolist() == [True, True, True, False, False]
    keep, _ = plausible(df, T, cut=3.0, fallback=10)  # never a point whose figures failed
    assert keep.tolist() == [True, True, True, False, True]


def test_a_figure_that_failed_rules_a_point_out():
    df = store_frame(T, [CENTRE, [0.9, np.nan, 0.5, 0.5, 0.2]])
    assert plausible(df, T)[0].tolist() == [True, False]


def test_fallback_keeps_the_least_implausible_and_says_so():
    df = store_frame(T, [[0.1, 100.0, 0.5, 0.5, 0.2], [0.3, 100.0, 0.5, 0.5, 0.2],
                         [0.01, 100.0, 0.5, 0.5, 0.2]])
    keep, met = plausible(df, T, cut=1.0, fallback=2)
    assert not met and keep.tolist() == [True, True, False]


def test_ensemble_weights_and_file_round_trip(tmp_path):
    df = store_frame(T, [CENTRE, [0.85, 130.0, 0.45, 0.5, 0.25]])
    members = ensemble(df, SPACE, T)
    assert members["weight"].sum() == pytest.approx(1.0)
    assert members["loglik"].is_monotonic_decreasing
    prov = provenance({"free": SPACE.to_dict()}, T, design_points=2)
    path = write_ensemble(members, tmp_path / "ensemble.csv", prov)
    back, meta = read_ensemble(path)
    np.testing.assert_allclose(back[["a", "b", "weight"]], members[["a", "b", "weight"]])
    assert meta["git_commit"] and meta["created"] and len(meta["targets"]) == len(T)
    assert meta["cut_met"] is True


def test_best_point_file_carries_overrides_and_provenance(tmp_path):
    import yaml

    path = write_best(SPACE, [2.0, 0.5], tmp_path / "best.yaml", provenance({}, T))
    doc = yaml.safe_load(path.read_text())
    assert doc["overrides"] == {"a": 2.0, "b": 0.5}
    assert "git_commit" in doc["provenance"]


def test_ensemble_keeps_design_points_and_only_the_best_refined_point():
    import pandas as pd

    near = [0.85, 130.0, 0.45, 0.5, 0.25]
    df = store_frame(T, [CENTRE, near, CENTRE, [0.8, 90.0, 0.5, 0.5, 0.2]])
    df.loc[2:, "source"] = ["refine:0", "refine:0"]
    members = ensemble(df, SPACE, T)
    assert sorted(members["id"]) == [0, 1, 2]
    assert isinstance(members, pd.DataFrame)
