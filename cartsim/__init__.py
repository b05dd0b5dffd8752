"""cartsim: mechanistic simulator of CD7-targeted CAR-T therapy for T-ALL/T-LBL.

Entry points (imported lazily, so ``import cartsim`` stays light):

* :func:`cartsim.load_config` - compose a scenario from ``conf/`` with Hydra overrides;
* :func:`cartsim.simulate` - simulate one or many scenarios, returning an ``xarray.Dataset``;
* :func:`cartsim.endpoints` - per-patient clinical endpoints of a simulation Dataset;
* :func:`cartsim.run_trial` - a virtual cohort (``PopulationSpec`` or ``read_cohort``) through
  simulation, endpoints and the trial report;
* :func:`cartsim.simulate_stochastic`, :func:`cartsim.outcome_probabilities` - the hybrid
  exact/tau-leap and clonal agent engines of the same reaction network (cure, CAR-T loss,
  relapse and CD7- escape probabilities);
* :func:`cartsim.fit` - fit parameters to observed kinetics (individual maximum likelihood
  or population SAEM), see :mod:`cartsim.fitting`;
* :func:`cartsim.run_sweep`, :func:`cartsim.run_sensitivity`, :func:`cartsim.gather` - dense
  sweeps inside one job, global sensitivity (SALib), multiruns gathered into one Dataset;
* :class:`cartsim.Scenario` and its parts (``Patient``, ``Regimen``, ``Product``, ``Disease``,
  ``ModelConfig``, ``SolverOptions``, ``OutputOptions``) for building scenarios by keyword.
"""

from __future__ import annotations

from cartsim._lazy import lazy_exports

__version__ = "0.1.0"


class CartsimWarning(UserWarning):
    """Warnings issued by cartsim."""


_LAZY = {
    "load_config": ("cartsim.config", "load_config"),
    "simulate": ("cartsim.simulation", "simulate"),
    "format_summary": ("cartsim.summary", "format_summary"),
    "load_run_config": ("cartsim.config", "load_run_config"),
    "endpoints": ("cartsim.clinical", "endpoints"),
    "EndpointSettings": ("cartsim.clinical", "EndpointSettings"),
    "run_trial": ("cartsim.trial", "run_trial"),
    "TrialOptions": ("cartsim.trial", "TrialOptions"),
    "PopulationSpec": ("cartsim.population", "PopulationSpec"),
    "draw_cohort": ("cartsim.population", "draw_cohort"),
    "read_cohort": ("cartsim.population", "read_cohort"),
    "trial_summary": ("cartsim.report", "trial_summary"),
    "write_trial_report": ("cartsim.report", "write_trial_report"),
    "write_html_report": ("cartsim.reporting.html", "write_html_report"),
    "write_trial": ("cartsim.reporting", "write_trial"),
    "plot": ("cartsim.plot", None),  # figures subpackage; matplotlib loads on first plot
    "fit": ("cartsim.fitting", "fit"),
    "read_observations": ("cartsim.fitting", "read_observations"),
    "fit_dataset": ("cartsim.fitting", "fit_dataset"),
    "simulate_stochastic": ("cartsim.stochastic", "simulate_stochastic"),
    "outcome_probabilities": ("cartsim.stochastic", "outcome_probabilities"),
    "StochasticOptions": ("cartsim.stochastic.options", "StochasticOptions"),
    "run_sweep": ("cartsim.sweep", "run_sweep"),
    "run_sensitivity": ("cartsim.sweep", "run_sensitivity"),
    "gather": ("cartsim.sweep", "gather"),
    "SweepSpec": ("cartsim.sweep", "SweepSpec"),
    "SweepAxis": ("cartsim.sweep", "SweepAxis"),
    "SensitivityOptions": ("cartsim.sweep", "SensitivityOptions"),
    "get_model": ("cartsim.models", "get_model"),
    "Scenario": ("cartsim.scenario", "Scenario"),
    "ScenarioError": ("cartsim.scenario", "ScenarioError"),
    "ModelConfig": ("cartsim.scenario", "ModelConfig"),
    "Product": ("cartsim.scenario", "Product"),
    "Disease": ("cartsim.scenario", "Disease"),
    "Patient": ("cartsim.scenario", "Patient"),
    "Regimen": ("cartsim.scenario", "Regimen"),
    "SolverOptions": ("cartsim.scenario", "SolverOptions"),
    "OutputOptions": ("cartsim.scenario", "OutputOptions"),
}

__all__ = ["CartsimWarning", "__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
