"""Warnings of the fitting layer (subclasses of :class:`cartsim.CartsimWarning`)."""

from __future__ import annotations

from cartsim import CartsimWarning

__all__ = ["ConvergenceWarning", "FitWarning", "IdentifiabilityWarning"]


class FitWarning(CartsimWarning):
    """Something about a fit the user should know."""


class ConvergenceWarning(FitWarning):
    """The optimiser (or SAEM) stopped without meeting its convergence criterion."""


class IdentifiabilityWarning(FitWarning):
    """A parameter is not identifiable from the data: a flat likelihood profile or a
    singular observed information matrix."""
