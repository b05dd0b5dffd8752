"""Options of the stochastic and agent engines (``conf/stochastic/``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StochasticOptions"]


@dataclass
class StochasticOptions:
    """How ``engine=stochastic`` / ``engine=agent`` simulate."""
