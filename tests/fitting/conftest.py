"""Shared helpers: simulated data sets written to CSV and read back (the user's path)."""

import pytest
from fitdata import QPCR_DAYS, STEIN_TYPICAL

from cartsim.fitting.data import read_observations
from cartsim.fitting.synthetic import AssayDesign, simulate_observations
from cartsim.scenario import ModelConfig, Scenario


@pytest.fixture
def stein_data(tmp_path):
    """Factory: a simulated stein2019 data set (n patients) as Observations."""

    def make(n=1, seed=0, omega=None, sigma=0.5, lloq=50.0, sigma_add=0.0):
        scs = [Scenario(model=ModelConfig(name="stein2019")) for _ in range(n)]
        design = [AssayDesign("car_copies_per_ug", QPCR_DAYS, sigma, lloq, sigma_add)]
        sd = simulate_observations(scs, STEIN_TYPICAL, omega or {}, design, seed=seed)
        p = tmp_path / f"stein_{n}_{seed}.csv"
        p.write_text(sd.to_csv())
        return read_observations(p), sd.true_params

    return make
