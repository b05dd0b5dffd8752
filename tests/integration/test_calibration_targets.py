"""The default model and population reproduce the published CD7 CAR-T figures.

Every target of ``science/targets.md`` that is a cohort figure (``cartsim.calibration.TARGETS``)
is checked on its matched virtual trial (``conf/experiment/trial_*.yaml``: product, regimen,
dose and disease mix of the trial), simulated at 10x the enrolled size so that the model's
expected figure, not Monte-Carlo noise, is compared with the trial's 95% interval.
"""

import pytest

from cartsim.calibration import TARGETS, evaluate, format_rows


@pytest.fixture(scope="module")
def rows():
    return evaluate(replicates=10)


@pytest.mark.parametrize("i", range(len(TARGETS)),
                         ids=[f"{t.experiment}:{t.statistic}" for t in TARGETS])
def test_target_inside_its_interval(rows, i):
    r = rows[i]
    assert r["inside"], format_rows([r])


def test_every_experiment_of_the_targets_runs(rows):
    assert {r["experiment"] for r in rows} == {t.experiment for t in TARGETS}


def test_loss_is_small_inside_and_grows_outside():
    from cartsim.calibration import loss

    centre = loss([{"lo": 0.2, "hi": 0.6, "simulated": 0.2 * 3 ** 0.5}])  # log-scale centre
    assert centre == pytest.approx(0.0, abs=1e-12)
    edge = loss([{"lo": 0.2, "hi": 0.6, "simulated": 0.59}])
    out1 = loss([{"lo": 0.2, "hi": 0.6, "simulated": 0.7}])
    out2 = loss([{"lo": 0.2, "hi": 0.6, "simulated": 0.9}])
    assert 0 < edge < 0.1 < out1 < out2
    assert loss([{"lo": 0.2, "hi": 0.6, "simulated": float("nan")}]) >= 10.0
