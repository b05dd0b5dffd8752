"""Every published figure of ``science/targets.md`` can be computed from its virtual trial.

Each target of ``cartsim.calibration.TARGETS`` is scored on its matched virtual trial
(``conf/experiment/trial_*.yaml``: product, regimen, dose and disease of the trial),
simulated at 8x the enrolled size (the calibration's setting): every figure is computed
(finite), scored (finite log-likelihood and z) and reported; and the shipped (calibrated)
defaults reproduce the published figures at the centre of the evidence, with the known
structural miss named (experiments/calibration_results/, README "Calibration, in sample and
out of sample").
"""

import math

import pytest

from cartsim.calibration import TARGETS, evaluate, format_rows, total_loglik

KNOWN_MISSES = {"trial_gc027_first5/rate_crs_g3"}
"""Figures beyond |z| = 3 at every point of the calibration design (a mechanism gap); left
out of the objective (experiments/calibration.yaml: exclude_from_fit)."""


@pytest.fixture(scope="module")
def rows():
    return evaluate(replicates=8)


@pytest.mark.parametrize("i", range(len(TARGETS)), ids=[t.key for t in TARGETS])
def test_target_computes_a_finite_figure(rows, i):
    r = rows[i]
    assert math.isfinite(r["simulated"]), format_rows([r])
    assert math.isfinite(r["loglik"]) and math.isfinite(r["z"]), format_rows([r])


def test_every_experiment_of_the_targets_runs(rows):
    assert {r["experiment"] for r in rows} == {t.experiment for t in TARGETS}


def test_the_table_reports_every_target_and_the_objective(rows):
    text = format_rows(rows)
    assert len(text.splitlines()) == len(TARGETS) + 2
    assert f"{total_loglik(rows):.2f}" in text


def test_shipped_defaults_sit_at_the_centre_of_the_published_figures(rows):
    """At the calibration's own setting (8x each trial, experiments/calibration.yaml): at
    most one figure in ten outside its observed 95% interval, at most one in twenty beyond
    |z| = 2 besides the known structural miss, none beyond |z| = 3 except it, and the
    response, severe-CRS and peak figures of the large trials inside their intervals. (At
    16x, with less Monte-Carlo noise, 47/52 are inside and 4 besides the miss have
    |z| > 2: README, "Calibration".)"""
    text = format_rows(rows)
    outside = [r for r in rows if not r["inside"]]
    assert len(outside) <= len(rows) // 10 + 1, text
    beyond2 = {r["key"] for r in rows if abs(r["z"]) > 2} - KNOWN_MISSES
    assert len(beyond2) <= len(rows) // 20, text
    beyond3 = {r["key"] for r in rows if abs(r["z"]) > 3}
    assert beyond3 <= KNOWN_MISSES, text
    must = {"trial_nct05290155/median_cmax_qpcr", "trial_nct05290155/rate_response_d28",
            "trial_nct05290155/rate_crs_g3", "trial_pan2021/rate_response_d28",
            "trial_pan2021/rate_crs_g3", "trial_lu2022/rate_crs_g3",
            "trial_cd7_aml/rate_response_d28", "trial_cd7_aml/share_cd7neg_relapse",
            "trial_pan2021/median_relapse_month", "trial_hu2024/rate_neutropenia_g4",
            "trial_gc027/rate_car_undetectable_d28"}
    by_key = {r["key"]: r for r in rows}
    assert must <= set(by_key), sorted(must - set(by_key))
    assert all(by_key[k]["inside"] for k in must), text
