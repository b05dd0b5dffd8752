"""Options: validation messages name the field; the YAML defaults compose under Hydra."""

from __future__ import annotations

import dataclasses

import pytest

from cartsim.scenario import ScenarioError
from cartsim.stochastic import StochasticOptions


@pytest.mark.parametrize("field,value", [
    ("replicates", 0), ("replicates", 2.5), ("method", "gillespie"), ("epsilon", 0.0),
    ("epsilon", 0.9), ("exact_threshold", -1.0), ("langevin_threshold", 10.0),
    ("dt_max", 0.0), ("continuous_rtol", 2.0), ("max_steps", 0), ("seed", -3),
    ("report_days", []), ("relapse_blast_pct", 0.0), ("epsilon", float("nan")),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ScenarioError, match=rf"stochastic\.{field}"):
        StochasticOptions(**{field: value})


def test_threshold_follows_method():
    assert StochasticOptions(method="exact").threshold() == float("inf")
    assert StochasticOptions(method="tau").threshold() == 0.0
    assert StochasticOptions(exact_threshold=50.0).threshold() == 50.0


def test_yaml_defaults_equal_dataclass_defaults():
    from cartsim.config import load_run_config

    rc = load_run_config([])
    assert dataclasses.asdict(rc.stochastic) == dataclasses.asdict(StochasticOptions())


def test_overrides_are_validated_when_composed():
    from cartsim.config import load_run_config

    rc = load_run_config(["engine=agent", "stochastic.replicates=7",
                          "stochastic.agent.n_clones=12"])
    assert rc.stochastic.replicates == 7 and rc.stochastic.agent.n_clones == 12
    with pytest.raises(ScenarioError, match="stochastic.method"):
        load_run_config(["stochastic.method=gillespie"])
    with pytest.raises(ScenarioError):
        load_run_config(["stochastic.no_such_key=1"])


def test_engine_rejects_other_models_and_engines():
    from cartsim.scenario import ModelConfig, Scenario
    from cartsim.stochastic.engine import simulate_stochastic

    with pytest.raises(ValueError, match="engine="):
        simulate_stochastic(Scenario(), engine="ode")
    with pytest.raises(ValueError, match="model.name"):
        simulate_stochastic(Scenario(model=ModelConfig(name="stein2019")))
