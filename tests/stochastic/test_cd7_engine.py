"""The stochastic engine on the cd7 model: agreement with the ODE, reproducibility, events."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import xarray as xr

from cartsim.scenario import OutputOptions, Regimen, Scenario
from cartsim.simulation import simulate
from cartsim.stochastic import StochasticOptions, outcome_probabilities
from cartsim.stochastic.engine import simulate_stochastic

SHORT = OutputOptions(t_end=60.0)


@pytest.fixture(scope="module")
def ode_and_sde():
    sc = Scenario(output=SHORT)
    return sc, simulate(sc), simulate_stochastic(sc, replicates=12, seed=4)


@pytest.mark.parametrize("var,days", [
    ("car_total", [3, 7, 14, 28, 60]),
    ("car_mem", [7, 14, 28, 60]),
    ("t_cd7neg", [-3, 0, 7, 28, 60]),
    ("t_cd7pos", [-3, 0, 7, 14]),
    ("blast_cd7pos", [-3, 0, 7, 14]),
    ("blast_cd7neg", [-3, 0, 14, 60]),
    ("il6", [3, 7, 14]),
    ("ifng", [3, 7, 14]),
    ("homeostatic_cytokine", [-3, 0, 7]),
    ("flu_auc", [-3, 0]),
    ("car_copies_per_ug", [7, 14, 28]),
])
def test_large_population_mean_matches_ode(ode_and_sde, var, days):
    """Large populations: the stochastic mean is the ODE solution (Kurtz 1970 J Appl Prob
    7:49) up to Monte-Carlo error and the engine's discretisation (1%)."""
    _, ode, sde = ode_and_sde
    s = sde[var].isel(patient=0).sel(time=days)
    mean = s.mean("replicate").values
    se = s.std("replicate").values / np.sqrt(s.sizes["replicate"])
    ref = ode[var].isel(patient=0).sel(time=days).values
    assert np.all(np.abs(mean - ref) <= 4 * se + 0.01 * np.abs(ref)), (mean, ref, se)


def test_counts_are_whole_and_non_negative(ode_and_sde):
    _, _, sde = ode_and_sde
    for v in ("car_eff", "car_mem", "car_exh", "blast_cd7pos", "blast_cd7neg", "em_mass",
              "t_cd7pos", "t_cd7neg"):
        x = sde[v].values
        assert np.all(x >= 0) and np.all(x == np.round(x)), v
    assert (sde["status"].values == 0).all()


def test_dataset_describes_itself(ode_and_sde):
    _, ode, sde = ode_and_sde
    assert sde["car_total"].dims == ("patient", "replicate", "time")
    assert set(ode.data_vars) - {"n_rhs", "n_jac"} <= set(sde.data_vars)
    for name, var in sde.variables.items():
        if name in ("status_name", "patient", "replicate"):
            continue
        assert "units" in var.attrs and "long_name" in var.attrs, name
    for key in ("seed", "cartsim_version", "config", "stochastic_options", "engine"):
        assert key in sde.attrs


@pytest.mark.parametrize("engine", ["stochastic", "agent"])
def test_results_do_not_depend_on_thread_count(engine):
    sc = Scenario(output=OutputOptions(t_end=20.0))
    opts = StochasticOptions(agent={"n_clones": 4, "clone_cd7": True, "exhaustion": True})
    before = numba.get_num_threads()
    try:
        runs = []
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n)
            runs.append(simulate_stochastic(sc, engine=engine, replicates=4, seed=7,
                                            options=opts))
    finally:
        numba.set_num_threads(before)
    xr.testing.assert_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0]["car_total"].values[0, 0], runs[0]["car_total"].values[0, 1])


def test_chunked_cohort_uses_the_same_streams():
    a = Scenario(output=OutputOptions(t_end=10.0))
    b = Scenario(output=OutputOptions(t_end=10.0), regimen=Regimen(car_dose_per_kg=3e5))
    both = simulate_stochastic([a, b], seed=3)
    second = simulate_stochastic([b], seed=3, stream_offset=1)
    assert both["car_total"].dims == ("patient", "time")
    np.testing.assert_array_equal(both["car_total"].values[1], second["car_total"].values[0])


