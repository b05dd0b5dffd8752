"""Agent (clonal) mode: reduces to the compartment model; clonal outputs make sense."""

from __future__ import annotations

import numpy as np
import pytest

from cartsim.scenario import OutputOptions, Regimen, Scenario
from cartsim.stochastic import StochasticOptions
from cartsim.stochastic.engine import simulate_stochastic

# ~3.5 CAR-T cells infused: whether the product takes hold is itself random
TINY = Scenario(regimen=Regimen(car_dose_per_kg=0.05), output=OutputOptions(t_end=21.0))


def test_agent_mode_reduces_to_the_compartment_model():
    reps = 300
    comp = simulate_stochastic(TINY, replicates=reps, seed=1)
    agent = simulate_stochastic(TINY, replicates=reps, seed=2, engine="agent",
                                options=StochasticOptions(agent={"n_clones": 10}))
    c = [ds["car_total"].isel(patient=0).sel(time=21.0).values for ds in (comp, agent)]
    # establishment probability: two-proportion z-test
    p = [(x > 0).mean() for x in c]
    pooled = (p[0] + p[1]) / 2
    se = np.sqrt(max(pooled * (1 - pooled), 1e-4) * 2 / reps)
    assert abs(p[0] - p[1]) < 4 * se, p
    # size of the expanded product (log10 cells): Welch t
    lg = [np.log10(1.0 + x) for x in c]
    se = np.sqrt(lg[0].var() / reps + lg[1].var() / reps)
    assert abs(lg[0].mean() - lg[1].mean()) < 4 * se, (lg[0].mean(), lg[1].mean())
    # the clones partition the CAR-T compartment exactly
    last = agent.isel(time=-1)
    np.testing.assert_array_equal(last["clone_size"].sum("clone").values,
                                  last["car_total"].values)


def test_clonal_kinetics_outputs():
    opts = StochasticOptions(agent={"n_clones": 30, "clone_cd7": True, "exhaustion": True,
                                    "clone_sizes_over_time": True})
    sc = Scenario(output=OutputOptions(t_end=30.0))
    ds = simulate_stochastic(sc, engine="agent", replicates=3, seed=4, options=opts)
    alive = ds["clones_alive"].sel(time=slice(0, None)).values
    inv_simpson = ds["clone_inverse_simpson"].sel(time=slice(0, None)).values
    shannon = ds["clone_shannon"].sel(time=slice(0, None)).values
    assert np.all(alive <= 30) and np.all(alive >= 1)
    assert np.all(inv_simpson <= alive + 1e-9) and np.all(inv_simpson >= 1 - 1e-9)
    assert np.all(shannon <= np.log(alive) + 1e-9)
    exh = ds["clone_exhaustion"].values
    cd7 = ds["clone_residual_cd7"].values
    assert (exh > 0).all() and np.ptp(exh, axis=-1).min() > 0  # clones differ
    assert np.ptp(cd7, axis=-1).min() > 0 and (cd7 <= 1).all()
    assert (ds["clone_divisions"].values > 0).all()
    sizes = ds["clone_size_t"]
    assert sizes.dims == ("patient", "replicate", "time", "clone")
    np.testing.assert_array_equal(sizes.sum("clone").values, ds["car_total"].values)
    np.testing.assert_array_equal(sizes.isel(time=-1).values, ds["clone_size"].values)
    # before infusion there are no clones
    assert (ds["clones_alive"].sel(time=-1.0).values == 0).all()


def test_exhaustion_slows_expansion():
    sc = Scenario(output=OutputOptions(t_end=21.0))
    base = simulate_stochastic(sc, engine="agent", replicates=2, seed=1,
                               options=StochasticOptions(agent={"n_clones": 5}))
    tired = simulate_stochastic(sc, engine="agent", replicates=2, seed=1, options=StochasticOptions(
        agent={"n_clones": 5, "exhaustion": True, "exhaustion_gain": 1.0}))
    peak = [ds["car_total"].max("time").values.mean() for ds in (base, tired)]
    assert peak[1] < 0.8 * peak[0], peak


@pytest.mark.parametrize("bad", [{"n_clones": 0}, {"cd7_log_sd": -1.0}, {"exhaustion": "yes"}])
def test_agent_options_validation(bad):
    from cartsim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="stochastic.agent."):
        StochasticOptions(agent=bad)
