"""Runs that cannot fit are refused up front, with the estimate and the limit, in
milliseconds (a 10^8-patient trial used to end in a MemoryError after a long wait)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cartsim.budget import (
    BudgetError,
    available_memory,
    check_sweep,
    check_trial,
    sweep_memory,
    trial_memory,
)
from cartsim.population import PopulationSpec
from cartsim.scenario import OutputOptions, Scenario, ScenarioError
from cartsim.sweep import SweepAxis, SweepSpec
from cartsim.trial import TrialOptions, run_trial

TWO_YEARS = Scenario(output=OutputOptions(t_end=730.0))
GB = 1e9


def test_estimates_grow_with_the_cohort_and_the_chunk():
    small = trial_memory(1_000, 736, 1_000)
    assert trial_memory(100_000, 736, 1_000) > small
    assert trial_memory(100_000, 736, 500) < trial_memory(100_000, 736, 1_000)
    # kept trajectories: every patient's whole time course
    assert trial_memory(10_000, 736, 1_000, save_trajectories=True) > \
        trial_memory(10_000, 736, 1_000) + 10_000 * 736 * 8 * 20
    # the measured 100,000-patient two-year trial (benchmarks/trial.py) passes on 4 GB
    assert trial_memory(100_000, 736, 1_000) < 4 * GB
    assert sweep_memory(10**10, 1, 1000, 366) > 1e13


def test_a_trial_of_1e8_patients_is_refused_with_estimate_and_limit():
    t = time.perf_counter()
    with pytest.raises(BudgetError, match=r"^population\.n=100000000 needs ~1\d{3}\.\d GB of "
                                          r"memory, more than the 16\.0 GB available; split "
                                          r"the cohort into several runs"):
        check_trial(TWO_YEARS, PopulationSpec(n=10**8), TrialOptions(), limit=16 * GB)
    check_trial(TWO_YEARS, PopulationSpec(n=100_000), TrialOptions(), limit=16 * GB)
    assert time.perf_counter() - t < 0.5
    assert issubclass(BudgetError, ScenarioError)  # the CLI's one-line error, exit code 2


def test_run_trial_refuses_before_drawing_the_cohort():
    t = time.perf_counter()
    with pytest.raises(BudgetError, match="population.n=100000000 needs"):
        run_trial(TWO_YEARS, PopulationSpec(n=10**8))
    assert time.perf_counter() - t < 2.0  # drawing 10^8 patients would take minutes


def test_kept_trajectories_are_counted_and_named():
    with pytest.raises(BudgetError, match=r"population\.n=20000 with "
                                          r"trial\.save_trajectories=true needs"):
        check_trial(TWO_YEARS, PopulationSpec(n=20_000),
                    TrialOptions(save_trajectories=True), limit=8 * GB)


def test_a_sweep_of_1e10_points_is_refused_from_the_axes_alone():
    axes = [SweepAxis(f"model.params.p{i}", space="logspace", start=1.0, stop=10.0, num=100)
            for i in range(5)]
    t = time.perf_counter()
    with pytest.raises(BudgetError, match=r"sweep\.axes \(100 x 100 x 100 x 100 x 100 = "
                                          r"10000000000 points\) needs ~\d+\.\d GB"):
        check_sweep(Scenario(), SweepSpec(axes=axes))
    sampled = SweepSpec(axes=[SweepAxis("model.params.p0", space="logspace", start=1.0,
                                        stop=10.0)], method="sobol", n_samples=10**10)
    with pytest.raises(BudgetError, match=r"sweep\.n_samples=10000000000 needs"):
        check_sweep(Scenario(), sampled)
    assert time.perf_counter() - t < 0.5
    check_sweep(Scenario(), SweepSpec(axes=axes[:2]))  # 10^4 points fit anywhere


def test_run_sweep_refuses_before_listing_the_points():
    from cartsim.sweep import run_sweep

    spec = SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", space="logspace", start=1e5,
                                     stop=1e7)], method="sobol", n_samples=10**10)
    t = time.perf_counter()
    with pytest.raises(BudgetError, match="sweep.n_samples=10000000000 needs"):
        run_sweep(Scenario(), spec)
    assert time.perf_counter() - t < 2.0


def test_available_memory_is_positive_and_finite_here():
    avail = available_memory()
    assert 0 < avail < 10**15


def test_the_cli_refuses_population_n_1e8_in_one_line(tmp_path):
    cartsim = Path(sys.executable).parent / "cartsim"
    proc = subprocess.run([str(cartsim), "task=trial", "population.n=100000000",
                           f"hydra.run.dir={tmp_path}/run"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("cartsim: error: population.n=100000000 needs ~")
    assert "GB available" in proc.stderr and proc.stderr.count("\n") == 1


def test_run_sensitivity_refuses_a_design_that_cannot_fit():
    """The sensitivity task is checked like a sweep, before its design is drawn (here 2^32
    base samples x 3 runs x 1,000 patients per point); the design size is SALib's."""
    from cartsim.sweep.options import SensitivityOptions
    from cartsim.sweep.sensitivity import design_size, run_sensitivity, sensitivity_design

    opts = SensitivityOptions(parameters=[{"name": "model.params.k_kill", "space": "logspace",
                                           "start": 0.5, "stop": 3.0}],
                              n_base=2**32, population_n=1000)
    t = time.perf_counter()
    with pytest.raises(BudgetError, match="sweep.n_samples=12884901888 with "
                                          "sweep.population_n=1000"):
        run_sensitivity(Scenario(), opts)
    assert time.perf_counter() - t < 5.0
    small = SensitivityOptions(parameters=opts.parameters, n_base=8)
    assert design_size(1, small) == len(sensitivity_design(small.parameters, small))


def test_a_bad_parameter_value_is_a_scenario_error_from_every_door():
    """``ParameterError`` is a ``ScenarioError``: a scenario built by keyword with a value
    outside the bounds stops with the same one-line error class as a config."""
    import cartsim
    from cartsim.scenario import ModelConfig

    with pytest.raises(ScenarioError, match=r"model\.params\.k_kill=1000000000\.0 is not "
                                            r"accepted: expected"):
        cartsim.simulate(Scenario(model=ModelConfig(params={"k_kill": 1e9})))
