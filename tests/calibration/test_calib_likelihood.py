"""Log-likelihoods and standardised deviations against their closed forms (scipy.stats)."""

import math

import numpy as np
import pytest
from scipy import stats

from cartsim.calibration.likelihood import (
    MISSING_Z,
    interval,
    loglik,
    sample,
    score,
    sd_log,
    zscore,
)
from cartsim.calibration.targets import km, median, rate

R = rate("r", "T", "e", "rate_crs_any", 7, 20, "toy")
M = median("m", "T", "e", "median_cmax_qpcr", 100.0, 10.0, 1000.0, 16, "toy")
K = km("k", "T", "e", "km_os", 24, 0.4, 20, "toy", ci=(0.2, 0.6))


@pytest.mark.parametrize("p", [0.05, 0.35, 0.8])
def test_binomial_loglik_is_the_binomial_pmf(p):
    assert loglik(R, p) == pytest.approx(stats.binom.logpmf(7, 20, p), rel=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.35, 0.6])
def test_binomial_z_is_the_mid_p_normal_score(p):
    midp = stats.binom.cdf(6, 20, p) + 0.5 * stats.binom.pmf(7, 20, p)
    assert zscore(R, p) == pytest.approx(-stats.norm.ppf(midp), rel=1e-12)


def test_binomial_z_sign_model_above_observation_is_positive():
    assert zscore(R, 0.8) > 2 > 0 > -2 > zscore(R, 0.02)


def test_binomial_rate_of_zero_is_bounded_by_half_a_simulated_patient():
    t = rate("r", "T", "e", "rate_crs_any", 2, 10, "toy")
    assert loglik(t, 0.0, m=50) == pytest.approx(stats.binom.logpmf(2, 10, 0.01))
    assert math.isfinite(zscore(t, 0.0, m=50))


def test_binomial_interval_is_clopper_pearson():
    lo, hi = interval(R)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 7, 14))
    assert hi == pytest.approx(stats.beta.ppf(0.975, 8, 13))


def test_lognormal_sd_from_the_range():
    expected = (math.log(1000) - math.log(10)) / 4 / math.sqrt(16) * math.sqrt(math.pi / 2)
    assert sd_log(M) == pytest.approx(expected)
    unknown = median("m", "T", "e", "median_tmax_qpcr", None, 5.0, 10.0, 12, "toy")
    assert unknown.observed == pytest.approx(math.sqrt(50))
    assert sd_log(unknown) == pytest.approx(math.log(2) / 4)


@pytest.mark.parametrize("sim", [30.0, 100.0, 450.0])
def test_lognormal_loglik_and_z(sim):
    s = sd_log(M)
    assert loglik(M, sim) == pytest.approx(stats.norm.logpdf(math.log(100), math.log(sim), s))
    assert zscore(M, sim) == pytest.approx(math.log(sim / 100) / s)
    lo, hi = interval(M)
    assert lo == pytest.approx(100 * math.exp(-1.959964 * s), rel=1e-6)
    assert (lo <= sim <= hi) == score(M, sim)["inside"]


def test_km_on_the_logit_scale():
    se = (stats.logistic.ppf(0.6) - stats.logistic.ppf(0.2)) / (2 * stats.norm.ppf(0.975))
    sim = 0.55
    z = (stats.logistic.ppf(sim) - stats.logistic.ppf(0.4)) / se
    assert zscore(K, sim) == pytest.approx(z)
    assert loglik(K, sim) == pytest.approx(
        stats.norm.logpdf(stats.logistic.ppf(0.4), stats.logistic.ppf(sim), se))
    assert interval(K) == (0.2, 0.6)


def test_km_cloglog_scale_keeps_the_sign_convention():
    t = km("k", "T", "e", "km_os", 24, 0.4, 20, "toy", ci=(0.2, 0.6), scale="cloglog")
    assert zscore(t, 0.55) > 0 > zscore(t, 0.3)


def test_km_without_ci_uses_the_binomial_equivalent_interval():
    t = km("k", "T", "e", "km_os", 12, 0.68, 10, "toy")
    half = 1.959964 * math.sqrt(0.68 * 0.32 / 10)
    assert (t.lo, t.hi) == pytest.approx((0.68 - half, min(0.68 + half, 0.999)))
    assert zscore(t, 0.68) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("t", [R, M, K], ids=["binomial", "lognormal", "km"])
def test_a_figure_that_cannot_be_computed_scores_as_missing(t):
    assert loglik(t, math.nan) == pytest.approx(-0.5 * MISSING_Z**2)
    assert math.isnan(zscore(t, math.nan))
    assert not score(t, math.nan)["inside"]


@pytest.mark.parametrize("t,sim", [(R, 0.35), (M, 100.0), (K, 0.4)],
                         ids=["binomial", "lognormal", "km"])
def test_sampling_model_centres_on_the_simulated_figure(t, sim):
    rng = np.random.default_rng(1)
    draws = sample(t, [sim, sim], rng, 20000)
    assert draws.shape == (2, 20000)
    centre = np.median(draws) if t.kind == "lognormal" else draws.mean()
    assert centre == pytest.approx(sim, rel=0.03)
