"""``cartsim task=simulate engine=stochastic|agent``: writes the Dataset, prints the summary."""

from __future__ import annotations

import xarray as xr

from cartsim.config import load_run_config
from cartsim.stochastic.task import run_stochastic_simulate


def test_task_writes_dataset_and_summary(tmp_path, capsys):
    rc = load_run_config(["engine=agent", "stochastic.replicates=3", "stochastic.agent.n_clones=4",
                          "output.t_end=30", "stochastic.report_days=[7,30]"])
    run_stochastic_simulate(rc, tmp_path)
    out = capsys.readouterr().out
    assert "cure" in out and "CD7- escape" in out and "Clopper-Pearson" in out
    ds = xr.open_dataset(tmp_path / rc.output_file)
    assert ds.sizes["replicate"] == 3 and ds.attrs["engine"] == "agent"
    assert "clone_size" in ds


def test_trial_with_one_realisation_per_patient(monkeypatch):
    """``task=trial engine=stochastic``: run_trial with the stochastic simulate stand-in."""
    import numpy as np

    from cartsim.population import PopulationSpec
    from cartsim.scenario import OutputOptions, Scenario
    from cartsim.stochastic import trial_simulator
    from cartsim.trial import TrialOptions, run_trial

    base = Scenario(output=OutputOptions(t_end=60.0), seed=2)
    eps = []
    for chunk in (4, 2):
        res = run_trial(base, PopulationSpec(n=4), options=TrialOptions(chunk_size=chunk),
                        simulate_fn=trial_simulator("stochastic"))
        eps.append(res.endpoints)
    assert eps[0].sizes["patient"] == 4
    for name in eps[0].data_vars:  # chunking does not change any realisation
        a, b = eps[0][name].values, eps[1][name].values
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_array_equal(np.nan_to_num(a, nan=-1.0), np.nan_to_num(b, nan=-1.0))
