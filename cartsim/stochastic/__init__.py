"""Stochastic (exact/tau-leap hybrid) and agent-based engines of the ``cd7`` reaction network.

* :func:`simulate_stochastic` - scenarios -> Dataset (``simulate``'s call shape; a
  ``replicate`` dim with several realisations);
* :func:`simulate_network` - realisations from raw arrays (full-control layer);
* :func:`trial_simulator` - ``simulate`` stand-in for ``run_trial`` (one realisation per
  virtual patient);
* :func:`outcome_probabilities` - cure, CAR-T loss, relapse and CD7- escape probabilities
  with exact confidence intervals;
* :class:`StochasticOptions` - the options (``conf/stochastic/``).

Imports are lazy: ``import cartsim.stochastic`` loads no Numba kernel.
"""

from __future__ import annotations

from cartsim._lazy import lazy_exports
from cartsim.stochastic.options import AgentOptions, StochasticOptions

_LAZY = {
    "simulate_stochastic": ("cartsim.stochastic.engine", "simulate_stochastic"),
    "simulate_network": ("cartsim.stochastic.engine", "simulate_network"),
    "trial_simulator": ("cartsim.stochastic.engine", "trial_simulator"),
    "outcome_probabilities": ("cartsim.stochastic.outcomes", "outcome_probabilities"),
}

__all__ = ["AgentOptions", "StochasticOptions", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
