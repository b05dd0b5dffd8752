"""The one entry point of fitting: :func:`fit` (re-exported as ``cartsim.fit``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cartsim.fitting.data import Observations, read_observations
from cartsim.fitting.options import FitOptions
from cartsim.scenario import ModelConfig, Scenario, ScenarioError

__all__ = ["fit"]

ODE_SMOOTH = 150
"""SAEM smoothing iterations of an ODE model by default (``fit.n_smooth: null``). Measured on
re-drawn 20-patient ``cd7`` cohorts (issue 17; ``benchmarks/fit.py --replicates``): with the
averaged smoothing of :mod:`cartsim.fitting.population`, one run's Monte Carlo SD of the
weakest typical value (``k_em``) was 0.66 of its standard error after 50 smoothing iterations
and 0.13 after 150 (two pairs of runs), so restarts agree within their standard errors only
with the latter, at 2-3x the run time."""


def fit(data: str | Path | Observations, parameters: Sequence[str] | None = None, *,
        model: str = "cd7", method: str | None = None, patient: str | None = None,
        base: Scenario | None = None, random_state: int | None = 0,
        options: FitOptions | None = None, **kwargs):
    """Fit model parameters to observed kinetics.

    Parameters
    ----------
    data : a CSV file in the format of :mod:`cartsim.fitting.data`, or the
        :class:`~cartsim.fitting.data.Observations` read from one.
    parameters : model parameters to estimate (overrides ``options.parameters``); for
        ``cd7`` also the patient-level ``marrow_blast_pct``, ``blast_growth_per_day``,
        ``cd7neg_blast_fraction``, ``cd7_density`` and the per-patient share of blasts in
        blood ``f_blood_blast`` (:mod:`cartsim.fitting.scenario_parameters`).
    model : ``cd7`` or ``stein2019`` (used when ``base`` is not given).
    method : ``individual`` (maximum likelihood for one patient) or ``population``
        (nonlinear mixed effects by SAEM); default ``options.method`` (``individual``).
    patient : the patient ID of an individual fit (needed when ``data`` holds several).
    base : the scenario every patient starts from (product, disease, regimen
        defaults); the data's covariates and doses replace its fields.
    random_state : seed of the start design (individual) or of the MCMC (population).
    options : a :class:`~cartsim.fitting.options.FitOptions` (e.g. from ``conf/fit/``).
    **kwargs : further keyword options of
        :class:`~cartsim.fitting.individual.IndividualFit` /
        :class:`~cartsim.fitting.population.PopulationFit` (``error``, ``profile``,
        ``n_starts``, ``n_explore``, ...); they override ``options``.

    Returns
    -------
    IndividualFit or PopulationFit
        The fitted estimator (``params_``, ``se_``, ``loglik_``, ``aic_``, ...); its
        Dataset of predictions vs observations is ``cartsim.fitting.fit_dataset(result)``.

    Examples
    --------
    >>> import cartsim
    >>> res = cartsim.fit("experiments/data/stein2019_typical.csv",
    ...                   ["Tmax", "Cmax", "alpha"], model="stein2019")  # doctest: +SKIP
    >>> res.params_["Cmax"]  # doctest: +SKIP
    """
    from cartsim.fitting.individual import IndividualFit
    from cartsim.fitting.population import PopulationFit

    opts = options or FitOptions()
    obs = (data if isinstance(data, Observations)
           else read_observations(data, censor_below_lloq=opts.censor_below_lloq))
    params = list(parameters) if parameters is not None else list(opts.parameters)
    method = method or opts.method
    patient = patient if patient is not None else opts.patient
    base = base or Scenario(model=ModelConfig(name=model))
    rtol = opts.rtol if opts.rtol is not None else (1e-8 if method == "individual" else 1e-7)
    common = dict(base=base, error=opts.error, transforms=opts.transforms, init=opts.init,
                  method=opts.solver_method, rtol=rtol, random_state=random_state,
                  sigma_floor=opts.sigma_floor, sigma_fixed=opts.sigma_fixed)
    if method == "individual":
        kw = dict(common, profile=opts.profile, n_starts=opts.n_starts, n_local=opts.n_local,
                  max_iter=opts.max_iter)
        kw.update(kwargs)
        return IndividualFit(params, **kw).fit(obs, patient=patient)
    if method == "population":
        closed_form = base.model.name == "stein2019"
        kw = dict(common, omega_init=opts.omega_init,
                  n_explore=opts.n_explore or (250 if closed_form else 100),
                  n_smooth=opts.n_smooth or (200 if closed_form else ODE_SMOOTH),
                  n_rw=opts.n_rw, is_samples=opts.is_samples,
                  init_from=opts.init_from, n_chains=opts.n_chains)
        kw.update(kwargs)
        return PopulationFit(params, **kw).fit(obs)
    raise ScenarioError(f"fit.method={method!r} is not accepted: expected individual or "
                        "population")