def test_endpoints_accept_a_stochastic_cohort():
    """``endpoints()`` runs unchanged; at full dose (large populations) it reads the same
    clinical course off one realisation as off the ODE."""
    from cartsim.clinical import endpoints

    scs = [Scenario(output=OutputOptions(t_end=90.0)),
           Scenario(output=OutputOptions(t_end=90.0), regimen=Regimen(car_dose_per_kg=2e5))]
    ep = endpoints(simulate_stochastic(scs, seed=1))
    ref = endpoints(simulate(scs))
    assert ep.sizes["patient"] == 2 and (ep["status"].values == 0).all()
    for v in ("tmax_qpcr", "response_d28", "best_response", "crs_grade", "icans_grade",
              "mrd_flow_neg_d28", "cd7_clearance_day", "il6_peak_day", "response_day"):
        np.testing.assert_array_equal(ep[v].values, ref[v].values, err_msg=v)
    for v in ("cmax_qpcr", "auc28_qpcr", "il6_peak", "ifng_peak", "flu_auc"):
        np.testing.assert_allclose(ep[v].values, ref[v].values, rtol=0.01, err_msg=v)


def test_hsct_is_decided_per_realisation():
    always = Scenario(output=OutputOptions(t_end=62.0),
                      regimen=Regimen(hsct_day=60.0, hsct_criterion="all"))
    ds = simulate_stochastic(always, replicates=3, seed=2)
    assert (ds["hsct_day"].values == 60.0).all()
    ode = simulate(always)  # the ODE transplants this patient too: same conditioning + graft
    assert float(ode["hsct_day"].values[0]) == 60.0
    for v in ("t_cd7neg", "t_cd7pos", "car_total"):
        got = ds[v].isel(patient=0).sel(time=[59.0, 60.0, 62.0]).mean("replicate").values
        ref = ode[v].isel(patient=0).sel(time=[59.0, 60.0, 62.0]).values
        # 2% of large counts; a few hundred cells differ by Poisson noise (mean of 3 runs)
        tol = np.maximum(0.02 * ref, 4.0 * np.sqrt(ref / 3.0)) + 1.0  # < 1 cell: 0
        assert (np.abs(got - ref) <= tol).all(), (v, got, ref)
    never = Scenario(output=OutputOptions(t_end=4.0),
                     regimen=Regimen(hsct_day=2.0, hsct_criterion="cr"))
    ds = simulate_stochastic(never, replicates=3, seed=2)  # 40% blasts on day 2: no CR
    assert np.isnan(ds["hsct_day"].values).all()


def test_rule_fires_near_the_ode_crossing():
    sc = Scenario(output=OutputOptions(t_end=20.0), regimen=Regimen(toci_il6_threshold=100.0))
    ode = simulate(sc)
    ds = simulate_stochastic(sc, replicates=4, seed=9)
    day = ds["tocilizumab_rule_day"].values
    ref = float(ode["tocilizumab_rule_day"].values[0])
    assert np.isfinite(ref)
    assert np.all(np.abs(day - ref) < 0.3), (day, ref)  # within one continuous step
    assert (ds["toci_conc"].sel(time=10).values > 0).all()


def test_outcome_probabilities_with_intervals():
    sc = Scenario(output=OutputOptions(t_end=60.0), regimen=Regimen(car_dose_per_kg=0.05))
    ds = simulate_stochastic(sc, replicates=40, seed=5)
    pr = outcome_probabilities(ds, [7.0, 60.0])
    for key in ("cure", "car_loss", "relapse", "cd7neg_escape"):
        p, lo, hi = (pr[f"p_{key}{s}"].values for s in ("", "_lo", "_hi"))
        assert np.all((lo <= p) & (p <= hi) & (lo >= 0) & (hi <= 1)), key
    loss = np.isfinite(ds["car_loss_day"].values).mean()
    assert pr["p_car_loss"].sel(day=60.0).item() == pytest.approx(loss)
    assert int(pr["n_evaluable"].item()) == 40
    with pytest.raises(ValueError, match="replicate"):
        outcome_probabilities(ds.isel(replicate=0))


def test_cost_does_not_grow_with_cell_numbers():
    """Reaction steps per realisation are set by relative rates, not by the counts."""
    from cartsim.scenario import Patient

    steps = []
    for pct in (1e-4, 60.0):  # ~5e5 vs ~7.5e11 blasts
        sc = Scenario(output=OutputOptions(t_end=60.0), patient=Patient(marrow_blast_pct=pct))
        ds = simulate_stochastic(sc, replicates=2, seed=1)
        steps.append(float(ds["n_steps"].mean()))
    assert steps[1] < 2.0 * steps[0], steps


def test_failure_is_a_status_not_an_exception():
    """Exact SSA of 1e11 cells cannot finish: the step budget stops it as data."""
    sc = Scenario(output=OutputOptions(t_end=5.0))
    ds = simulate_stochastic(sc, replicates=2, seed=1,
                             options=StochasticOptions(method="exact", max_steps=2000))
    assert (ds["status"].values == 1).all()
    assert (ds["status_name"].values == "max_steps").all()
    blasts = ds["blast_cd7pos"].isel(patient=0).values  # states are NaN after the failure
    assert np.isnan(blasts[:, -1]).all() and np.isfinite(blasts[:, 0]).all()
