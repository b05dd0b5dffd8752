"""Drawing virtual cohorts: distributions, copula, truncation, random effects, reproducibility.

The references are scipy.stats distributions truncated by hand (CDF rescaled
to the bounds) and the closed form of Spearman's rho under a Gaussian copula,
rho_s = (6/pi) asin(rho/2); the sampler works on normal scores with rejection,
so the two share no code.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

from cartsim.models import get_model
from cartsim.population import Cohort, Covariate, PopulationSpec, draw_cohort
from cartsim.scenario import Disease, ModelConfig, Scenario, ScenarioError

N = 20_000
BASE = Scenario()


class Truncated:
    """A frozen scipy distribution restricted to [lo, hi] (CDF rescaled to the bounds)."""

    def __init__(self, dist, lo=-np.inf, hi=np.inf):
        self.d, self.lo, self.hi = dist, lo, hi
        self.f_lo, self.mass = dist.cdf(lo), dist.cdf(hi) - dist.cdf(lo)

    def cdf(self, x):
        return np.clip((self.d.cdf(np.clip(x, self.lo, self.hi)) - self.f_lo) / self.mass, 0, 1)

    def ppf(self, q):
        return self.d.ppf(self.f_lo + q * self.mass)

    def moment(self, k, about=0.0):
        lo, hi = max(self.lo, self.d.ppf(1e-13)), min(self.hi, self.d.ppf(1 - 1e-13))
        val, _ = integrate.quad(lambda x: (x - about) ** k * self.d.pdf(x), lo, hi, limit=200)
        return val / self.mass


def _check_sample(x, ref: Truncated, n: int = N):
    """Mean, SD, quantiles and the whole CDF agree with ``ref`` within sampling error."""
    mean = ref.moment(1)
    var, mu4 = ref.moment(2, mean), ref.moment(4, mean)
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var() - var) < 5 * math.sqrt((mu4 - var**2) / n)  # SE of a sample variance
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        # the fraction of draws below the reference quantile is binomial(n, q)/n
        assert abs(np.mean(x <= ref.ppf(q)) - q) < 5 * math.sqrt(q * (1 - q) / n)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-4
    assert x.min() >= ref.lo and x.max() <= ref.hi


MARGINALS = PopulationSpec(
    n=N, covariate_correlation=[], em_probability=None, random_effects={},
    covariates={
        "weight_kg": Covariate("lognormal", 60.0, 0.25, 40.0, 90.0),
        "height_cm": Covariate("normal", 165.0, 10.0, 150.0, None),
        "crcl_ml_min": Covariate("uniform", None, None, 40.0, 140.0),
        "marrow_blast_pct": Covariate("normal", 40.0, 20.0, 0.0, 99.0),
        "lymphocytes_per_ul": Covariate("fixed", 1000.0),
        "em_volume_cm3": Covariate("lognormal", 20.0, 1.0, None, None),
    })


@pytest.fixture(scope="module")
def marginals() -> Cohort:
    return draw_cohort(BASE, MARGINALS, seed=11)


@pytest.mark.parametrize(("name", "ref"), [
    ("weight_kg", Truncated(stats.lognorm(s=0.25, scale=60.0), 40.0, 90.0)),
    ("height_cm", Truncated(stats.norm(165.0, 10.0), 150.0)),
    ("crcl_ml_min", Truncated(stats.uniform(40.0, 100.0), 40.0, 140.0)),
    ("marrow_blast_pct", Truncated(stats.norm(40.0, 20.0), 0.0, 99.0)),
    ("em_volume_cm3", Truncated(stats.lognorm(s=1.0, scale=20.0))),
])
def test_covariates_follow_the_truncated_distribution(marginals, name, ref):
    _check_sample(marginals.table[name].values, ref)


def test_fixed_and_unlisted_covariates(marginals):
    t = marginals.table
    assert (t.lymphocytes_per_ul == 1000.0).all()
    assert (t.anc_per_ul == BASE.patient.anc_per_ul).all()  # not in the spec: base value
    assert "base scenario" in t.anc_per_ul.attrs["origin"]
    assert t.weight_kg.attrs["units"] == "kg" and t.weight_kg.attrs["long_name"]


def test_redraws_are_counted(marginals):
    # expected rejected rows: n * (1/P(all in bounds) - 1) for independent covariates
    p_in = [Truncated(stats.lognorm(s=0.25, scale=60.0), 40.0, 90.0).mass,
            Truncated(stats.norm(165.0, 10.0), 150.0).mass,
            Truncated(stats.norm(40.0, 20.0), 0.0, 99.0).mass]
    expected = N * (1 / np.prod(p_in) - 1)
    got = marginals.table.attrs["n_redraws_covariates"]
    assert abs(got - expected) < 5 * math.sqrt(expected / np.prod(p_in))
    assert marginals.table.weight_kg.attrs["n_out_of_bounds"] > 0


def test_scenarios_carry_the_table_values_and_validate(marginals):
    t = marginals.table
    assert len(marginals) == N == t.sizes["patient"]
    for i in (0, 1, N // 2, N - 1):
        s = marginals.scenarios[i]
        assert s.patient.weight_kg == t.weight_kg.values[i]
        assert s.disease.em_volume_cm3 == t.em_volume_cm3.values[i]
        assert (s.product, s.regimen, s.output) == (BASE.product, BASE.regimen, BASE.output)
        # every sub-object passes its own validation again
        for part in (s.patient, s.disease, s.regimen, s.model):
            dataclasses.replace(part)


@pytest.mark.parametrize(("a", "b", "rho"), [
    ("weight_kg", "height_cm", 0.6),      # lognormal x normal
    ("crcl_ml_min", "anc_per_ul", -0.4),  # uniform x lognormal
])
def test_gaussian_copula_gives_the_requested_rank_correlation(a, b, rho):
    covs = {a: Covariate("lognormal", 60.0, 0.2), b: Covariate("normal", 165.0, 8.0)}
    if a == "crcl_ml_min":
        covs = {a: Covariate("uniform", None, None, 40.0, 140.0),
                b: Covariate("lognormal", 2500.0, 0.7)}
    spec = PopulationSpec(n=N, covariates=covs, covariate_correlation=[[a, b, rho]],
                          em_probability=None, random_effects={})
    t = draw_cohort(BASE, spec, seed=3).table
    rs = stats.spearmanr(t[a].values, t[b].values).statistic
    assert abs(rs - 6 / math.pi * math.asin(rho / 2)) < 5 / math.sqrt(N)


def test_random_effects_lognormal_correlated_with_base_typical_values():
    base = Scenario(model=ModelConfig(params={"rho_max": 1.5}))
    spec = PopulationSpec(n=N, covariates={}, covariate_correlation=[], em_probability=None,
                          random_effects={"rho_max": 0.2, "delta_e": 0.3},
                          random_effect_correlation=[["delta_e", "rho_max", -0.5]],
                          poor_expander_probability=None)
    c = draw_cohort(base, spec, seed=5)
    t = c.table
    ps = get_model("cd7").parameters
    for name, typical, omega in (("rho_max", 1.5, 0.2), ("delta_e", ps["delta_e"].value, 0.3)):
        eta = t[f"eta_{name}"].values
        np.testing.assert_allclose(t[name].values, typical * np.exp(eta), rtol=1e-12)
        assert abs(eta.mean()) < 5 * omega / math.sqrt(N)
        assert abs(eta.std() / omega - 1) < 5 / math.sqrt(2 * N)
        assert t[name].attrs["units"] == ps[name].unit
    r = np.corrcoef(t.eta_rho_max, t.eta_delta_e)[0, 1]
    assert abs(r + 0.5) < 5 * (1 - 0.25) / math.sqrt(N)
    for i in (0, N - 1):
        params = c.scenarios[i].model.params
        assert params["rho_max"] == t.rho_max.values[i]
        ps.with_values(params)  # the model's own bounds check


def test_random_effects_truncated_at_parameter_bounds():
    # k_switch: typical 1e-7, upper bound 1e-3 -> eta <= ln(1e4) = 9.21; with omega 4 that is
    # z <= 2.30, so ~1% of draws are redrawn and eta follows a truncated normal
    ps = get_model("cd7").parameters
    spec = PopulationSpec(n=N, covariates={}, covariate_correlation=[], em_probability=None,
                          cd7neg_clone_probability=None, random_effects={"k_switch": 4.0})
    base = Scenario(model=ModelConfig(params={"k_switch": 1e-7}))
    t = draw_cohort(base, spec, seed=8).table
    hi = math.log(ps["k_switch"].upper / 1e-7)
    assert t.k_switch.max() <= ps["k_switch"].upper
    _check_sample(t.eta_k_switch.values, Truncated(stats.norm(0.0, 4.0), -np.inf, hi))
    assert t.attrs["n_redraws_random_effects"] == t.eta_k_switch.attrs["n_out_of_bounds"] > 0


def test_em_probability_sets_who_has_extramedullary_disease():
    spec = PopulationSpec(n=N, em_probability=0.3, random_effects={})
    t = draw_cohort(BASE, spec, seed=2).table
    p = t.em_present.values.mean()
    assert abs(p - 0.3) < 5 * math.sqrt(0.3 * 0.7 / N)
    assert (t.em_volume_cm3.values[~t.em_present.values] == 0).all()
    assert (t.em_volume_cm3.values[t.em_present.values] >= 1.0).all()
    # without an em_volume_cm3 covariate, patients with a mass get the base disease's volume
    spec = PopulationSpec(n=200, covariates={}, covariate_correlation=[], em_probability=0.5,
                          random_effects={})
    t = draw_cohort(Scenario(disease=Disease(em_volume_cm3=50.0)), spec, seed=2).table
    assert set(np.unique(t.em_volume_cm3)) == {0.0, 50.0}
    # null keeps the base volume for everyone
    spec = dataclasses.replace(spec, em_probability=None)
    t = draw_cohort(Scenario(disease=Disease(em_volume_cm3=50.0)), spec, seed=2).table
    assert (t.em_volume_cm3 == 50.0).all() and t.em_present.all()


def test_same_seed_same_cohort_different_seed_different():
    spec = PopulationSpec(n=50)
    a, b, c = (draw_cohort(BASE, spec, s) for s in (1, 1, 2))
    xr.testing.assert_identical(a.table, b.table)
    assert a.scenarios == b.scenarios
    assert not np.allclose(a.table.weight_kg, c.table.weight_kg)
    g1 = draw_cohort(BASE, spec, np.random.default_rng(9))
    g2 = draw_cohort(BASE, spec, np.random.default_rng(9))
    xr.testing.assert_identical(g1.table, g2.table)
    assert (a.table.attrs["seed"], g1.table.attrs["seed"]) == (1, -1)
    assert "weight_kg" in a.table.attrs["spec"]


def test_covariate_streams_do_not_depend_on_random_effects():
    spec = PopulationSpec(n=50)
    a = draw_cohort(BASE, spec, 4)
    b = draw_cohort(BASE, dataclasses.replace(spec, random_effects={}), 4)
    xr.testing.assert_identical(a.table.weight_kg, b.table.weight_kg)


def test_default_population_draws_a_valid_cohort():
    c = draw_cohort(BASE, PopulationSpec(), 0)
    assert len(c) == 100 and len(c.scenarios) == 100
    for name in PopulationSpec().random_effects:
        assert f"eta_{name}" in c.table and name in c.table
    for var in c.table.data_vars.values():
        assert "units" in var.attrs and "long_name" in var.attrs


# --- errors found when drawing -------------------------------------------------------------

def _spec(**kw) -> PopulationSpec:
    base = dict(n=10, covariates={}, covariate_correlation=[], em_probability=None,
                random_effects={})
    return PopulationSpec(**{**base, **kw})


@pytest.mark.parametrize(("kw", "base", "seed", "needles"), [
    (dict(random_effects={"rho_maxx": 0.2}), BASE, 0,
     ["population.random_effects.rho_maxx", "rho_max", "cd7"]),
    (dict(random_effects={"k_switch": 0.5}), Scenario(model=ModelConfig(params={"k_switch": 0.0})),
     0, ["population.random_effects.k_switch", "typical value > 0"]),
    (dict(random_effects={"rho_max": 0.2}), Scenario(model=ModelConfig(params={"rho_max": 9.0})),
     0, ["model.params.rho_max=9.0", "[0.1, 5.0]"]),
    (dict(em_probability=0.2), BASE, 0, ["population.em_probability", "em_volume_cm3"]),
    (dict(covariates={"marrow_blast_pct": Covariate("normal", 90.0, 30.0, 0.0, None)}), BASE, 0,
     ["population.covariates.marrow_blast_pct", "patient.marrow_blast_pct", "< 100"]),
    (dict(), BASE, -1, ["seed=-1", "non-negative integer"]),
    (dict(), BASE, 1.5, ["seed=1.5"]),
])
def test_draw_errors_name_the_key(kw, base, seed, needles):
    with pytest.raises(ScenarioError) as err:
        draw_cohort(base, _spec(**kw), seed)
    for needle in needles:
        assert needle in str(err.value)


def test_bounds_that_reject_most_draws_are_an_error(monkeypatch):
    # typical value at the upper bound: half of all etas are rejected; demand 60% acceptance
    # (checked once 10,000 draws have been made)
    import cartsim.population.draw as draw

    monkeypatch.setattr(draw, "MIN_ACCEPTANCE", 0.6)
    base = Scenario(model=ModelConfig(params={"k_switch": 1e-3}))
    with pytest.raises(ScenarioError, match=r"population\.random_effects: .*k_switch.*widen"):
        draw_cohort(base, _spec(n=20_000, random_effects={"k_switch": 0.5}), 0)
    monkeypatch.setattr(draw, "MIN_ACCEPTANCE", 0.4)
    t = draw_cohort(base, _spec(n=2000, random_effects={"k_switch": 0.5}), 0).table
    assert (t.eta_k_switch <= 0).all()
    redraws = t.attrs["n_redraws_random_effects"]
    assert abs(redraws - 2000) < 5 * math.sqrt(2 * 2000)  # geometric: mean n, var 2n


def test_poor_expander_class_scales_rho_max_in_the_drawn_share():
    """The two-class mixture: a share q of patients has rho_max x factor, the rest the
    log-normal draw; the class does not move the other random effects or covariates."""
    base = Scenario(model=ModelConfig(params={"rho_max": 1.5}))
    kw = dict(n=N, covariates={}, covariate_correlation=[], em_probability=None,
              random_effects={"rho_max": 0.2, "delta_e": 0.3})
    mixed = draw_cohort(base, PopulationSpec(**kw, poor_expander_probability=0.25,
                                             poor_expander_factor=0.4), seed=5).table
    plain = draw_cohort(base, PopulationSpec(**kw, poor_expander_probability=None), seed=5).table
    poor = mixed["poor_expander"].values.astype(bool)
    assert abs(poor.mean() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / N)
    expect = 1.5 * np.exp(mixed["eta_rho_max"].values) * np.where(poor, 0.4, 1.0)
    np.testing.assert_allclose(mixed["rho_max"].values, expect, rtol=1e-12)
    np.testing.assert_array_equal(mixed["eta_delta_e"].values, plain["eta_delta_e"].values)
    assert "poor_expander" not in plain


def test_poor_expander_probability_out_of_range_is_a_named_error():
    with pytest.raises(ScenarioError, match="population.poor_expander_probability=1.5"):
        PopulationSpec(poor_expander_probability=1.5)
    with pytest.raises(ScenarioError, match="population.poor_expander_factor=0"):
        PopulationSpec(poor_expander_factor=0.0)


def test_em_refractory_class_scales_em_access_of_patients_with_a_mass_only():
    """The refractory-lesion mixture: a share q of the patients *with* a mass has
    em_access x factor; patients without a mass are never in the class, and the class
    draws from its own stream, so every other covariate and random effect is unchanged."""
    base = Scenario(disease=Disease(em_volume_cm3=30.0, em_access=0.4))
    kw = dict(n=2000, covariate_correlation=[], em_probability=0.5,
              covariates={"weight_kg": Covariate("lognormal", 60.0, 0.2)},
              random_effects={"delta_e": 0.3})
    mixed = draw_cohort(base, PopulationSpec(**kw, em_refractory_probability=0.3,
                                             em_refractory_factor=0.1), seed=8)
    plain = draw_cohort(base, PopulationSpec(**kw, em_refractory_probability=None), seed=8)
    t, p = mixed.table, plain.table
    refr = t["em_refractory"].values.astype(bool)
    has = t["em_present"].values.astype(bool)
    assert not (refr & ~has).any()
    q = refr[has].mean()
    assert abs(q - 0.3) < 5 * math.sqrt(0.3 * 0.7 / has.sum()), q
    np.testing.assert_allclose(t["em_access"].values, np.where(refr, 0.04, 0.4), rtol=1e-12)
    assert [s.disease.em_access for s in mixed.scenarios] == list(t["em_access"].values)
    for name in ("weight_kg", "em_volume_cm3", "eta_delta_e"):
        np.testing.assert_array_equal(t[name].values, p[name].values)
    assert "em_refractory" not in p and (p["em_access"].values == 0.4).all()


def test_em_refractory_values_out_of_range_are_named_errors():
    with pytest.raises(ScenarioError, match="population.em_refractory_probability=-0.1"):
        PopulationSpec(em_refractory_probability=-0.1)
    with pytest.raises(ScenarioError, match="population.em_refractory_factor=1.5"):
        PopulationSpec(em_refractory_factor=1.5)
