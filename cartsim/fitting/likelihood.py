"""Residual error models and the censored (M3) log-likelihood of observations.

Error model (per analyte)
-------------------------
Observations are log-normal around the prediction ``f > 0`` with a
proportional and an optional additive part, written on the log scale
("transform both sides", as in NONMEM)::

    ln Y = ln f + W eps,   eps ~ N(0, 1),   W = sqrt(sigma_prop^2 + (sigma_add / f)^2)

``sigma_prop`` (-) is the SD of ln Y (about the coefficient of variation when
small); ``sigma_add`` (analyte units) dominates near the limit of
quantification, where assays lose relative precision. With
``sigma_add = 0`` this is the log-additive model of Stein et al. 2019.

Log-likelihood of one observation (density of ln Y; M3 for censored data,
Beal 2001, J Pharmacokinet Pharmacodyn 28:481)::

    uncensored:  l = -1/2 ((ln y - ln f) / W)^2 - ln W - 1/2 ln(2 pi)
    censored:    l = ln P(Y < LLOQ) = ln Phi((ln LLOQ - ln f) / W)

The log-likelihood is that of ln Y (add ``-sum ln y`` over uncensored values
for the density of Y); AIC and BIC compare fits to the same data only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr

__all__ = ["PRED_FLOOR", "SIGMA_PROP_FLOOR", "SIGMA_PROP_MAX", "ResidualModel",
           "ln_sigma_prop_mle", "loglik_terms", "total_loglik"]

PRED_FLOOR = 1e-30
"""Predictions are floored here (analyte units) before taking logs: a population
the model clears completely (0) is far below any LLOQ, not a NaN."""

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def loglik_terms(pred, dv, cens, sigma_prop, sigma_add=0.0) -> np.ndarray:
    """Per-observation log-likelihood terms (see the module docstring).

    Parameters
    ----------
    pred : array_like
        Model predictions ``f`` (analyte units); NaN (a failed solve) gives ``-inf``.
    dv : array_like
        Observed values, or the LLOQ where ``cens`` is True.
    cens : array_like of bool
        Left-censored (below the LLOQ) observations.
    sigma_prop, sigma_add : float or array_like
        Error parameters, broadcast against ``pred`` (per observation when
        analytes differ).

    Returns
    -------
    numpy.ndarray
        ``l_j`` for every observation, broadcast shape of the inputs.
    """
    f = np.maximum(np.asarray(pred, dtype=np.float64), PRED_FLOOR)
    sp = np.asarray(sigma_prop, dtype=np.float64)
    sa = np.asarray(sigma_add, dtype=np.float64)
    w = np.sqrt(sp * sp + (sa / f) ** 2)
    z = (np.log(dv) - np.log(f)) / w
    out = np.where(cens, log_ndtr(z), -0.5 * z * z - np.log(w) - _HALF_LOG_2PI)
    return np.where(np.isnan(pred), -np.inf, out)


def total_loglik(pred, dv, cens, sigma_prop, sigma_add=0.0) -> float:
    """Sum of :func:`loglik_terms` (``-inf`` if any prediction failed)."""
    return float(np.sum(loglik_terms(pred, dv, cens, sigma_prop, sigma_add)))


_PENALTY = 1e10
"""Negative log-likelihood standing in for a non-finite one inside the searches here."""


def ln_sigma_prop_mle(f, dv, cens, z0: float, bounds, max_iter: int = 30) -> float:
    """``argmin_z`` of the nll of one analyte's observations over ``z = ln sigma_prop``
    (predictions ``f`` fixed, M3 terms included): safeguarded Newton steps with central
    differences, within ``bounds``; starts from the root-mean-square log residual of the
    quantified values (the exact answer without censoring), or ``z0``."""
    lo, hi = bounds
    q = ~cens
    lf = np.log(np.maximum(f, 1e-30))
    if q.any():
        ms = float(np.mean((np.log(dv[q]) - lf[q]) ** 2))
        z0 = 0.5 * math.log(ms) if ms > 0 else lo
    z = min(max(z0, lo), hi)
    h = 1e-4

    def nll(zs):
        sp = np.exp(np.asarray(zs))[:, None]
        v = -np.sum(loglik_terms(f[None, :], dv[None, :], cens[None, :], sp), axis=1)
        return np.where(np.isfinite(v), v, _PENALTY)

    for _ in range(max_iter):
        v0, vp, vm = nll([z, z + h, z - h])
        d1 = (vp - vm) / (2 * h)
        d2 = (vp - 2 * v0 + vm) / (h * h)
        step = -d1 / d2 if d2 > 0 else -math.copysign(0.5, d1)
        step = min(max(step, -1.0), 1.0)
        zn = min(max(z + step, lo), hi)
        vn = float(nll([zn])[0])
        while vn > v0 and abs(zn - z) > 1e-10:
            zn = z + 0.5 * (zn - z)
            vn = float(nll([zn])[0])
        if abs(zn - z) < 1e-8:
            return zn if vn <= v0 else z
        z = zn
    return z


ERROR_MODELS = ("proportional", "combined")
"""Accepted error models: log-normal only, or log-normal plus additive."""

SIGMA_PROP_FLOOR = 0.1
"""Default lower limit of every ``sigma_prop`` (SD of ln Y, -).

