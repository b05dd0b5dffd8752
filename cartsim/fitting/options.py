"""Options of ``cartsim task=fit`` (``conf/fit/``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FitOptions"]


@dataclass
class FitOptions:
    """How ``cartsim task=fit`` fits the model to ``data``."""
