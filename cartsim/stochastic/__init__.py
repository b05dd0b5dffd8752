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

import importlib

from cartsim.stochastic.options import AgentOptions, StochasticOptions

__all__ = ["AgentOptions", "StochasticOptions", "outcome_probabilities", "simulate_network",
           "simulate_stochastic", "trial_simulator"]

_LAZY = {
    "simulate_stochastic": "cartsim.stochastic.engine",
    "simulate_network": "cartsim.stochastic.engine",
    "trial_simulator": "cartsim.stochastic.engine",
    "outcome_probabilities": "cartsim.stochastic.outcomes",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cartsim.stochastic' has no attribute {name!r}")
