"""Fitting the model to observed kinetics (individual and population fits).

Layers (PINTS-style: data -> forward model -> likelihood -> optimiser):

* :mod:`~cartsim.fitting.data` reads a long NONMEM-like CSV (units checked and converted);
* :mod:`~cartsim.fitting.forward` predicts the observations for parameter values, batched;
* :mod:`~cartsim.fitting.likelihood` error models and the censored (M3) log-likelihood;
* :mod:`~cartsim.fitting.transforms` log/logit search space with the parameter bounds;
* :mod:`~cartsim.fitting.nca` a non-compartmental read of each curve: data-driven starts;
* :mod:`~cartsim.fitting.objective` one patient's -LL in search space and its
  Levenberg-Marquardt search;
* :class:`IndividualFit` (maximum likelihood, SE, profiles, a strict convergence verdict)
  and :class:`PopulationFit` (SAEM from several starts, EBEs), scikit-learn style
  estimators;
* :func:`fit` the one entry point; :func:`fit_dataset` the observations-vs-predictions
  Dataset that :mod:`cartsim.plot.gof` draws.

Names are imported lazily so that ``import cartsim.fitting.options`` (done by the
config loader) stays light.
"""

from __future__ import annotations

from cartsim._lazy import lazy_exports

_LAZY = {
    "fit": ("cartsim.fitting.api", "fit"),
    "IndividualFit": ("cartsim.fitting.individual", "IndividualFit"),
    "PopulationFit": ("cartsim.fitting.population", "PopulationFit"),
    "read_observations": ("cartsim.fitting.data", "read_observations"),
    "Observations": ("cartsim.fitting.data", "Observations"),
    "DataError": ("cartsim.fitting.data", "DataError"),
    "ANALYTES": ("cartsim.fitting.data", "ANALYTES"),
    "fit_dataset": ("cartsim.fitting.results", "fit_dataset"),
    "FitOptions": ("cartsim.fitting.options", "FitOptions"),
    "ConvergenceWarning": ("cartsim.fitting.messages", "ConvergenceWarning"),
    "IdentifiabilityWarning": ("cartsim.fitting.messages", "IdentifiabilityWarning"),
    "FitWarning": ("cartsim.fitting.messages", "FitWarning"),
    "simulate_observations": ("cartsim.fitting.synthetic", "simulate_observations"),
    "AssayDesign": ("cartsim.fitting.synthetic", "AssayDesign"),
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
