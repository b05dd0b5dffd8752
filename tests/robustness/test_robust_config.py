"""A corpus of bad configurations: each is refused when the config is built, before anything
runs, with one line naming the key, the value and what is accepted (README, "Mistakes are
caught before anything runs"); the edge cases that are valid are accepted as documented."""

from __future__ import annotations

import math

import pytest
from robust_helpers import assert_clean_error

from cartsim.config import ConfigError, load_run_config
from cartsim.scenario import (
    ModelConfig,
    OutputOptions,
    Patient,
    Regimen,
    Scenario,
    ScenarioError,
)

# (overrides, needles the message must hold); the first needle names the key
BAD_CONFIGS = {
    # model parameters outside their bounds (cartsim/parameters/ carries the bounds)
    "k_kill 1e9": (["+model.params.k_kill=1e9"], ["model.params.k_kill=", "[0.01, 20.0]"]),
    "rho_max 0": (["+model.params.rho_max=0"], ["model.params.rho_max=0.0", "[0.1, 5.0]"]),
    "negative k_kill": (["+model.params.k_kill=-1"], ["model.params.k_kill=-1.0", "expected"]),
    "nan k_kill": (["+model.params.k_kill=nan"], ["model.params.k_kill=nan", "finite"]),
    "inf rho_max": (["+model.params.rho_max=inf"], ["model.params.rho_max=inf", "finite"]),
    "unknown parameter": (["+model.params.k_kil=1"], ["model.params.k_kil=1.0", "k_kill"]),
    "stein Cmax 0": (["model=stein2019", "+model.params.Cmax=0"],
                     ["model.params.Cmax=0.0", "expected"]),
    "stein cd7 parameter": (["model=stein2019", "+model.params.rho_max=1"],
                            ["model.params.rho_max=1.0", "'stein2019'", "Tmax"]),
    # stein2019 with what only the cd7 model has
    "stein trial": (["model=stein2019", "task=trial"], ["task='trial'", "model=cd7"]),
    "stein sweep": (["model=stein2019", "task=sweep"], ["task='sweep'", "model=cd7"]),
    "stein sensitivity": (["model=stein2019", "task=sensitivity"],
                          ["task='sensitivity'", "model=cd7"]),
    "stein report": (["model=stein2019", "task=report"], ["task='report'", "model=cd7"]),
    "stein stochastic": (["model=stein2019", "engine=stochastic"],
                         ["engine='stochastic'", "engine=ode"]),
    "stein agent": (["model=stein2019", "engine=agent"], ["engine='agent'", "engine=ode"]),
    "stein hsct": (["model=stein2019", "regimen.hsct_day=30"],
                   ["regimen.hsct_day=30.0", "model=cd7"]),
    "stein reinfusion": (["model=stein2019", "regimen.reinfusion_days=[60]"],
                         ["regimen.reinfusion_days=[60.0]", "model=cd7"]),
    # seeds
    "seed -1": (["seed=-1"], ["seed=-1", "0 to 2**64 - 1"]),
    "seed 2**64": ([f"seed={2**64}"], [f"seed={2**64}", "0 to 2**64 - 1"]),
    "seed 2**70": ([f"seed={2**70}"], [f"seed={2**70}", "0 to 2**64 - 1"]),
    # events outside the simulated days
    "toci before start": (["regimen.toci_days=[-100]"],
                          ["regimen.toci_days=[-100.0]", ">= -5", "output.t_start"]),
    "steroid before start": (["regimen.steroid_days=[-6,3]"],
                             ["regimen.steroid_days=[-6.0, 3.0]", ">= -5"]),
    "toci before start, no lymphodepletion": (
        ["regimen.ld_days=[]", "output.t_start=0", "regimen.toci_days=[-1]"],
        ["regimen.toci_days=[-1.0]", ">= 0"]),
    "hsct after end": (["regimen.hsct_day=400"], ["regimen.hsct_day=400.0", "<= 365",
                                                  "output.t_end"]),
    "reinfusion after end": (["regimen.reinfusion_days=[30,400]"],
                             ["regimen.reinfusion_days=[30.0, 400.0]", "<= 365"]),
    "toci after end": (["output.t_end=28", "regimen.toci_days=[30]"],
                       ["regimen.toci_days=[30.0]", "<= 28"]),
    "steroid after output.times": (["output.times=[0,7]", "regimen.steroid_days=[0,14]"],
                                    ["regimen.steroid_days=[0.0, 14.0]", "<= 7",
                                     "output.times[-1]"]),
    # doses of less than one cell
    "dose 1e-30": (["regimen.car_dose_per_kg=1e-30"],
                   ["regimen.car_dose_per_kg=1e-30", "0 (no CAR-T) or at least one CAR+ cell"]),
    "dose 1e-3": (["regimen.car_dose_per_kg=1e-3"],
                  ["regimen.car_dose_per_kg=0.001", "one CAR+ cell", "0.0143 cells/kg"]),
    "split dose fraction below a cell": (
        ["regimen.car_days=[0,7]", "regimen.car_fractions=[1e-12,0.999999999999]"],
        ["regimen.car_fractions[0]=1e-12", "one CAR+ cell"]),
    "reinfusion below a cell": (["regimen.reinfusion_days=[60]",
                                 "regimen.reinfusion_dose_per_kg=1e-9"],
                                ["regimen.reinfusion_dose_per_kg=1e-09", "one CAR+ cell"]),
    # value checks that existed before (kept in the corpus)
    "negative dose": (["regimen.car_dose_per_kg=-1"], ["regimen.car_dose_per_kg=-1.0", ">= 0"]),
    "blasts 120%": (["patient.marrow_blast_pct=120"], ["patient.marrow_blast_pct=120.0"]),
    "engine typo": (["engine=ode2"], ["engine='ode2'", "stochastic"]),
    "no patients": (["population.n=0"], ["population.n=0", "positive integer"]),
    "no output times": (["output.times=[]"], ["output.times=[]", "non-empty"]),
    "no replicates": (["stochastic.replicates=0"], ["stochastic.replicates=0", ">= 1"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_naming_the_key(case):
    overrides, needles = BAD_CONFIGS[case]
    with pytest.raises(ScenarioError) as info:
        load_run_config(overrides)
    assert_clean_error(info.value, *needles)
    assert "is not accepted" in str(info.value)


def test_a_non_integer_seed_is_a_type_error_naming_the_key():
    with pytest.raises(ConfigError, match="seed"):
        load_run_config(["seed=1.5"])
    for seed in (1.5, True, "3"):
        with pytest.raises(ScenarioError, match=r"^seed=.* is not accepted: expected an integer"):
            Scenario(seed=seed)


# The same checks hold for a Scenario built by keyword (no Hydra involved)
@pytest.mark.parametrize(("build", "key"), [
    (lambda: Scenario(regimen=Regimen(toci_days=[-100.0])), "regimen.toci_days"),
    (lambda: Scenario(regimen=Regimen(hsct_day=366.0)), "regimen.hsct_day"),
    (lambda: Scenario(regimen=Regimen(car_dose_per_kg=1e-3)), "regimen.car_dose_per_kg"),
    (lambda: Scenario(regimen=Regimen(car_dose_per_kg=0.01), patient=Patient(weight_kg=50.0)),
     "regimen.car_dose_per_kg"),
    (lambda: Scenario(model=ModelConfig(name="stein2019"), regimen=Regimen(hsct_day=30.0)),
     "regimen.hsct_day"),
    (lambda: Scenario(seed=-1), "seed"),
    (lambda: Scenario(seed=2**64), "seed"),
], ids=["toci-before", "hsct-after", "dose-1e-3", "dose-half-cell", "stein-hsct", "seed-neg",
        "seed-2**64"])
def test_keyword_scenarios_are_checked_alike(build, key):
    with pytest.raises(ScenarioError) as info:
        build()
    assert_clean_error(info.value, f"{key}=")


def test_valid_edge_cases_are_accepted():
    """The limits themselves are valid: the largest seed, one cell, no CAR-T at all, an
    event on the first and on the last simulated day, and an early event once the output
    (and so the simulation) is asked to start that early."""
    assert load_run_config([f"seed={2**64 - 1}"]).seed == 2**64 - 1
    one_cell = Scenario(regimen=Regimen(car_dose_per_kg=1 / 70.0), patient=Patient(weight_kg=70))
    assert math.isclose(one_cell.regimen.car_dose_per_kg * one_cell.patient.weight_kg, 1.0)
    assert load_run_config(["regimen.car_dose_per_kg=0"]).regimen.car_dose_per_kg == 0.0
    edge = Scenario(regimen=Regimen(toci_days=[-5.0], hsct_day=365.0))
    assert (edge.start_day(), edge.end_day()) == (-5.0, 365.0)
    early = load_run_config(["output.t_start=-100", "regimen.toci_days=[-100]"])
    assert early.start_day() == -100.0
    times = Scenario(output=OutputOptions(times=[1.0, 7.0]))
    assert (times.start_day(), times.end_day()) == (-5.0, 7.0)  # lymphodepletion starts it
    # a simulation may stop before the CAR-T infusion (lymphodepletion alone)
    pre = Scenario(output=OutputOptions(t_start=-5.0, t_end=-4.5))
    assert pre.end_day() < pre.regimen.car_days[0]
