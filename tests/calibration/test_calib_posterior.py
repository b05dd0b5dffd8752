"""The posterior ensemble by importance sampling (cartsim.calibration.posterior), against
closed-form densities, quadrature, and the calibration of its intervals when the model is
right. No trial is simulated: a figure here is a known function of the parameter."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cartsim.calibration import Space
from cartsim.calibration.posterior import (
    box_mass,
    draw_proposal,
    effective_sample_size,
    format_marginals,
    importance_weights,
    log_q,
    marginals,
    mixture_log_q,
    posterior_coverage,
    proposal_from_design,
    proposal_from_draws,
    resample,
)
from cartsim.calibration.targets import rate

SPACE = Space(("p",), (0.3,), (0.05,), (0.95,))


def _frame(x: np.ndarray, targets, figure=lambda t, x: x) -> pd.DataFrame:
    """A store of draws ``x`` (one free value ``p``) whose figure for every target is ``x``."""
    rows = {"id": np.arange(len(x)), "source": "importance", "status": "ok", "p": x}
    for t in targets:
        rows[t.key] = figure(t, x)
        rows[t.key + "#m"] = 10**6
    return pd.DataFrame(rows)


def _proposal(mean=0.5, sd=0.35, dof=5.0):
    return {"mean": [mean], "cov": [[sd * sd]], "dof": dof}


def test_proposal_density_is_the_multivariate_t():
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, -0.02], [0.0, -0.02, 0.05]])
    p = {"mean": [0.4, 0.5, 0.6], "cov": cov.tolist(), "dof": 5.0}
    u = np.random.default_rng(1).random((20, 3))
    ref = stats.multivariate_t(loc=p["mean"], shape=cov, df=5.0).logpdf(u)
    np.testing.assert_allclose(log_q(p, u), ref, rtol=1e-12)


def test_draws_lie_inside_the_bounds_and_a_longer_run_extends_a_shorter_one():
    p = _proposal(mean=0.9, sd=0.3)  # much of the mass outside [0, 1]: redrawn
    long, short = draw_proposal(p, 300, seed=3), draw_proposal(p, 120, seed=3)
    assert long.shape == (300, 1) and np.all((long >= 0) & (long <= 1))
    np.testing.assert_array_equal(long[:120], short)
    assert not np.array_equal(draw_proposal(p, 120, seed=4), short)


def test_importance_posterior_mean_matches_quadrature():
    """7 of 10 observed; the figure is the parameter; prior uniform on ln p within bounds."""
    t = rate("response", "A", "exp_a", "rate_response_d28", 7, 10, "toy")
    p = _proposal()
    x = SPACE.values(draw_proposal(p, 6000, seed=0))[:, 0]
    df = _frame(x, [t])
    grid = np.linspace(0, 1, 20001)
    xg = SPACE.values(grid[:, None])[:, 0]
    post = stats.binom.pmf(7, 10, xg)
    mean_exact = np.sum(post * xg) / np.sum(post)
    for truncate in (False, True):
        w = importance_weights(df, SPACE, p, [t], truncate=truncate)
        assert effective_sample_size(w) > 800
        assert np.sum(w * x) == pytest.approx(mean_exact, abs=0.012)  # ~3 Monte Carlo SE


def test_failed_draws_get_no_weight_and_a_missing_figure_almost_none():
    t = rate("response", "A", "exp_a", "rate_response_d28", 7, 10, "toy")
    p = _proposal()
    df = _frame(SPACE.values(draw_proposal(p, 50, seed=0))[:, 0], [t])
    df.loc[3, "status"] = "exp_a: solver failed"
    df.loc[5, t.key] = math.nan
    w = importance_weights(df, SPACE, p, [t])
    assert len(w) == 50 and w[3] == 0 and w.sum() == pytest.approx(1.0)
    # a figure the simulation could not compute scores |z| = 10 (likelihood module)
    assert 0 < w[5] < 1e-15 * w.max()


def test_leaving_a_trial_out_removes_its_likelihood_from_the_weights():
    """Trial A says nothing about p (its figure is constant): without trial B the posterior
    is the prior, whose quantiles of p are known in closed form."""
    a = rate("response", "A", "exp_a", "rate_response_d28", 5, 10, "toy")
    b = rate("crs", "B", "exp_b", "rate_crs_any", 9, 10, "toy")
    p = _proposal()
    x = SPACE.values(draw_proposal(p, 8000, seed=2))[:, 0]
    df = _frame(x, [a, b], figure=lambda t, x: np.full_like(x, 0.5) if t is a else x)
    row = next(r for r in posterior_coverage(df, SPACE, p, [a, b], draws=20) if r["key"] == b.key)
    lo, hi = SPACE.values(np.array([[0.025], [0.975]]))[:, 0]
    assert row["model"][0] == pytest.approx(lo, rel=0.08)
    assert row["model"][1] == pytest.approx(hi, rel=0.03)
    # in sample the posterior of B (9/10) would sit far above the prior's median
    assert row["median"] == pytest.approx(SPACE.values(np.array([[0.5]]))[0, 0], rel=0.06)


def test_the_model_interval_covers_held_out_figures_as_often_as_it_claims():
    """If the model is right (the truth drawn from the prior, both trials drawn from it),
    the model-only interval covers the held-out observed figure in the proportion it claims
    (the sum of its claimed probabilities), and the predictive interval in about 95%."""
    rng = np.random.default_rng(11)
    p = _proposal()
    x = SPACE.values(draw_proposal(p, 400, seed=5))[:, 0]
    inside_model, claimed, inside_pred = [], [], []
    for _ in range(120):
        truth = SPACE.values(rng.random((1, 1)))[0, 0]
        ka, kb = rng.binomial(20, truth), rng.binomial(12, truth)
        a = rate("response", "A", "exp_a", "rate_response_d28", int(ka), 20, "toy")
        b = rate("crs", "B", "exp_b", "rate_crs_any", int(kb), 12, "toy")
        row = next(r for r in posterior_coverage(_frame(x, [a, b]), SPACE, p, [a, b],
                                                 draws=100, seed=int(rng.integers(1 << 30)))
                   if r["key"] == b.key)
        inside_model.append(row["in_model"])
        claimed.append(row["claimed_model"])
        inside_pred.append(row["in_predictive"])
    c = np.asarray(claimed)
    sd = math.sqrt(np.sum(c * (1 - c)))
    assert abs(np.sum(inside_model) - c.sum()) < 3 * sd
    assert 0.88 <= np.mean(inside_pred) <= 1.0


def test_systematic_resampling_keeps_the_weights_and_shuffles_the_order():
    df = pd.DataFrame({"id": np.arange(4), "source": "importance", "status": "ok",
                       "p": [0.1, 0.2, 0.3, 0.4]})
    w = np.array([0.5, 0.25, 0.25, 0.0])
    m = resample(df, w, 20, SPACE, seed=0)
    counts = m["id"].value_counts().reindex(range(4), fill_value=0).to_numpy()
    np.testing.assert_array_equal(counts, [10, 5, 5, 0])  # exact for systematic resampling
    assert m["weight"].sum() == pytest.approx(1.0)
    assert list(m["id"]) != sorted(m["id"])  # a random order, not sorted by weight
    with pytest.raises(ValueError, match="integer >= 1"):
        resample(df, w, 0, SPACE)


def test_marginals_say_which_values_the_figures_pin_down():
    """Two free values, uniform draws on the log scale (the prior); the weights pin the
    first to a normal of SD 0.05 (unit-cube scale) around the middle and leave the second
    flat. Closed form: the first's 95% interval is 0.5 +- 1.96 * 0.05 (learned = 1 - 0.196 /
    0.95), the second's the prior's own (learned 0), median values the geometric middles."""
    space = Space(("a", "b"), (1.0, 10.0), (0.1, 1.0), (10.0, 100.0))
    rng = np.random.default_rng(3)
    u = rng.random((200_000, 2))
    x = space.values(u)
    df = pd.DataFrame({"id": np.arange(len(u)), "source": "importance", "status": "ok",
                       "a": x[:, 0], "b": x[:, 1]})
    w = stats.norm.pdf(u[:, 0], 0.5, 0.05)
    ra, rb = marginals(df, w / w.sum(), space)
    assert ra["median"] == pytest.approx(1.0, rel=0.02)  # exp(mean of log 0.1 and log 10)
    lo, hi = ra["interval"]
    assert np.log10(lo) == pytest.approx(2 * (0.5 - 1.96 * 0.05) - 1, abs=0.01)
    assert np.log10(hi) == pytest.approx(2 * (0.5 + 1.96 * 0.05) - 1, abs=0.01)
    assert ra["learned"] == pytest.approx(1 - 2 * 1.96 * 0.05 / 0.95, abs=0.01)
    assert rb["learned"] == pytest.approx(0.0, abs=0.01)
    assert rb["median"] == pytest.approx(10.0, rel=0.02)
    table = format_marginals([ra, rb], effective_sample_size(w / w.sum()))
    assert "learned" in table and len(table.splitlines()) == 4


def test_proposal_from_a_design_is_centred_where_asked_and_spans_the_plausible_region():
    t = rate("response", "A", "exp_a", "rate_response_d28", 7, 10, "toy")
    x = SPACE.values(np.linspace(0, 1, 101)[:, None])[:, 0]
    df = _frame(x, [t]).assign(source="design")
    prop = proposal_from_design(df, SPACE, [t], centre=[0.7], ess=40, inflate=1.0)
    assert prop["mean"][0] == pytest.approx(SPACE.unit([0.7])[0])
    w = stats.binom.pmf(7, 10, x) ** (1 / prop["temperature"])
    assert effective_sample_size(w) == pytest.approx(40, rel=0.01)
    assert 0.05 < math.sqrt(prop["cov"][0][0]) < 0.5


def test_an_adaptive_second_batch_concentrates_and_the_mixture_stays_unbiased():
    """Two batches, the second from a proposal fitted to the first's weighted draws: weighted
    against the mixture of both proposals, the posterior mean matches quadrature, and the
    second batch alone carries more effective draws per draw than the first."""
    t = rate("response", "A", "exp_a", "rate_response_d28", 30, 40, "toy")  # a narrow posterior
    p1 = _proposal()
    x1 = SPACE.values(draw_proposal(p1, 1500, seed=0))[:, 0]
    df1 = _frame(x1, [t])
    p2 = proposal_from_draws(df1, SPACE, p1, [t], ess=30, inflate=1.3)
    x2 = SPACE.values(draw_proposal(p2, 1500, seed=1))[:, 0]
    df = pd.concat([df1, _frame(x2, [t])], ignore_index=True)
    props = [(p1, 1500), (p2, 1500)]
    u = SPACE.unit(df[["p"]].to_numpy())
    mix = mixture_log_q(props, u)
    np.testing.assert_allclose(
        mix, np.logaddexp(np.log(0.5) + log_q(p1, u) - np.log(box_mass(p1)),
                          np.log(0.5) + log_q(p2, u) - np.log(box_mass(p2))), rtol=1e-12)
    w = importance_weights(df, SPACE, props, [t], truncate=False)
    xg = SPACE.values(np.linspace(0, 1, 20001)[:, None])[:, 0]
    post = stats.binom.pmf(30, 40, xg)
    assert np.sum(w * df["p"]) == pytest.approx(np.sum(post * xg) / np.sum(post), abs=0.006)
    ess1 = effective_sample_size(importance_weights(df1, SPACE, p1, [t], truncate=False))
    ess2 = effective_sample_size(importance_weights(df.iloc[1500:], SPACE, p2, [t],
                                                    truncate=False))
    assert ess2 > 1.5 * ess1


def test_the_shipped_ensemble_is_the_posterior_resample_of_the_shipped_draws():
    """experiments/calibration_results/ensemble.csv is what ``calibrate.py --posterior``
    writes from the shipped importance draws (no simulation: the draws hold the figures)."""
    from pathlib import Path

    import yaml

    from cartsim.calibration import TARGETS
    from cartsim.calibration.design import DesignStore
    from cartsim.calibration.ensemble import read_ensemble

    root = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((root / "experiments" / "calibration.yaml").read_text())
    out = root / cfg["output_dir"]
    icfg = cfg["importance"]
    fit = [t for t in TARGETS if t.key not in cfg["exclude_from_fit"]]
    stores = [DesignStore.open(out / f, TARGETS) for f in icfg["files"] if (out / f).exists()]
    assert stores, "the shipped calibration has importance draws"
    frames = [s.frame() for s in stores]
    space = Space(*zip(*[(k, v[0], v[1], v[2]) for k, v in stores[0].meta["free"].items()]))
    df = pd.concat(frames, ignore_index=True)
    props = [(s.meta["proposal"], len(f)) for s, f in zip(stores, frames)]
    w = importance_weights(df, space, props, fit)
    members = resample(df, w, int(icfg["members"]), space, seed=int(icfg["seed"]))
    shipped, prov = read_ensemble(out / "ensemble.csv")
    assert prov["kind"].startswith("posterior") and prov["draws"] == len(df)
    np.testing.assert_array_equal(shipped["id"], members["id"])
    np.testing.assert_allclose(shipped[list(space.keys)], members[list(space.keys)], rtol=1e-9)


def test_box_mass_is_the_t_mass_inside_the_bounds():
    """One free value: the Student-t CDF between the bounds; several: a Monte Carlo share
    within its standard error of the product of the exact one-dimensional masses
    (a diagonal scale matrix: the coordinates are dependent through the shared chi-square,
    so the product is only approximate for a t; checked on a near-normal t, dof 1e6)."""
    p = _proposal(mean=0.9, sd=0.3)
    exact = stats.t.cdf(0.1 / 0.3, 5.0) - stats.t.cdf(-0.9 / 0.3, 5.0)
    assert box_mass(p) == pytest.approx(exact, rel=1e-12)
    q = {"mean": [0.9, 0.2], "cov": [[0.09, 0.0], [0.0, 0.04]], "dof": 1e6}
    z = (stats.norm.cdf(0.1 / 0.3) - stats.norm.cdf(-0.9 / 0.3)) * (
        stats.norm.cdf(0.8 / 0.2) - stats.norm.cdf(-0.2 / 0.2))
    assert box_mass(q, n=1_000_000) == pytest.approx(z, abs=4 * math.sqrt(z * (1 - z) / 1e6))


def test_a_mixture_of_batches_truncated_differently_stays_unbiased():
    """Two batches whose proposals keep very different shares of their mass inside the
    bounds (0.99 and 0.55): each batch's draws were redrawn inside, so the mixture density
    must use each truncated density. The posterior mean and SD then match quadrature; with
    the untruncated densities the wide batch's draws are over-weighted by ~1.8x and the
    mean moves towards its centre by many Monte Carlo SEs."""
    t = rate("response", "A", "exp_a", "rate_response_d28", 6, 20, "toy")
    p1, p2 = _proposal(mean=0.45, sd=0.12), _proposal(mean=0.95, sd=0.3)
    assert box_mass(p1) > 0.95 and box_mass(p2) < 0.65
    x1 = SPACE.values(draw_proposal(p1, 20000, seed=0))[:, 0]
    x2 = SPACE.values(draw_proposal(p2, 20000, seed=1))[:, 0]
    df = pd.concat([_frame(x1, [t]), _frame(x2, [t])], ignore_index=True)
    props = [(p1, 20000), (p2, 20000)]
    w = importance_weights(df, SPACE, props, [t], truncate=False)
    xg = SPACE.values(np.linspace(0, 1, 40001)[:, None])[:, 0]
    post = stats.binom.pmf(6, 20, xg)
    post /= post.sum()
    mean, sd = np.sum(post * xg), math.sqrt(np.sum(post * xg**2) - np.sum(post * xg) ** 2)
    x = df["p"].to_numpy()
    assert np.sum(w * x) == pytest.approx(mean, abs=0.004)
    assert math.sqrt(np.sum(w * x**2) - np.sum(w * x) ** 2) == pytest.approx(sd, rel=0.03)
    u = SPACE.unit(df[["p"]].to_numpy())
    lw = stats.binom.logpmf(6, 20, x) - np.logaddexp(np.log(0.5) + log_q(p1, u),
                                                     np.log(0.5) + log_q(p2, u))
    wrong = np.exp(lw - lw.max())
    wrong /= wrong.sum()
    assert abs(np.sum(wrong * x) - mean) > 0.008  # what the untruncated mixture gives
