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

__all__ = ["PRED_FLOOR", "loglik_terms", "total_loglik"]

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


ERROR_MODELS = ("proportional", "combined")
"""Accepted error models: log-normal only, or log-normal plus additive."""


class ResidualModel:
    """The residual-error parameters of a fit, searched as ``ln(sigma)``.

    Parameters
    ----------
    analytes : analytes in the data, each with its own error parameters.
    kinds : analyte -> ``proportional`` or ``combined`` (default proportional).
    analyte_of_obs : analyte name of every observation.
    scale : analyte -> typical observed level (sets the range of ``sigma_add``).

    Attributes
    ----------
    names : ``sigma_prop_<analyte>`` (-) and, for combined models,
        ``sigma_add_<analyte>`` (analyte units), in search-vector order.
    """

    def __init__(self, analytes, kinds, analyte_of_obs, scale):
        self.analytes = list(analytes)
        kinds = dict(kinds or {})
        for a, k in kinds.items():
            if k not in ERROR_MODELS:
                raise ValueError(f"fit.error.{a}={k!r} is not accepted: expected one of "
                                 f"{', '.join(ERROR_MODELS)}")
        self.kinds = {a: kinds.get(a, "proportional") for a in self.analytes}
        self.names: list[str] = []
        self._prop: dict[str, int] = {}
        self._add: dict[str, int] = {}
        bounds, start = [], []
        for a in self.analytes:
            self._prop[a] = len(self.names)
            self.names.append(f"sigma_prop_{a}")
            bounds.append((math.log(1e-3), math.log(10.0)))
            start.append(math.log(0.5))
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
        self.n_obs = obs.size

    def __len__(self) -> int:
        return len(self.names)

    def sigmas(self, x_res) -> tuple[np.ndarray, np.ndarray]:
        """Per-observation ``(sigma_prop, sigma_add)`` from the search values ``ln(sigma)``."""
        sp = np.empty(self.n_obs)
        sa = np.zeros(self.n_obs)
        for a in self.analytes:
            m = self._masks[a]
            sp[m] = math.exp(x_res[self._prop[a]])
            if a in self._add:
                sa[m] = math.exp(x_res[self._add[a]])
        return sp, sa
