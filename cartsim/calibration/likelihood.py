"""How well a simulated figure explains a published one: log-likelihood and standardised deviation.

The simulated figure is the model's *expected* figure (estimated on a cohort many times
the trial's size); the published figure is one draw of a trial of ``n`` patients. Each
target kind has a sampling model for that draw:

``binomial`` (``k`` of ``n``)
    ``k ~ Binomial(n, p)``, ``p`` the simulated rate, bounded to ``[1/(2m), 1 - 1/(2m)]``
    for a simulated denominator ``m`` (a rate of 0 of ``m`` patients is not a certainty).
    ``log L = log Binom(k; n, p)``. The deviation is the mid-p value
    ``P(X < k) + P(X = k)/2`` converted to a normal score,
    ``z = -Phi^-1(mid-p)`` (Lancaster 1961 JASA 56:223), so that ``z > 0`` when the model
    is above the observation. Inside: ``p`` within the exact (Clopper-Pearson) 95% interval.
``lognormal`` (a median with its range)
    ``ln(median_obs) ~ N(ln(median_sim), s^2)`` with
    ``s = (ln hi - ln lo) / 4 / sqrt(n) * 1.2533``: the range over ``n`` patients is ~4
    standard deviations of the individual log values (Hozo, Djulbegovic & Hozo 2005
    BMC Med Res Methodol 5:13, for n ~ 15-70), the standard error of a mean is that over
    ``sqrt(n)``, and the median's is ``sqrt(pi/2) = 1.2533`` times the mean's (normal
    data). When no median was published (``median_known=False``) the centre of the range
    stands in and ``s = (ln hi - ln lo) / 4``, the individual spread itself.
    ``z = (ln sim - ln obs) / s``; inside: ``obs * exp(+-1.96 s)``.
``km`` (a Kaplan-Meier landmark with its 95% interval)
    ``g(S_obs) ~ N(g(S_sim), se^2)`` on ``g`` = logit, log-log (``-ln(-ln S)``, the
    complementary log-log up to sign, increasing in ``S``) or the identity, with
    ``se = (g(hi) - g(lo)) / (2 * 1.96)``; ``z = (g(S_sim) - g(S_obs)) / se``; inside: the
    published interval.

Every ``z`` has the same sign convention (positive: the model is above the observation)
and is ~N(0, 1) over trials if the model is right. The objective of the calibration is
the sum of the log-likelihoods; the weighting by information comes from each target's
``n`` through the widths above. A figure the simulation cannot compute (NaN: e.g. a
median of no relapses) scores as ``|z| = 10``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from cartsim.calibration.targets import Target

__all__ = ["MISSING_Z", "interval", "loglik", "sample", "score", "sd_log", "zscore"]

MISSING_Z = 10.0
"""Standardised deviation charged to a figure the simulation could not compute."""
Z95 = stats.norm.ppf(0.975)


def sd_log(t: Target) -> float:
    """Standard deviation of ``ln(median)`` for a ``lognormal`` target (see module docstring)."""
    spread = (math.log(t.hi) - math.log(t.lo)) / 4.0
    return spread / math.sqrt(t.n) * math.sqrt(math.pi / 2) if t.median_known else spread


def _g(scale: str, s):
    s = np.clip(np.asarray(s, dtype=float), 1e-6, 1 - 1e-6)
    if scale == "logit":
        return np.log(s / (1 - s))
    if scale == "cloglog":
        return -np.log(-np.log(s))
    if scale == "linear":
        return s
    raise ValueError(f"km scale {scale!r} is not accepted: expected logit, cloglog or linear")


def _g_inv(scale: str, x):
    if scale == "logit":
        return 1.0 / (1.0 + np.exp(-x))
    if scale == "cloglog":
        return np.exp(-np.exp(-x))
    return np.clip(x, 0.0, 1.0)


def _se_km(t: Target) -> float:
    return float((_g(t.scale, t.hi) - _g(t.scale, t.lo)) / (2 * Z95))


def _p(t: Target, sim: float, m: int) -> float:
    floor = 0.5 / max(m, 1)
    return min(max(sim, floor), 1.0 - floor)


def loglik(t: Target, sim: float, m: int = 10**6) -> float:
    """Log-likelihood of the published figure given the simulated one (``m`` simulated patients)."""
    if not math.isfinite(sim):
        return -0.5 * MISSING_Z**2
    if t.kind == "binomial":
        return float(stats.binom.logpmf(t.k, t.n, _p(t, sim, m)))
    if t.kind == "lognormal":
        if sim <= 0:
            return -0.5 * MISSING_Z**2
        return float(stats.norm.logpdf(math.log(t.observed), math.log(sim), sd_log(t)))
    se = _se_km(t)
    return float(stats.norm.logpdf(_g(t.scale, t.observed), _g(t.scale, sim), se))


def zscore(t: Target, sim: float, m: int = 10**6) -> float:
    """Signed standardised deviation (positive: the model is above the observation)."""
    if not math.isfinite(sim):
        return math.nan
    if t.kind == "binomial":
        p = _p(t, sim, m)
        midp = stats.binom.cdf(t.k - 1, t.n, p) + 0.5 * stats.binom.pmf(t.k, t.n, p)
        return float(-stats.norm.ppf(midp))
    if t.kind == "lognormal":
        if sim <= 0:
            return -MISSING_Z
        return (math.log(sim) - math.log(t.observed)) / sd_log(t)
    return float((_g(t.scale, sim) - _g(t.scale, t.observed)) / _se_km(t))


def interval(t: Target) -> tuple[float, float]:
    """The observed figure's 95% interval on the figure's own scale."""
    if t.kind == "binomial":
        from cartsim.stats import binomial_ci

        return binomial_ci(t.k, t.n)
    if t.kind == "lognormal":
        s = sd_log(t)
        return t.observed * math.exp(-Z95 * s), t.observed * math.exp(Z95 * s)
    return float(t.lo), float(t.hi)


def sample(t: Target, sim, rng: np.random.Generator, size: int) -> np.ndarray:
    """Figures a trial of ``t.n`` patients would publish if the expected figure were ``sim``.

    ``sim`` may be an array (one expected figure per model, e.g. ensemble members); the
    result has shape ``(len(sim), size)``: the predictive distribution model + cohort.
    """
    sim = np.atleast_1d(np.asarray(sim, dtype=float))[:, None]
    if t.kind == "binomial":
        return rng.binomial(t.n, np.clip(sim, 0.0, 1.0), (sim.shape[0], size)) / t.n
    if t.kind == "lognormal":
        return np.exp(np.log(sim) + sd_log(t) * rng.standard_normal((sim.shape[0], size)))
    return _g_inv(t.scale, _g(t.scale, sim) + _se_km(t) * rng.standard_normal(
        (sim.shape[0], size)))


def score(t: Target, sim: float, m: int = 10**6) -> dict:
    """One table row: the target, the simulated figure, log-likelihood, z, inside."""
    lo, hi = interval(t)
    return {"trial": t.trial, "experiment": t.experiment, "key": t.key, "name": t.name,
            "kind": t.kind, "observed": t.observed, "observed_label": t.observed_label,
            "lo": lo, "hi": hi, "simulated": sim, "m": m, "loglik": loglik(t, sim, m),
            "z": zscore(t, sim, m), "inside": bool(math.isfinite(sim) and lo <= sim <= hi),
            "source": t.source}


def fmt_figure(x: float) -> str:
    """A simulated or observed figure for the calibration tables ("nan" when not computed)."""
    if not math.isfinite(x):
        return "nan"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
