"""Population fit (SAEM): recovery of typical values, omegas and residual error."""

import numpy as np
import pytest
from fitdata import STEIN_TYPICAL

from cartsim.fitting import fit, fit_dataset
from cartsim.fitting.population import PopulationFit

OMEGA = {"Tmax": 0.3, "Cmax": 0.6, "alpha": 0.5, "beta": 0.5}


@pytest.fixture(scope="module")
def pop_result(tmp_path_factory):
    from fitdata import QPCR_DAYS

    from cartsim.fitting.data import read_observations
    from cartsim.fitting.synthetic import AssayDesign, simulate_observations
    from cartsim.scenario import ModelConfig, Scenario

    scs = [Scenario(model=ModelConfig(name="stein2019")) for _ in range(30)]
    sd = simulate_observations(scs, STEIN_TYPICAL, OMEGA,
                               [AssayDesign("car_copies_per_ug", QPCR_DAYS, 0.5, 50.0)], seed=11)
    p = tmp_path_factory.mktemp("pop") / "cohort.csv"
    p.write_text(sd.to_csv())
    obs = read_observations(p)
    res = fit(obs, list(STEIN_TYPICAL), model="stein2019", method="population",
              n_explore=80, n_smooth=40, random_state=1)
    return obs, sd.true_params, res


def test_saem_recovers_typical_values_omegas_and_sigma(pop_result):
    obs, true, res = pop_result
    assert isinstance(res, PopulationFit) and res.converged_
    # three restarts by default (converged_ requires them to agree within a standard error)
    assert len(res.restarts_) == 3 and res.restart_spread_se_ <= 1.0
    assert np.isfinite(res.loglik_se_) and res.init_from_ == "individual"
    for name, typical in STEIN_TYPICAL.items():
        # typical value within 3 SE of the truth (and SE sensible: RSE < 50%)
        assert abs(res.params_[name] - typical) < 3 * res.se_[name], name
        assert res.se_[name] / res.params_[name] < 0.5
        assert abs(res.omega_[name] - OMEGA[name]) < 3 * res.se_[f"omega_{name}"] + 0.05, name
    assert res.sigma_["sigma_prop_car_copies_per_ug"] == pytest.approx(0.5, abs=0.08)
    assert obs.cens.sum() > 0  # the data set does exercise the M3 likelihood


def test_ebes_track_true_individual_parameters(pop_result):
    obs, true, res = pop_result
    for name in ("Cmax", "alpha"):
        r = np.corrcoef(np.log(res.ebe_[name]), np.log(true[name]))[0, 1]
        assert r > 0.8, (name, r)
    assert res.eta_.shape == (30, 4)


def test_loglik_aic_bic_and_dataset(pop_result):
    obs, _, res = pop_result
    k = 4 + 4 + 1
    assert np.isfinite(res.loglik_)
    assert res.aic_ == pytest.approx(2 * k - 2 * res.loglik_)
    assert res.bic_ == pytest.approx(k * np.log(obs.dv.size) - 2 * res.loglik_)
    ds = fit_dataset(res, n_sim=5, seed=2)
    for v in ds.data_vars.values():
        assert "units" in v.attrs and "long_name" in v.attrs, v.name
    assert ds.sizes["obs"] == obs.dv.size and ds.sizes["replicate"] == 5
    # individual predictions fit better than population predictions
    m = ds["cens"].values == 0
    assert np.nanmean(ds["iwres"].values[m] ** 2) < np.nanmean(ds["pwres"].values[m] ** 2)


def test_population_fit_needs_several_patients(stein_data):
    obs, _ = stein_data(n=1)
    with pytest.raises(ValueError, match="at least 2 patients"):
        PopulationFit(["Cmax"], model="stein2019").fit(obs)


def test_population_intervals_cover_truth_over_seeds(stein_data):
    """Typical values and omegas inside their 95% intervals at about the nominal rate over
    4 simulated cohorts (16 + 16 intervals; at p = 0.95 fewer than 13/16 has probability
    < 1%)."""
    from scipy import stats

    hits_typ, hits_om = 0, 0
    for seed in range(4):
        obs, _ = stein_data(n=25, seed=200 + seed, omega=OMEGA)
        res = PopulationFit(list(STEIN_TYPICAL), model="stein2019", n_explore=60, n_smooth=30,
                            is_samples=0, n_chains=1, random_state=seed).fit(obs)
        z = stats.norm.ppf(0.975)
        for name, typical in STEIN_TYPICAL.items():
            lo, hi = res.ci_[name]
            hits_typ += int(lo <= typical <= hi)
            se = res.se_[f"omega_{name}"]
            hits_om += int(abs(res.omega_[name] - OMEGA[name]) <= z * se)
    assert hits_typ >= 13, hits_typ
    assert hits_om >= 12, hits_om  # omega intervals are Wald on a skewed estimate: looser


def test_too_short_saem_reports_non_convergence(stein_data):
    from cartsim.fitting import ConvergenceWarning

    obs, _ = stein_data(n=6, seed=21, omega=OMEGA)
    with pytest.warns(ConvergenceWarning) as rec:
        res = PopulationFit(["Cmax", "alpha"], model="stein2019", n_explore=3, n_smooth=2,
                            is_samples=0, init={"Cmax": 100.0}).fit(obs)
    assert not res.converged_ and res.status_ == "parameters still drifting"
    assert any("drift" in str(w.message) for w in rec)


def test_cd7_population_recovery_on_shipped_synthetic_cohort():
    """SAEM on the shipped 20-patient cd7 cohort: the true typical values (the cd7 defaults
    the cohort was drawn around) inside the 95% intervals, sigma near its true value."""
    from fitdata import DATA

    from cartsim.fitting.data import read_observations
    from cartsim.parameters.cd7 import CD7_PARAMETERS

    obs = read_observations(DATA / "synthetic_cohort.csv")
    names = ["rho_max", "delta_e", "delta_m"]
    res = PopulationFit(names, n_explore=50, n_smooth=30, is_samples=0, n_chains=1,
                        random_state=3).fit(obs)
    inside = sum(res.ci_[n][0] <= CD7_PARAMETERS[n].value <= res.ci_[n][1] for n in names)
    assert inside >= 2, res.ci_
    assert res.sigma_["sigma_prop_car_copies_per_ug"] == pytest.approx(0.5, abs=0.1)
    assert res.sigma_["sigma_prop_car_cells_per_ul"] == pytest.approx(0.3, abs=0.12)


def test_nan_standard_errors_are_never_silent(stein_data, monkeypatch):
    """A singular Louis information (forced here) gives NaN standard errors: the fit is not
    converged and a ConvergenceWarning says so."""
    from cartsim.fitting import ConvergenceWarning

    obs, _ = stein_data(n=6, seed=22, omega=OMEGA)

    def singular(self, grads, hess):
        k = grads.shape[2]
        return np.full((k, k), np.nan), np.zeros((k, k))

    monkeypatch.setattr(PopulationFit, "_standard_errors", singular)
    with pytest.warns(ConvergenceWarning) as rec:
        res = PopulationFit(["Cmax", "alpha"], model="stein2019", n_explore=20, n_smooth=10,
                            is_samples=0, n_chains=1).fit(obs)
    assert not res.converged_ and np.isnan(res.se_["Cmax"])
    assert any("standard errors are not finite" in str(w.message) for w in rec)
