"""Population fit (SAEM): recovery of typical values, omegas and residual error; the verdict
on the real data (issue 17)."""

import math
import warnings

import numpy as np
import pytest
from fitdata import DATA, STEIN_TYPICAL

from cartsim.fitting import ConvergenceWarning, fit_dataset
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
    res = PopulationFit(list(STEIN_TYPICAL), model="stein2019", n_explore=80, n_smooth=40,
                        random_state=1).fit(obs)
    return obs, sd.true_params, res


def test_saem_recovers_typical_values_omegas_and_sigma(pop_result):
    obs, true, res = pop_result
    assert isinstance(res, PopulationFit) and res.converged_, res.status_
    assert res.problem_parameters_ == {}
    # three restarts by default (converged_ requires them to agree within a standard error)
    assert len(res.restarts_) == 3 and res.restart_spread_se_ <= 1.0
    assert np.isfinite(res.loglik_se_) and res.init_from_ == "individual"
    for name, typical in STEIN_TYPICAL.items():
        # the truth inside the 95% interval (and SE sensible: RSE < 50%)
        lo, hi = res.ci_[name]
        assert lo <= typical <= hi, (name, res.ci_[name])
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
    obs, _ = stein_data(n=6, seed=21, omega=OMEGA)
    with pytest.warns(ConvergenceWarning) as rec:
        res = PopulationFit(["Cmax", "alpha"], model="stein2019", n_explore=3, n_smooth=2,
                            is_samples=0, init={"Cmax": 100.0}).fit(obs)
    assert not res.converged_ and res.status_ == "parameters still drifting"
    assert any("drift" in str(w.message) for w in rec)


def test_cd7_population_recovery_on_simulated_cohort(tmp_path):
    """SAEM on a 20-patient cd7 cohort simulated here with the design of the shipped one
    (experiments/data/README.md: qPCR 12 samples, SD 0.5; flow 4 samples, SD 0.3; IIV SDs
    0.25-0.8) around the current cd7 defaults, with the defaults of an ODE model (the
    maximum-likelihood refinement over 300 importance samples per patient): the true typical
    values of rho_max and delta_m inside their 95% intervals, delta_e within 4 standard
    errors, sigma near its true value. (The shipped cohort was drawn from an earlier cd7
    model; simulating here keeps the truth that of the model fitted.)

    Why not delta_e inside its interval: on this draw the maximum likelihood itself lies
    3.0 standard errors above the true delta_e (0.19 vs 0.16; the 20 patients' geometric mean
    is 0.167), measured by maximising an importance-sampling likelihood over independent
    draws (500 per patient), so no algorithm that finds the maximum can cover it; the
    intervals that held 2 of 3 truths before the refinement did so by a 1% margin on
    delta_m, whose standard error the chains' information gave 30% too small (issue 17).
    Coverage is judged over re-drawn cohorts by benchmarks/fit.py --replicates."""
    from cartsim.fitting.data import read_observations
    from cartsim.fitting.synthetic import AssayDesign, simulate_observations
    from cartsim.parameters.cd7 import CD7_PARAMETERS
    from cartsim.scenario import Patient, Regimen, Scenario

    names = ["rho_max", "delta_e", "delta_m"]
    truth = {n: CD7_PARAMETERS[n].value for n in names}
    rng = np.random.default_rng(5)
    scs = [Scenario(patient=Patient(weight_kg=float(rng.uniform(45, 95)),
                                    marrow_blast_pct=float(rng.uniform(5, 80))),
                    regimen=Regimen(car_dose_per_kg=float(rng.choice([5e5, 1e6, 2e6]))))
           for _ in range(20)]
    design = [AssayDesign("car_copies_per_ug", (1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365),
                          0.5, 50.0),
              AssayDesign("car_cells_per_ul", (7, 14, 28, 90), 0.3, 0.5)]
    sd = simulate_observations(scs, truth, {"rho_max": 0.25, "delta_e": 0.3, "delta_m": 0.8},
                               design, seed=6)
    path = tmp_path / "cd7_cohort.csv"
    path.write_text(sd.to_csv())
    res = PopulationFit(names, n_explore=50, n_smooth=30, n_chains=1,
                        random_state=3).fit(read_observations(path))
    assert res.restarts_[0]["refined"]
    for n in ("rho_max", "delta_m"):
        assert res.ci_[n][0] <= truth[n] <= res.ci_[n][1], (n, res.ci_[n])
    z = (res.mu_ - np.log([truth[n] for n in names])) / res.mu_se_  # all log-transformed
    assert np.all(np.abs(z) <= 4.0), dict(zip(names, z))
    assert res.sigma_["sigma_prop_car_copies_per_ug"] == pytest.approx(0.5, abs=0.1)
    assert res.sigma_["sigma_prop_car_cells_per_ul"] == pytest.approx(0.3, abs=0.12)


