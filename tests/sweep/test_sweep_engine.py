"""Sweeps with a stochastic engine: every point is the realisation its global index names."""

import dataclasses

import numpy as np

from cartsim.scenario import OutputOptions, Regimen, Scenario
from cartsim.stochastic import simulate_stochastic, trial_simulator
from cartsim.sweep import SweepAxis, SweepSpec, run_sweep

DOSES = [1e5, 1e6, 1e7]
NAMES = ["cmax_qpcr", "il6_peak", "cr_d28"]


def _spec(chunk_size):
    return SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", values=DOSES)],
                     endpoints=NAMES, chunk_size=chunk_size)


def test_stochastic_sweep_does_not_depend_on_chunking_and_equals_point_simulations():
    base = Scenario(output=OutputOptions(t_end=60.0), seed=3)
    sim = trial_simulator("stochastic")
    whole = run_sweep(base, _spec(3), simulate_fn=sim, engine={"engine": "stochastic"})
    split = run_sweep(base, _spec(1), simulate_fn=sim, engine={"engine": "stochastic"})
    for name in NAMES:
        np.testing.assert_array_equal(whole[name].values, split[name].values)
    # point k is the realisation on stream k, as simulate_stochastic gives it alone
    from cartsim.clinical import endpoints

    for k, dose in enumerate(DOSES):
        sc = dataclasses.replace(base, regimen=Regimen(car_dose_per_kg=dose))
        ds = simulate_stochastic([sc], replicates=1, replicate_dim=False, stream_offset=k)
        ep = endpoints(ds)
        assert float(whole["cmax_qpcr"].values[k]) == float(ep["cmax_qpcr"].values[0])
    # a stochastic realisation is not the ODE solution (the engine really was used)
    ode = run_sweep(base, _spec(3))
    assert not np.array_equal(ode["cmax_qpcr"].values, whole["cmax_qpcr"].values)
