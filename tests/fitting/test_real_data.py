"""Fits on real, sparse CAR-T data (14 B-ALL patients, CAR-T cells/uL by flow, issue 17).

Independent truth: the Stein 2019 closed form and its censored (M3) likelihood written
here with scipy from the equations in ``science/parameters.md`` (not from cartsim), and the
data's own units and limits.
"""

import math
import warnings

import numpy as np
import pytest
from fitdata import DATA
from scipy import optimize, stats

from cartsim.fitting import ConvergenceWarning, DataError, FitWarning, fit, fit_dataset
from cartsim.fitting.data import read_observations
from cartsim.fitting.likelihood import SIGMA_PROP_FLOOR
from cartsim.fitting.nca import nca_read, start_values
from cartsim.fitting.report import parameter_csv
from cartsim.parameters.stein2019 import STEIN2019

REAL = DATA / "bALL_cart_kinetics" / "car_t_cells_per_ul.csv"
STEIN6 = ["foldx", "Tmax", "Cmax", "alpha", "FB", "beta"]


@pytest.fixture(scope="module")
def real():
    return read_observations(REAL)


def _fit(obs, pid, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit(obs, STEIN6, model="stein2019", patient=pid, **kw)


# -- an independent closed form and likelihood (science/parameters.md, Beal 2001 M3) ------------
def _stein(t, foldx, tmax, cmax, alpha, fb, beta):
    """C(t) = (Cmax/foldx) exp(rho t) before Tmax, (1-FB) Cmax e^{-alpha u} + FB Cmax
    e^{-beta u} after (u = t - Tmax), rho = ln(foldx)/Tmax; infusion at t = 0."""
    t = np.asarray(t, dtype=float)
    rho = math.log(foldx) / tmax
    u = t - tmax
    with np.errstate(over="ignore"):  # extreme trial values of the global search
        up = cmax / foldx * np.exp(rho * np.minimum(t, tmax))
        down = (1 - fb) * cmax * np.exp(-alpha * u) + fb * cmax * np.exp(-beta * u)
    return np.where(t < tmax, up, down)


def _m2ll(theta, t, y, cens, sigma):
    """-2 log-likelihood of ln Y: normal density for quantified values, M3 for censored."""
    f = np.maximum(_stein(t, *theta), 1e-300)
    z = (np.log(y) - np.log(f)) / sigma
    ll = np.where(cens, stats.norm.logcdf(z), stats.norm.logpdf(z) - math.log(sigma))
    return -2.0 * float(np.sum(ll))


def _patient(obs, pid):
    one = obs.select(pid)
    return one.time, one.dv, one.cens


def test_independent_likelihood_equals_cartsims_at_its_optimum(real):
    """The independent -2LL at cartsim's estimate is cartsim's -2LL, on every patient."""
    for pid in real.ids:
        res = _fit(real, pid)
        theta = [res.params_[n] for n in STEIN6]
        sigma = res.params_["sigma_prop_car_cells_per_ul"]
        t, y, c = _patient(real, pid)
        assert _m2ll(theta, t, y, c, sigma) == pytest.approx(-2 * res.loglik_, abs=1e-6), pid


@pytest.mark.parametrize("pid", ["PR1", "PR4"])
def test_independent_global_search_finds_no_better_optimum(real, pid):
    """scipy's differential evolution (global, derivative-free, log-space box of the
    parameter bounds, residual SD >= the same floor) on the independent likelihood reaches
    cartsim's converged optimum and no better one."""
    res = _fit(real, pid)
    assert res.converged_, res.message_
    t, y, c = _patient(real, pid)
    names = STEIN6
    lo = [math.log(max(STEIN2019[n].lower, 1e-8)) for n in names] + [math.log(SIGMA_PROP_FLOOR)]
    hi = [math.log(STEIN2019[n].upper) for n in names] + [math.log(10.0)]
    lo[names.index("Cmax")] = math.log(1e-2)  # cells/uL: a wide box around the data

    def obj(z):
        th = np.exp(z[:6])
        if not (th[3] > th[5] and th[4] < 1):
            return 1e6
        v = _m2ll(th, t, y, c, math.exp(z[6]))
        return v if math.isfinite(v) else 1e6

    de = optimize.differential_evolution(obj, list(zip(lo, hi)), seed=1, tol=1e-10,
                                         maxiter=600, popsize=20, polish=True)
    ref = -2 * res.loglik_
    assert de.fun >= ref - 0.1, (de.fun, ref)
    assert de.fun <= ref + 1.0, (de.fun, ref)  # the independent search finds it as well


def test_converged_means_interior_finite_se_and_reproduced(real):
    """The verdict on the real data: a converged fit has every estimate inside its bounds,
    finite standard errors and its optimum from >= 2 starts; a residual SD on its floor
    (patients with 3-5 quantified values) is not converged and says so."""
    seen_floor = False
    for pid in real.ids:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always", FitWarning)
            res = fit(real, STEIN6, model="stein2019", patient=pid)
        if res.converged_:
            assert res.at_bound_ == [] and res.n_hits_ >= 2, pid
            assert all(np.isfinite(v) for v in res.se_.values()), pid
            assert not any(issubclass(w.category, ConvergenceWarning) for w in rec), pid
        else:
            assert res.status_ != "converged"
            assert any(issubclass(w.category, ConvergenceWarning) and res.status_ in
                       str(w.message) for w in rec), pid
        if "sigma_prop_car_cells_per_ul" in res.at_bound_:
            seen_floor = True
            assert not res.converged_
            assert res.params_["sigma_prop_car_cells_per_ul"] == pytest.approx(
                SIGMA_PROP_FLOOR, rel=1e-2)
    assert seen_floor  # NR3 / NR5 / NR7: too few values to estimate an SD


def test_fewer_quantified_values_than_parameters_warns_naming_the_patient(real):
    """NR7 has 2 quantified values for 7 estimated quantities."""
    with pytest.warns(FitWarning, match=r"patient 'NR7': 2 quantified observations for 7"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit(real, STEIN6, model="stein2019", patient="NR7")
    assert not res.converged_


def test_flow_data_keep_cells_per_ul_in_every_output(real):
    res = _fit(real, "PR1")
    ds = fit_dataset(res, n_sim=3, seed=1)
    assert set(ds["unit"].values) == {"cells/uL"}
    assert "cells/uL" in ds["dv"].attrs["units"] and "copies" not in ds["ipred"].attrs["units"]
    assert "cells/uL" in ds["ipred_curve"].attrs["units"]
    assert str(ds["parameter_unit"].sel(parameter="Cmax").values) == "cells/uL"
    assert "Cmax,fixed," in parameter_csv(res) and ",cells/uL," in parameter_csv(res)
    assert "copies/ug" not in res.summary()
    # the estimate is a level of the data (peak about 200 cells/uL), not of qPCR copies/ug
    assert 50 < res.params_["Cmax"] < 1000


def test_stein2019_describes_one_analyte_per_fit(tmp_path):
    p = tmp_path / "two.csv"
    p.write_text("ID,TIME,DV,ANALYTE,UNIT\nA,7,30,car_cells_per_ul,cells/uL\n"
                 "A,7,3000,car_copies_per_ug,copies/ug\nA,14,10,car_cells_per_ul,cells/uL\n")
    with pytest.raises(ValueError, match="describes one analyte"):
        fit(p, ["Cmax"], model="stein2019")


def test_percent_of_t_cells_is_fitted_in_percent(tmp_path):
    p = tmp_path / "pct.csv"
    rows = ["ID,TIME,DV,ANALYTE,UNIT"]
    th = dict(foldx=500.0, Tmax=10.0, Cmax=20.0, alpha=0.2, FB=0.1, beta=0.01)
    rng = np.random.default_rng(3)
    for day in (3, 7, 10, 14, 21, 28, 60, 90):
        v = float(_stein(day, *th.values())) * math.exp(0.2 * rng.standard_normal())
        rows.append(f"A,{day},{v:.6g},car_pct_of_t,%")
    p.write_text("\n".join(rows) + "\n")
    from cartsim.scenario import ModelConfig, Scenario

    base = Scenario(model=ModelConfig(name="stein2019",
                                      params={"foldx": 500.0, "FB": 0.1, "beta": 0.01}))
    res = fit(p, ["Tmax", "Cmax", "alpha"], base=base)
    assert res._fm.parameter_unit("Cmax") == "%"
    assert res.params_["Cmax"] == pytest.approx(20.0, rel=0.3)


def test_uncensored_value_below_its_lloq_is_an_error_or_censored_on_request(tmp_path):
    p = tmp_path / "blq.csv"
    p.write_text("ID,TIME,DV,ANALYTE,UNIT,LLOQ,CENS\nA,7,30,flow_abs,cells/uL,0.2,0\n"
                 "A,60,0.1,flow_abs,cells/uL,0.2,0\n")
    with pytest.raises(DataError, match=r"blq\.csv: data row 2 \(line 3\).*column DV.*below "
                                        r"the row's LLOQ 0\.2.*CENS=1"):
        read_observations(p)
    obs = read_observations(p, censor_below_lloq=True)
    assert obs.cens.tolist() == [False, True] and obs.dv[1] == pytest.approx(0.2)


def test_nca_read_and_stein2019_start_recover_a_known_curve():
    """A dense, noise-free closed-form curve: the read gives its peak, its day and the
    phases' rates, and the start values are those of the curve (FB, beta roughly)."""
    th = dict(foldx=1000.0, Tmax=10.0, Cmax=300.0, alpha=0.3, FB=0.02, beta=0.01)
    t = np.array([1, 2, 4, 6, 8, 10, 11, 30, 60, 90, 120, 150.0])
    y = _stein(t, *th.values())
    read = nca_read(t, y, np.zeros(t.size, bool))
    bounds = {n: (STEIN2019[n].lower, STEIN2019[n].upper) for n in STEIN2019}
    start = start_values("stein2019", read, bounds)
    assert start["Tmax"] == pytest.approx(10.0) and start["Cmax"] == pytest.approx(300.0)
    assert start["foldx"] == pytest.approx(1000.0, rel=1e-6)  # log-linear expansion
    assert start["alpha"] == pytest.approx(0.3, rel=0.05)     # one day after the peak
    assert start["beta"] == pytest.approx(0.01, rel=0.05)
    assert start["FB"] == pytest.approx(0.02, rel=0.2)
    assert start_values("cd7", read, bounds) == {}


def test_population_starts_from_the_data_not_the_literature(real):
    """The SAEM start is the median of the individual fits: a level in cells/uL of the
    observed peaks (30-3400 cells/uL), not Stein's 24000 copies/ug."""
    from cartsim.fitting.population import PopulationFit

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always", FitWarning)
        res = PopulationFit(STEIN6, model="stein2019", n_explore=5, n_smooth=5, n_chains=2,
                            is_samples=20).fit(real)
    assert res.init_from_ == "individual"
    # 10 iterations cannot converge, and NaN standard errors are never silent
    texts = [str(w.message) for w in rec if issubclass(w.category, ConvergenceWarning)]
    assert not res.converged_ and texts
    if not all(np.isfinite(v) for v in res.se_.values()):
        assert any("standard errors are not finite" in t for t in texts)
    cmax0 = math.exp(res.init_mu_[STEIN6.index("Cmax")])
    assert 30 < cmax0 < 3400
    assert len(res.restarts_) == 2
    assert all(np.isfinite(r["loglik"]) and r["loglik_se"] > 0 for r in res.restarts_)