def test_nan_standard_errors_are_never_silent(stein_data, monkeypatch):
    """A singular Louis information (forced here) gives NaN standard errors: the fit is not
    converged and a ConvergenceWarning says so."""
    obs, _ = stein_data(n=6, seed=22, omega=OMEGA)

    def singular(self, grads, hess, free=None):
        k = grads.shape[2]
        return np.full((k, k), np.nan), np.zeros((k, k))

    monkeypatch.setattr(PopulationFit, "_standard_errors", singular)
    with pytest.warns(ConvergenceWarning) as rec:
        res = PopulationFit(["Cmax", "alpha"], model="stein2019", n_explore=20, n_smooth=10,
                            is_samples=0, n_chains=1).fit(obs)
    assert not res.converged_ and np.isnan(res.se_["Cmax"])
    assert any("standard errors are not finite" in str(w.message) for w in rec)


def test_simulated_annealing_slows_the_fall_of_every_variance(stein_data):
    """While exploring, omega^2 and sigma^2 fall by at most the factor ``anneal`` (0.95) per
    iteration; without annealing (``n_anneal=0``) the same start drops them faster."""
    obs, _ = stein_data(n=10, seed=23, omega=OMEGA, sigma=0.2)
    # all patients start at the typical values: sigma and omega must come down
    kw = dict(model="stein2019", n_explore=20, n_smooth=5, is_samples=0, n_chains=1,
              omega_init=2.0, init_from="model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        slow = PopulationFit(["Cmax", "alpha"], **kw).fit(obs)
        fast = PopulationFit(["Cmax", "alpha"], n_anneal=0, **kw).fit(obs)

    def steepest(res):
        tr = res.trace_[:20]
        return np.min(tr[1:, 2:4] / tr[:-1, 2:4]), np.min(np.diff(tr[:, 4]))

    om_slow, sig_slow = steepest(slow)
    om_fast, sig_fast = steepest(fast)
    assert om_slow >= 0.95 - 1e-12 and sig_slow >= 0.5 * math.log(0.95) - 1e-12
    assert om_fast < 0.9 and sig_fast < 0.5 * math.log(0.95)


def test_importance_sampling_loglik_matches_quadrature(stein_data):
    """One random effect (Cmax, which scales the whole curve): the marginal likelihood is a
    1-d integral, computed here by Gauss-Hermite quadrature (80 nodes) with the M3
    likelihood written with scipy; the importance-sampling estimate agrees within 4 of its
    Monte Carlo standard errors (+0.05)."""
    from numpy.polynomial.hermite_e import hermegauss
    from scipy import special, stats

    from cartsim.models.stein2019 import closed_form
    from cartsim.parameters.stein2019 import STEIN2019

    obs, _ = stein_data(n=8, seed=24, omega={"Cmax": 0.6})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = PopulationFit(["Cmax"], model="stein2019", n_explore=30, n_smooth=20,
                            n_chains=1).fit(obs)
    mu, om = math.log(res.params_["Cmax"]), res.omega_["Cmax"]
    sig = res.sigma_["sigma_prop_car_copies_per_ug"]
    x, w = hermegauss(80)  # int f(x) exp(-x^2/2) dx = sum w f(x)
    total = 0.0
    for i in range(obs.n_patients):
        m = obs.patient == i
        unit = closed_form(obs.time[m], STEIN2019.with_values({"Cmax": 1000.0}).values()) / 1000
        assert np.allclose(unit * math.exp(mu), res.ppred_[m], rtol=1e-9)  # same curve
        z = (np.log(obs.dv[m])[None, :] - np.log(unit)[None, :] - (mu + om * x)[:, None]) / sig
        ll = np.where(obs.cens[m], stats.norm.logcdf(z), stats.norm.logpdf(z) - math.log(sig))
        total += special.logsumexp(ll.sum(axis=1), b=w) - 0.5 * math.log(2 * math.pi)
    assert abs(res.loglik_ - total) < 4 * res.loglik_se_ + 0.05, (res.loglik_, total)


def test_fixed_omega_is_held_and_not_estimated(stein_data):
    """``omega_fixed``: the random-effect SD stays at its value through every iteration, has no
    standard error and does not count in AIC; an unknown name is an error naming it."""
    obs, _ = stein_data(n=12, seed=25, omega=OMEGA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = PopulationFit(["Cmax", "alpha"], model="stein2019", omega_fixed={"alpha": 0.5},
                            n_explore=40, n_smooth=20, n_chains=1).fit(obs)
    assert res.omega_["alpha"] == 0.5 and res.omega_fixed_ == {"alpha": 0.5}
    assert np.all(res.trace_[:, 3] == 0.25)  # omega^2 of alpha at every iteration
    assert math.isnan(res.se_["omega_alpha"])
    assert all(math.isfinite(res.se_[k]) for k in ("Cmax", "alpha", "omega_Cmax"))
    assert res.aic_ == pytest.approx(2 * (2 + 1 + 1) - 2 * res.loglik_)
    with pytest.raises(ValueError, match="omega_fixed.beta"):
        PopulationFit(["Cmax"], model="stein2019", omega_fixed={"beta": 0.5}).fit(obs)


REAL = DATA / "bALL_cart_kinetics" / "car_t_cells_per_ul.csv"
STEIN6 = ["foldx", "Tmax", "Cmax", "alpha", "FB", "beta"]


@pytest.mark.slow
def test_real_data_six_random_effects_are_not_identified_and_named():
    """14 real patients, random effects on all six stein2019 parameters: the late phase (FB,
    beta) is not identified (restarts end 2-3 units of log-likelihood apart with FB from
    1e-4 to 0.98; the best is no better than with FB fixed). The fit is not converged and the
    warning names the contraction parameters and how to fix them. Restarts that stop at
    different late-phase optima may also disagree on the peak (Cmax trades off against FB;
    seen in a fresh environment on 2026-12-07), so the check is that FB or beta is named and
    that the verdict singles parameters out rather than naming all six."""
    from cartsim.fitting.data import read_observations

    obs = read_observations(REAL)
    with pytest.warns(ConvergenceWarning) as rec:
        res = PopulationFit(STEIN6, model="stein2019", n_explore=100, n_smooth=50).fit(obs)
    assert not res.converged_
    named = set(res.problem_parameters_)
    assert named & {"FB", "beta"} and named < set(STEIN6), named
    texts = " ".join(str(w.message) for w in rec)
    assert any(n in texts for n in ("FB", "beta")) and "fit.parameters" in texts


@pytest.mark.slow
def test_real_data_restarts_agree_once_fb_is_fixed():
    """The fix the verdict proposes, FB fixed (Stein 2019's 0.0079): with the defaults the
    three restarts agree within a standard error and within the Monte Carlo error of their
    log-likelihoods, and the fit is converged."""
    from cartsim.fitting.data import read_observations

    obs = read_observations(REAL)
    res = PopulationFit([n for n in STEIN6 if n != "FB"], model="stein2019").fit(obs)
    assert res.converged_, res.status_
    assert res.restart_spread_se_ <= 1.0
    mc = max(r["loglik_se"] for r in res.restarts_)
    assert res.restart_loglik_spread_ <= max(1.0, 3 * mc)
    assert all(math.isfinite(v) for v in res.se_.values())


@pytest.mark.parametrize("kw, key", [
    (dict(n_mcmc=0), "fit.n_mcmc"), (dict(anneal=1.5), "fit.anneal"),
    (dict(n_anneal=-1), "fit.n_anneal"), (dict(omega_fixed={"Cmax": 0.0}), "fit.omega_fixed.Cmax"),
    (dict(step_exponent=0.5), "fit.step_exponent"), (dict(refine="yes"), "fit.refine")])
def test_bad_saem_options_are_errors_naming_them(stein_data, kw, key):
    obs, _ = stein_data(n=3)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        PopulationFit(["Cmax"], model="stein2019", **kw).fit(obs)


def test_averaged_smoothing_reports_the_mean_of_the_iterates(stein_data):
    """``step_exponent`` < 1: smoothing steps ``j^-a`` and estimates that are the average of
    the iterates over the second half of the smoothing phase (Polyak-Ruppert), computed
    here from the trace; with the default (1 for stein2019) the last iterate."""
    obs, _ = stein_data(n=8, seed=26, omega=OMEGA)
    kw = dict(model="stein2019", n_explore=20, n_smooth=16, is_samples=0, n_chains=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        avg = PopulationFit(["Cmax", "alpha"], step_exponent=0.6, **kw).fit(obs)
        last = PopulationFit(["Cmax", "alpha"], **kw).fit(obs)
    tail = avg.trace_[20 + 8:]
    np.testing.assert_allclose(avg.mu_, tail[:, :2].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(avg.omega2_, tail[:, 2:4].mean(axis=0), rtol=1e-12)
    assert not np.allclose(avg.mu_, avg.trace_[-1, :2], rtol=1e-9, atol=0)
    np.testing.assert_array_equal(last.mu_, last.trace_[-1, :2])


def _one_way_ml(obs, n_days):
    """Exact maximum likelihood of the balanced one-way random-effects model
    ``d_ij = phi_i + e_ij``, ``phi_i ~ N(mu, omega^2)``, ``e_ij ~ N(0, sigma^2)`` (interior
    solution): ``sigma^2 = SSW / (n (m - 1))``, ``sigma^2 + m omega^2 = SSB / n``, and the
    standard error of ``mu``, ``sqrt((sigma^2 + m omega^2) / (n m))``."""
    from cartsim.models.stein2019 import closed_form

    d = np.log(obs.dv) - np.log(closed_form(obs.time, {"Cmax": 1.0}))
    D = np.array([d[obs.patient == i] for i in range(obs.n_patients)])
    n, m = D.shape
    assert m == n_days
    yb = D.mean(axis=1)
    mu = yb.mean()
    s2 = np.sum((D - yb[:, None]) ** 2) / (n * (m - 1))
    between = m * np.sum((yb - mu) ** 2) / n
    om2 = (between - s2) / m
    assert om2 > 0  # the interior solution
    return mu, math.sqrt(om2), math.sqrt(s2), math.sqrt(between / (n * m))


def test_refined_saem_equals_the_exact_ml_of_a_linear_gaussian_population(tmp_path):
    """A random effect on Cmax alone (it scales the whole stein2019 curve), four samples after
    the peak, nothing censored: ln y is linear-Gaussian in ln Cmax, and the maximum likelihood
    of the 20 patients and its standard error are closed-form (:func:`_one_way_ml`). SAEM with
    the settings of an ODE model (one chain per patient, one proposal of each kernel, steps
    j^-0.6) and the maximum-likelihood refinement over 2000 importance samples per patient
    must reproduce them. (Measured on seeds 0-5, issue 17: refined within 0.04 standard
    errors, its standard error within 1.5%; SAEM alone scatters by ~0.15 standard errors
    and 300 samples by ~0.1.)"""
    from cartsim.fitting.data import read_observations
    from cartsim.fitting.synthetic import AssayDesign, simulate_observations
    from cartsim.scenario import ModelConfig, Scenario

    days = (14.0, 28.0, 60.0, 90.0)
    scs = [Scenario(model=ModelConfig(name="stein2019")) for _ in range(20)]
    sd = simulate_observations(scs, {"Cmax": 24000.0}, {"Cmax": 0.4},
                               [AssayDesign("car_copies_per_ug", days, 0.8, 1e-6)], seed=0)
    path = tmp_path / "linear.csv"
    path.write_text(sd.to_csv())
    obs = read_observations(path)
    assert obs.cens.sum() == 0
    mu, omega, sigma, se = _one_way_ml(obs, len(days))
    res = PopulationFit(["Cmax"], model="stein2019", init_from="model", n_chains=1,
                        n_mcmc=1, n_prior=1, n_rw=1, n_rw_component=-1, step_exponent=0.6,
                        n_explore=100, n_smooth=150, is_samples=2000, refine=True,
                        random_state=0).fit(obs)
    assert res.restarts_[0]["refined"]
    assert abs(res.mu_[0] - mu) <= 0.1 * se, (res.mu_[0], mu, se)
    assert res.mu_se_[0] == pytest.approx(se, rel=0.03)
    assert res.omega_["Cmax"] == pytest.approx(omega, abs=0.015)
    assert res.sigma_["sigma_prop_car_copies_per_ug"] == pytest.approx(sigma, abs=0.003)
