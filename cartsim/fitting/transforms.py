"""Parameter transformations between model space and the unconstrained search space.

A fitted parameter ``theta`` with bounds ``[lower, upper]`` from its
:class:`~cartsim.parameters.base.Parameter` is searched as ``phi``:

* ``log``:   ``phi = ln(theta)``, for ``lower > 0`` (rates, counts, volumes);
  the search is bounded by ``[ln lower, ln upper]``;
* ``logit``: ``phi = ln((theta - lower) / (upper - theta))``, for a parameter
  bounded on both sides with ``lower <= 0`` (fractions, weights);
* ``none``:  ``phi = theta`` within ``[lower, upper]``.

Random effects of a population fit are additive in ``phi`` (``phi_i = mu +
eta_i``), so ``log`` gives the usual log-normal inter-individual variability.
Standard errors are mapped back by the delta method, ``se(theta) =
|dtheta/dphi| se(phi)``. (PINTS uses the same scheme: Clerx et al. 2019, J Open
Res Softw 7:23.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cartsim.scenario import ScenarioError

__all__ = ["BOUND_TOL", "TRANSFORMS", "Transform", "default_transform"]

TRANSFORMS = ("log", "logit", "none")

LOGIT_LIMIT = 25.0
"""Search bound of a logit parameter (``theta`` within ~1e-11 of the range from a bound), so
that an optimiser pushing a parameter onto its bound stops there instead of drifting."""

BOUND_TOL = 1e-3
"""An estimate is on a bound when its search value is within this of a log/none search
bound (0.1% of a log parameter) or, for a logit parameter, within this fraction of the
range from a bound (assumption: closer than that, the data no longer pull it inside)."""

_EDGE = 1e-9
"""Relative distance from a bound where a start value on the bound is moved (logit/log)."""


@dataclass(frozen=True)
class Transform:
    """Map one parameter between model space (``theta``) and search space (``phi``)."""

    kind: str
    lower: float
    upper: float

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORMS:
            raise ScenarioError(f"transform {self.kind!r} is not accepted: expected one of "
                                f"{', '.join(TRANSFORMS)}")
        if self.kind == "log" and not self.lower > 0:
            raise ScenarioError(f"a log transform needs a lower bound > 0, got {self.lower}")
        if self.kind == "logit" and not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ScenarioError("a logit transform needs finite bounds, got "
                                f"[{self.lower}, {self.upper}]")

    def to_search(self, theta):
        """``phi`` from ``theta`` (values on a bound are moved just inside it)."""
        t = np.asarray(theta, dtype=np.float64)
        if self.kind == "log":
            return np.log(np.clip(t, self.lower * (1 + _EDGE), self.upper))
        if self.kind == "logit":
            span = self.upper - self.lower
            u = np.clip((t - self.lower) / span, _EDGE, 1 - _EDGE)
            return np.log(u / (1 - u))
        return t

    def to_model(self, phi):
        """``theta`` from ``phi``, kept inside ``[lower, upper]``."""
        z = np.asarray(phi, dtype=np.float64)
        if self.kind == "log":
            return np.clip(np.exp(np.clip(z, -700, 700)), self.lower, self.upper)
        if self.kind == "logit":
            return self.lower + (self.upper - self.lower) / (1.0 + np.exp(-np.clip(z, -700, 700)))
        return np.clip(z, self.lower, self.upper)

    def jacobian(self, phi):
        """``dtheta/dphi`` (for the delta method)."""
        z = np.asarray(phi, dtype=np.float64)
        if self.kind == "log":
            return np.exp(z)
        if self.kind == "logit":
            s = 1.0 / (1.0 + np.exp(-z))
            return (self.upper - self.lower) * s * (1 - s)
        return np.ones_like(z)

    def on_bound(self, phi, tol: float = BOUND_TOL) -> bool:
        """Whether ``phi`` sits on a bound: ``theta`` within ``tol`` of the range from a
        bound (``logit``: the search bound itself is far out, at ``LOGIT_LIMIT``, and an
        optimiser approaches it slowly), or ``phi`` within ``tol`` of a search bound
        (``log``, ``none``)."""
        z = float(phi)
        if self.kind == "logit":
            return abs(z) >= math.log((1 - tol) / tol)
        lo, hi = self.search_bounds()
        return bool((lo is not None and z - lo <= tol) or (hi is not None and hi - z <= tol))

    def search_bounds(self) -> tuple[float | None, float | None]:
        """Bounds of ``phi`` for a bounded optimiser (``None``: unbounded)."""
        if self.kind == "log":
            hi = math.log(self.upper) if math.isfinite(self.upper) else None
            return math.log(self.lower), hi
        if self.kind == "logit":
            return -LOGIT_LIMIT, LOGIT_LIMIT
        lo = self.lower if math.isfinite(self.lower) else None
        hi = self.upper if math.isfinite(self.upper) else None
        return lo, hi


def default_transform(lower: float, upper: float, kind: str | None = None) -> Transform:
    """``log`` if ``lower > 0``, else ``logit`` if both bounds are finite, else ``none``."""
    if kind is None:
        if lower > 0:
            kind = "log"
        elif math.isfinite(lower) and math.isfinite(upper):
            kind = "logit"
        else:
            kind = "none"
    return Transform(kind, float(lower), float(upper))
