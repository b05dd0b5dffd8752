"""Every trial experiment of the targets composes and runs on a tiny cohort, and every
statistic of its targets can be read off the result."""

import math

import pytest

from cartsim.calibration import TARGETS, run_experiment, statistic
from cartsim.config import load_run_config

EXPERIMENTS = sorted({t.experiment for t in TARGETS})


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_trial_experiment_composes_with_a_cohort_and_a_trial_task(experiment):
    cfg = load_run_config([f"+experiment={experiment}"])
    assert cfg.task == "trial"
    assert cfg.population.n == max(t.n for t in TARGETS if t.experiment == experiment)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_trial_experiment_runs_on_a_tiny_cohort(experiment):
    ep = run_experiment(experiment, n=3)
    assert ep.sizes["patient"] == 3
    for t in (t for t in TARGETS if t.experiment == experiment):
        value, m = statistic(ep, t.statistic, t.day)
        assert math.isnan(value) or m > 0


def test_shipped_value_reads_parameter_sets_and_configs():
    from cartsim.calibration.run import shipped_value
    from cartsim.models import get_model

    assert shipped_value("+model.params.rho_max") == get_model("cd7").parameters["rho_max"].value
    assert shipped_value("population.n") == load_run_config([]).population.n
    assert shipped_value("population.n", ["+experiment=trial_cd7_aml"]) == 13
    with pytest.raises(KeyError, match="neither"):
        shipped_value("+model.params.no_such_parameter_x")


def test_the_calibration_config_resolves_against_the_shipped_defaults():
    from pathlib import Path

    import yaml

    from cartsim.calibration import Space
    from cartsim.calibration.run import shipped_value

    path = Path(__file__).resolve().parents[2] / "experiments" / "calibration.yaml"
    space = Space.from_config(yaml.safe_load(path.read_text())["free"], resolve=shipped_value)
    assert len(space.keys) > 0


def test_free_values_leave_what_an_experiment_sets_itself_and_may_target_one():
    from cartsim.calibration.run import overrides_for, shipped_value

    free = ["population.em_probability=0.5",             # trial_nct05290155 sets 1.0
            "endpoints.death.aplasia_hazard_per_day=0.001",
            "trial_pan2021:regimen.car_dose_per_kg=2e6",
            "trial_nct05290155:population.em_probability=0.9"]
    assert overrides_for("trial_nct05290155", ["seed=3"], free) == [
        "seed=3", "endpoints.death.aplasia_hazard_per_day=0.001", "population.em_probability=0.9"]
    assert shipped_value("trial_cd7_aml:population.n") == 13
    cfg = load_run_config(["+experiment=trial_nct05290155",
                           *overrides_for("trial_nct05290155", (), free)])
    assert cfg.population.em_probability == 0.9
