"""Virtual trials: cohort -> chunked batch simulation -> endpoints -> report files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cartsim
from cartsim import OutputOptions, Scenario
from cartsim.population import PopulationSpec
from cartsim.trial import TrialOptions, run_trial

BASE = Scenario(output=OutputOptions(t_end=120.0))
DATA = Path(__file__).parents[1] / "population" / "data"


@pytest.fixture(scope="module")
def trial():
    return run_trial(BASE, PopulationSpec(n=12), seed=11,
                     options=TrialOptions(save_trajectories=True))


def test_endpoints_carry_the_cohort_and_match_a_direct_computation(trial):
    ep = trial.endpoints
    assert ep.sizes["patient"] == 12
    for name in ("weight_kg", "marrow_blast_pct", "rho_max", "cmax_qpcr", "crs_grade", "os_day"):
        assert name in ep and "units" in ep[name].attrs, name
    # the trajectories give the same endpoints when recomputed in one batch
    from cartsim.trial import stream_seeds
    direct = cartsim.endpoints(trial.trajectories, seed=stream_seeds(11)[1])
    for name in ("cmax_qpcr", "tmax_qpcr", "response_day", "crs_grade", "death_day"):
        xr.testing.assert_allclose(ep[name].reset_coords(drop=True),
                                   direct[name].reset_coords(drop=True))
    # covariates were applied: the simulated baseline marrow equals the drawn one
    np.testing.assert_allclose(trial.trajectories.marrow_blast_pct.isel(time=0),
                               ep.marrow_blast_pct, rtol=1e-6)


def test_result_does_not_depend_on_chunk_size(trial):
    other = run_trial(BASE, PopulationSpec(n=12), seed=11, options=TrialOptions(chunk_size=5))
    for name in ("cmax_qpcr", "crs_grade", "relapse_day", "death_day", "pfs_day"):
        xr.testing.assert_allclose(trial.endpoints[name], other.endpoints[name])


def test_same_seed_same_trial_other_seed_other_cohort(trial):
    again = run_trial(BASE, PopulationSpec(n=12), seed=11)
    xr.testing.assert_identical(trial.endpoints.drop_attrs(), again.endpoints.drop_attrs())
    other = run_trial(BASE, PopulationSpec(n=12), seed=12)
    assert not np.allclose(other.endpoints.weight_kg, trial.endpoints.weight_kg)


def test_write_produces_every_file(trial, tmp_path):
    from cartsim.reporting import write_trial

    paths = write_trial(trial, tmp_path)
    assert set(paths) >= {"endpoints", "csv", "markdown", "km_png", "trajectories"}
    for p in paths.values():
        assert Path(p).stat().st_size > 0
    back = xr.load_dataset(paths["endpoints"], engine="h5netcdf")
    np.testing.assert_allclose(back.cmax_qpcr, trial.endpoints.cmax_qpcr)
    assert "surrogate" in Path(paths["markdown"]).read_text().lower()


def test_cohort_from_a_table(tmp_path):
    res = run_trial(BASE, options=TrialOptions(cohort_file=str(DATA / "cohort_units.csv")))
    assert "patient_id" in res.endpoints.coords
    assert res.endpoints.evaluable.values.all()
    np.testing.assert_allclose(res.endpoints.weight_kg.values[0], 154 * 0.45359237)


def test_bad_trial_options():
    with pytest.raises(cartsim.ScenarioError, match="trial.chunk_size"):
        TrialOptions(chunk_size=0)


def test_cli_trial_writes_the_report(tmp_path):
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "-m", "cartsim.cli", "task=trial", "population.n=6",
                           "output.t_end=60", f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    for name in ("trial_endpoints.nc", "trial_summary.csv", "trial_summary.md", "trial_km.png"):
        assert (run_dir / name).is_file(), name
        assert f"{(run_dir / name).resolve()}" in proc.stdout
    assert "CRS" in proc.stdout


def test_endpoints_of_simulate_and_run_trial_draw_the_same_deaths():
    """The two front doors give a patient the same death: ``cartsim.endpoints`` of a
    ``cartsim.simulate`` result draws from the death stream of the Dataset's run seed, as
    ``run_trial`` does (``cartsim.randomness``), not from the run seed itself."""
    import dataclasses

    from cartsim.clinical import DeathModel, EndpointSettings

    settings = EndpointSettings(death=DeathModel(neutropenia_hazard_per_day=0.05))
    res = run_trial(BASE, PopulationSpec(n=12), settings, seed=11)
    trial_deaths = res.endpoints["death_day"].values
    n_died = int(np.isfinite(trial_deaths).sum())
    assert 0 < n_died < 12, n_died  # the draws decide who dies
    ds = cartsim.simulate([dataclasses.replace(s, seed=11) for s in res.cohort.scenarios])
    direct = cartsim.endpoints(ds, settings)
    for name in ("death_day", "os_day", "pfs_day", "death_cause"):
        np.testing.assert_array_equal(direct[name].values, res.endpoints[name].values, name)
    from cartsim.randomness import death_seed

    assert direct.attrs["death_seed"] == death_seed(11)
    # the trap this closes: the run seed used as the death seed gives other deaths
    trap = cartsim.endpoints(ds, settings, seed=11)["death_day"].values
    assert not np.array_equal(trap, trial_deaths, equal_nan=True)
