"""Calibration of the cd7 model and population to the published CD7 CAR-T trials.

The pipeline, one module each:

* :mod:`~cartsim.calibration.targets`: every published figure (``science/targets.md``)
  as a :class:`Target` tied to the experiment that replicates its trial;
* :mod:`~cartsim.calibration.statistics`: the figure read off a simulated trial;
* :mod:`~cartsim.calibration.likelihood`: log-likelihood and standardised deviation
  ``z`` of each published figure given the simulated one (binomial, log-normal, KM);
* :mod:`~cartsim.calibration.run`: simulate the trials and score every target;
* :mod:`~cartsim.calibration.design`: Sobol design over the free parameters, stored
  row by row (resumable), and Nelder-Mead refinement from its best points;
* :mod:`~cartsim.calibration.loto`: leave-one-trial-out predictions and the coverage
  of the out-of-sample uncertainty intervals;
* :mod:`~cartsim.calibration.ensemble`: the plausible parameter sets (history
  matching), their provenance, and propagation into a trial's predictions;
* :mod:`~cartsim.calibration.posterior`: the posterior ensemble by importance sampling,
  its leave-one-trial-out intervals and the coverage each claims (the shipped
  ``ensemble.csv``).

``experiments/calibrate.py`` runs it from ``experiments/calibration.yaml``.
"""

from cartsim.calibration.design import Space, loglik_matrix, refine, run_design, z_matrix
from cartsim.calibration.ensemble import (
    ensemble,
    format_propagation,
    plausible,
    propagate,
    provenance,
    read_ensemble,
    write_best,
    write_ensemble,
)
from cartsim.calibration.likelihood import interval, loglik, sample, score, zscore
from cartsim.calibration.loto import (
    coverage,
    format_loto,
    leave_one_trial_out,
    refine_out_of_sample,
)
from cartsim.calibration.posterior import (
    format_coverage,
    importance_weights,
    posterior_coverage,
    resample,
    run_importance,
)
from cartsim.calibration.run import (
    evaluate,
    format_rows,
    run_experiment,
    simulate_trials,
    total_loglik,
)
from cartsim.calibration.statistics import STATISTICS, statistic
from cartsim.calibration.targets import TARGETS, Target, trials

__all__ = ["STATISTICS", "TARGETS", "Space", "Target", "coverage", "ensemble", "evaluate",
           "format_coverage", "format_loto", "format_propagation", "format_rows",
           "importance_weights", "interval", "leave_one_trial_out", "loglik", "loglik_matrix",
           "plausible", "posterior_coverage", "propagate", "provenance", "read_ensemble",
           "refine", "refine_out_of_sample", "resample", "run_design", "run_experiment",
           "run_importance", "sample", "score", "simulate_trials", "statistic", "total_loglik",
           "trials", "write_best", "write_ensemble", "z_matrix", "zscore"]