Assumption, tied to assay precision: validated bioanalytical assays are accepted with a
precision (CV) within 15%, 20% at the LLOQ (FDA Bioanalytical Method Validation, Guidance
for Industry, 2018, section III), and qPCR / flow measurements of CAR-T levels are not more
precise than that; an SD of ln Y of 0.1 (~10% CV) is therefore at or below what repeated
measurement of one sample would give. Below it a curve with few quantified values is
interpolated, and the likelihood grows without limit as the SD goes to 0 (it is unbounded
there). A fit that ends on this floor is reported as not converged (the residual SD is not
estimated by the data); set the floor per analyte (``fit.sigma_floor``) for an assay of
known precision, or fix the SD (``fit.sigma_fixed``)."""

SIGMA_PROP_MAX = 10.0
"""Upper search bound of ``sigma_prop`` (-): an SD of ln Y of 10 means the data are ignored;
a fit that ends there is reported as not converged."""


class ResidualModel:
    """The residual-error parameters of a fit, searched as ``ln(sigma)``.

    Parameters
    ----------
    analytes : analytes in the data, each with its own error parameters.
    kinds : analyte -> ``proportional`` or ``combined`` (default proportional).
    analyte_of_obs : analyte name of every observation.
    scale : analyte -> typical observed level (sets the range of ``sigma_add``).
    floor : analyte -> lower search bound of ``sigma_prop`` (-); default
        :data:`SIGMA_PROP_FLOOR`.
    fixed : analyte -> a fixed ``sigma_prop`` (-), not estimated (not in :attr:`names`).

    Attributes
    ----------
    names : ``sigma_prop_<analyte>`` (-) and, for combined models,
        ``sigma_add_<analyte>`` (analyte units), in search-vector order (estimated only).
    fixed : ``sigma_prop_<analyte>`` -> fixed value, for the analytes whose SD is fixed.
    """

    def __init__(self, analytes, kinds, analyte_of_obs, scale, floor=None, fixed=None):
        self.analytes = list(analytes)
        kinds = dict(kinds or {})
        floor = dict(floor or {})
        fixed = dict(fixed or {})
        for a, k in kinds.items():
            if k not in ERROR_MODELS:
                raise ValueError(f"fit.error.{a}={k!r} is not accepted: expected one of "
                                 f"{', '.join(ERROR_MODELS)}")
        for key, table, lo in (("sigma_floor", floor, 0.0), ("sigma_fixed", fixed, 0.0)):
            for a, v in table.items():
                if a not in self.analytes:
                    raise ValueError(f"fit.{key}.{a}: no such analyte in the data (it has "
                                     f"{', '.join(self.analytes)})")
                if not (isinstance(v, (int, float)) and lo < v < SIGMA_PROP_MAX):
                    raise ValueError(f"fit.{key}.{a}={v!r} is not accepted: expected an SD of "
                                     f"ln(observation) in (0, {SIGMA_PROP_MAX:g})")
        self.kinds = {a: kinds.get(a, "proportional") for a in self.analytes}
        self.names: list[str] = []
        self.fixed = {f"sigma_prop_{a}": float(v) for a, v in fixed.items()}
        self.floor = {a: float(floor.get(a, SIGMA_PROP_FLOOR)) for a in self.analytes}
        self._prop: dict[str, int] = {}
        self._add: dict[str, int] = {}
        bounds, start = [], []
        for a in self.analytes:
            if a not in fixed:
                self._prop[a] = len(self.names)
                self.names.append(f"sigma_prop_{a}")
                bounds.append((math.log(self.floor[a]), math.log(SIGMA_PROP_MAX)))
                start.append(math.log(max(0.5, 2 * self.floor[a])))
            if self.kinds[a] == "combined":
                self._add[a] = len(self.names)
                self.names.append(f"sigma_add_{a}")
                s = float(scale[a])
                bounds.append((math.log(1e-9 * s), math.log(10.0 * s)))
                start.append(math.log(0.05 * s))
        self.bounds = bounds
        self.start = np.array(start)
        self.units = {f"sigma_prop_{a}": "1" for a in self.analytes}
        obs = np.asarray(analyte_of_obs)
        self._masks = {a: obs == a for a in self.analytes}
        self._fixed_sp = {a: float(v) for a, v in fixed.items()}
        self.n_obs = obs.size

    def __len__(self) -> int:
        return len(self.names)

    def sigmas(self, x_res) -> tuple[np.ndarray, np.ndarray]:
        """Per-observation ``(sigma_prop, sigma_add)`` from the search values ``ln(sigma)``."""
        sp = np.empty(self.n_obs)
        sa = np.zeros(self.n_obs)
        for a in self.analytes:
            m = self._masks[a]
            sp[m] = (self._fixed_sp[a] if a in self._fixed_sp
                     else math.exp(x_res[self._prop[a]]))
            if a in self._add:
                sa[m] = math.exp(x_res[self._add[a]])
        return sp, sa
