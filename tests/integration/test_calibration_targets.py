"""Every published figure of ``science/targets.md`` can be computed from its virtual trial.

Each target of ``cartsim.calibration.TARGETS`` is scored on its matched virtual trial
(``conf/experiment/trial_*.yaml``: product, regimen, dose and disease of the trial),
simulated at 10x the enrolled size. This test checks only what holds whatever the
parameter values: every figure is computed (finite), scored (finite log-likelihood and z)
and reported. How close the figures must be (|z| thresholds) is decided once the model is
recalibrated (``experiments/calibrate.py``, issue 13).
"""

import math

import pytest

from cartsim.calibration import TARGETS, evaluate, format_rows, total_loglik


@pytest.fixture(scope="module")
def rows():
    return evaluate(replicates=10)


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
