"""The target list: every figure has a statistic, an experiment config and a valid likelihood."""

from pathlib import Path

import pytest

from cartsim.calibration import STATISTICS, TARGETS, Target, trials

CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment"


def test_target_keys_are_unique():
    keys = [t.key for t in TARGETS]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("t", TARGETS, ids=[t.key for t in TARGETS])
def test_target_has_a_statistic_an_experiment_and_a_source(t):
    assert t.statistic in STATISTICS
    assert (CONF / f"{t.experiment}.yaml").is_file()
    assert t.source and t.n > 0


def test_every_trial_of_targets_md_is_there():
    assert set(trials()) == {"trial_nct05290155", "trial_pan2021", "trial_lu2022",
                             "trial_cd7_aml", "trial_hu2024", "trial_gc027", "trial_p1236",
                             "trial_ccr2023"}


def test_the_gc027_sub_cohort_belongs_to_the_gc027_trial():
    sub = [t for t in TARGETS if t.experiment == "trial_gc027_first5"]
    assert sub and all(t.trial == "trial_gc027" for t in sub)


@pytest.mark.parametrize("kwargs", [
    {"kind": "poisson"},
    {"kind": "binomial", "k": 11},
    {"kind": "lognormal", "lo": 5.0, "hi": 2.0},
])
def test_invalid_target_is_an_error(kwargs):
    base = {"name": "x", "trial": "T", "experiment": "e", "statistic": "rate_crs_any",
            "kind": "binomial", "observed": 0.5, "n": 10, "source": "toy", "k": 5}
    with pytest.raises(ValueError, match="Target 'x'"):
        Target(**{**base, **kwargs})
