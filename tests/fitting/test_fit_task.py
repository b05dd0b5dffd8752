"""``cartsim task=fit``: options validation, outputs of the task, plots."""

import matplotlib
import numpy as np
import pytest
import xarray as xr
from fitdata import DATA

from cartsim.config import load_run_config
from cartsim.fitting.options import FitOptions
from cartsim.scenario import ScenarioError

matplotlib.use("Agg")


@pytest.mark.parametrize("kw,key", [
    (dict(method="bayes"), "fit.method"),
    (dict(parameters=["a", "a"]), "fit.parameters"),
    (dict(error={"il6": "poisson"}), "fit.error.il6"),
    (dict(transforms={"rho_max": "sqrt"}), "fit.transforms.rho_max"),
    (dict(parameters=["a"], profile=["b"]), "fit.profile"),
    (dict(n_starts=0), "fit.n_starts"),
    (dict(n_starts=2, n_local=3), "fit.n_local"),
    (dict(rtol=1.0), "fit.rtol"),
    (dict(omega_init=-1.0), "fit.omega_init"),
    (dict(sigma_floor={"car_cells_per_ul": 0.0}), "fit.sigma_floor.car_cells_per_ul"),
    (dict(sigma_fixed={"car_cells_per_ul": "x"}), "fit.sigma_fixed.car_cells_per_ul"),
    (dict(init_from="literature"), "fit.init_from"),
    (dict(n_chains=0), "fit.n_chains"),
])
def test_fit_options_errors_name_the_field(kw, key):
    with pytest.raises(ScenarioError, match=key.replace(".", r"\.")):
        FitOptions(**kw)


def test_conf_fit_default_matches_the_dataclass():
    cfg = load_run_config(["task=fit"])
    assert cfg.fit == FitOptions()


def test_fit_task_writes_dataset_table_and_plots(tmp_path, capsys):
    from cartsim.fitting.task import PLOTS, run_fit_task

    cfg = load_run_config(["task=fit", "model=stein2019",
                           f"data={DATA / 'stein2019_typical.csv'}",
                           "fit.parameters=[Tmax,Cmax,alpha,beta]", "fit.n_sim=10",
                           # noise-free data: the residual SD is fixed (estimated, it would
                           # go to its floor and the fit would not be converged)
                           "+fit.sigma_fixed.car_copies_per_ug=0.1", "seed=3"])
    paths = run_fit_task(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "Cmax" in out and "log-likelihood" in out
    ds = xr.open_dataset(paths["dataset"], engine="h5netcdf")
    for name, v in ds.variables.items():
        if name not in ("obs", "patient", "replicate", "parameter", "analyte_name",
                        "patient_id", "analyte", "unit", "data_row", "parameter_unit"):
            assert "units" in v.attrs, name
    assert ds.attrs["seed"] == 3 and "fit:" in ds.attrs["config"]
    assert float(ds["estimate"].sel(parameter="Cmax")) == pytest.approx(24000, rel=1e-2)
    ds.close()
    table = (tmp_path / "parameters.csv").read_text().splitlines()
    assert table[0].startswith("name,kind,estimate,unit,se")
    assert any(r.startswith("sigma_prop_car_copies_per_ug,residual,0.1,") and "fixed" in r
               for r in table)
    for name in (*PLOTS, "vpc_car_copies_per_ug"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_fit_task_without_data_is_a_clear_error(tmp_path, capsys):
    from cartsim.fitting.task import run_fit_task

    cfg = load_run_config(["task=fit", "fit.parameters=[rho_max]"])
    with pytest.raises(SystemExit) as ex:
        run_fit_task(cfg, tmp_path)
    assert ex.value.code == 2
    assert "needs data=PATH" in capsys.readouterr().err


def test_vpc_statistics_handle_blq_as_censored():
    """Known data: half the observations BLQ in a bin -> the observed P5 is not drawn,
    the median is the lowest quantified value, and the BLQ fraction is 0.5."""
    from cartsim.plot.gof import plot_gof, plot_individual_fits, plot_vpc, vpc_statistics

    n = 8
    dv = np.array([50.0] * 4 + [100.0, 200.0, 400.0, 800.0])
    cens = np.array([1] * 4 + [0] * 4)
    rng = np.random.default_rng(0)
    sim = np.exp(rng.normal(np.log(100.0), 1.0, size=(200, n)))
    ds = xr.Dataset(
        {"dv": ("obs", dv), "lloq": ("obs", np.full(n, 50.0)), "cens": ("obs", cens),
         "ipred": ("obs", np.full(n, 100.0)), "ppred": ("obs", np.full(n, 100.0)),
         "iwres": ("obs", np.zeros(n)), "pwres": ("obs", np.zeros(n)),
         "sim": (("replicate", "obs"), sim),
         "ipred_curve": (("patient", "analyte_name", "curve_time"), np.ones((1, 1, 3)))},
        coords={"time": ("obs", np.full(n, 7.0)), "analyte": ("obs", ["il6"] * n),
                "unit": ("obs", ["pg/mL"] * n), "patient_id": ("obs", ["A"] * n),
                "patient": ["A"], "analyte_name": ["il6"], "curve_time": [0.0, 1.0, 2.0]})
    st = vpc_statistics(ds)
    assert st["obs_blq"][0] == pytest.approx(0.5)
    assert np.isnan(st["obs_pct"][0, 0])  # P5 falls among the BLQ values: not drawn
    assert st["obs_pct"][0, 2] > 400
    lo, med, hi = st["sim_blq"][:, 0]
    p_blq = 0.2437  # P(lognormal(ln 100, 1) < 50) = Phi(ln(0.5))
    assert lo < p_blq < hi and med == pytest.approx(p_blq, abs=0.06)
    assert np.all(st["sim_pct"][0] >= 50.0)  # bands cut at the LLOQ, never imputed below
    for f in (plot_vpc(ds), plot_gof(ds), plot_individual_fits(ds)):
        assert f.axes


def test_population_task_on_real_flow_data_writes_the_saem_trace(tmp_path, capsys):
    """task=fit, method population, on the shipped real flow data: the Dataset keeps
    cells/uL, holds every restart's trace, and the trace figure is written."""
    import warnings

    from cartsim.fitting import ConvergenceWarning
    from cartsim.fitting.task import run_fit_task

    cfg = load_run_config([
        "task=fit", "model=stein2019", "fit.method=population",
        f"data={DATA / 'bALL_cart_kinetics' / 'car_t_cells_per_ul.csv'}",
        "fit.parameters=[Tmax,Cmax,alpha,beta]", "fit.n_explore=10", "fit.n_smooth=5",
        "fit.n_chains=2", "fit.n_sim=2", "fit.is_samples=10"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 15 iterations: not converged
        paths = run_fit_task(cfg, tmp_path)
    assert "cells/uL" in capsys.readouterr().out
    ds = xr.open_dataset(paths["dataset"], engine="h5netcdf")
    assert ds.sizes["restart"] == 2 and ds.sizes["iteration"] == 15
    assert set(ds["unit"].values.astype(str)) == {"cells/uL"}
    ds.close()
    assert (tmp_path / "saem_trace.png").stat().st_size > 1000
