"""Population fit: nonlinear mixed effects by SAEM, with empirical Bayes estimates.

Model (mu-referenced, in the search space of :mod:`cartsim.fitting.transforms`)::

    phi_i = mu + eta_i,   eta_i ~ N(0, Omega),   Omega = diag(omega_1^2, ..., omega_p^2)
    theta_i = T^-1(phi_i)                        (log: log-normal IIV)
    y_ij | phi_i ~ residual model of :mod:`cartsim.fitting.likelihood` (M3 for BLQ)

Algorithm: stochastic approximation EM (Delyon, Lavielle & Moulines 1999, Ann
Stat 27:94; Kuhn & Lavielle 2005, Comput Stat Data Anal 49:1020), with the
settings of Monolix / nlmixr2 (Lavielle 2014, Mixed Effects Models for the
Population Approach, ch. 9):

1. simulation: ``n_mcmc`` Markov chains per patient (``auto``: enough for 50
   parameter vectors per iteration with a closed-form model, :data:`MCMC_ROWS`;
   1 for ODE models), each updated per iteration by three Metropolis-Hastings
   kernels: ``n_prior`` independent proposals from ``N(mu, Omega)`` (kernel 1),
   ``n_rw`` random walks ``phi + s N(0, Omega)`` of all components (kernel 2) and
   ``n_rw_component`` sweeps of one-component random walks (kernel 3), with
   per-chain scales ``s`` adapted towards 30% acceptance; every kernel is one
   compiled batch of all chains of all patients;
2. stochastic approximation of the sufficient statistics
   ``S1 = mean phi``, ``S2 = mean phi^2`` over all chains, with step ``gamma_k = 1``
   for ``n_explore`` iterations, then ``j^-a`` for the ``n_smooth`` smoothing iterations
   ``j = 1, 2, ...`` (``step_exponent`` ``a``: 1 for a closed-form model, as Monolix; 0.6 for
   an ODE model, :data:`STEP_EXPONENT_ODE`, whose estimates are then the average of the
   iterates over the second half of the smoothing phase, Polyak-Ruppert);
3. maximisation: ``mu = S1``, ``omega^2 = S2 - S1^2`` (or a fixed value,
   ``omega_fixed``), and the residual parameters by maximising the conditional
   log-likelihood of the current chains and moving towards it with step ``gamma_k``
   (no closed form with M3 and the combined error model). Simulated annealing: for
   the first ``n_anneal`` iterations (default ``n_explore``) no variance, omega^2 or
   sigma^2, falls by more than the factor ``anneal`` (0.95) per iteration, so the
   chains keep exploring while the typical values move.

After SAEM (:mod:`cartsim.fitting.population_estimates`):

* empirical Bayes estimates (EBE): conditional modes
  ``argmax_phi l_i(phi) + ln N(phi; mu, Omega)`` per patient (Levenberg-Marquardt
  from the best sample of the chains);
* standard errors of ``mu``, ``omega^2`` and ``ln sigma`` from the observed
  information by Louis' principle, ``I = sum_i (E[-H_i] - Var[g_i])`` with
  ``g_i, H_i`` the gradient and Hessian of the complete-data log-likelihood,
  expectations over the chains' samples during the smoothing phase (Kuhn &
  Lavielle 2005, section 2.3); delta method to ``theta`` and ``omega``;
* the log-likelihood ``sum_i ln int p(y_i | phi) p(phi) dphi`` by importance
  sampling with a multivariate Student-t (5 df) proposal fitted to each patient's
  conditional mean and covariance, hence AIC and BIC, with its Monte Carlo
  standard error;
* for ODE models (``refine``), the maximum of that importance-sampling log-likelihood
  over ``(mu, omega^2, sigma)`` with the draws held fixed (Monte Carlo maximum
  likelihood, Geyer 1994, J R Stat Soc B 56:261; no further solves), started at the
  SAEM estimate, and the standard errors from Louis' information with the expectations
  taken by the importance weights of the same draws. Why (issue 17): with one chain per
  patient and ~250 iterations, the SAEM estimate of weakly identified ``cd7`` typical
  values stayed up to 0.5 standard errors from this maximum (in the same direction over
  re-drawn cohorts), and the chains' Louis information, whose conditional variances a
  single autocorrelated chain underestimates, gave standard errors 5-30% too small.
  ``loglik_`` is then that of the same draws at the refined estimate (a maximum over
  them, so optimistic by about its Monte Carlo SE). A refinement that ends on its search
  box (:data:`~cartsim.fitting.population_estimates.REFINE_BOX`) is discarded and the
  run keeps its SAEM estimate (``restarts_[k]["refined"]`` False).

Start and restarts (issue 17): SAEM starts from the data (median and spread of
quick individual fits, ``init_from``; the starting omegas at least ``omega_init``,
1 by default), not from literature values, and runs ``n_chains`` times: the first
run with every patient at its individual estimate, the others from starts displaced
by draws of the starting Omega. The run with the highest log-likelihood gives the
estimates; ``restarts_`` keeps all of them, and the fit is converged only when the
chosen run is stationary over the smoothing phase (:data:`DRIFT_SE`), its standard
errors are finite, no estimated omega has collapsed to 0 and the restarts agree
(typical values within one standard error, log-likelihoods within ``max(1, 3 x``
the Monte Carlo SE)); each failure is a
:class:`~cartsim.fitting.messages.ConvergenceWarning` that names the parameters
concerned (``problem_parameters_``) and how to fix them. Proposals outside the
search box are rejected (the model clips there and the chain would drift on a
flat likelihood).

Why written here: the Python NLME libraries at hand (e.g. ``saemix`` is R;
``pharmpy`` drives NONMEM/nlmixr2, an R/Fortran stack; ``nlmixr2`` is R)
would need an external runtime and could not call cartsim's compiled batch
solver, which is where the time goes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import optimize

from cartsim.fitting.data import Observations
from cartsim.fitting.forward import ForwardModel
from cartsim.fitting.likelihood import ResidualModel, ln_sigma_prop_mle, loglik_terms
from cartsim.fitting.messages import FitWarning
from cartsim.fitting.population_estimates import (
    DRIFT_ABS,
    DRIFT_SE,
    REFINE_INFLATE,
    SAEMEstimates,
)
from cartsim.fitting.transforms import default_transform
from cartsim.scenario import ModelConfig, Scenario, ScenarioError

__all__ = ["PopulationFit"]

_LOG_2PI = math.log(2 * math.pi)

MCMC_ROWS = 50
"""With ``n_mcmc="auto"``, a closed-form model runs ``ceil(50 / patients)`` MCMC chains per
patient, so that every SAEM iteration draws at least 50 individual parameter vectors (as
Monolix's automatic number of chains; assumption: with fewer, the stochastic approximation of
the omega^2 of a small cohort is too noisy to settle within the default iterations)."""

IS_SAMPLES = 1000
"""Importance samples per patient for a closed-form model by default: on the 14 real
patients (``stein2019``, 5 random effects) 50 samples scatter the log-likelihood by about
+-1 between seeds, enough to call agreeing restarts different; 1000 by +-0.2 (measured,
issue 17)."""

STEP_EXPONENT_ODE = 0.6
"""Smoothing steps ``gamma_j = j^-0.6`` with iterate averaging (Polyak-Ruppert) for ODE models.

Why (issue 17): with one chain per patient and steps ``1/j`` the estimate of a weakly
identified parameter (``k_em`` of ``cd7``: most of its information is missing, so the EM map
contracts slowly) moves from where the exploration phase left it only as ``j^-(1-lambda)``
(Delyon, Lavielle & Moulines 1999, section 6); steps ``j^-a`` with ``1/2 < a < 1`` forget the
start faster, and the average of the iterates has the optimal Monte Carlo variance for the
draws it uses (Polyak & Juditsky 1992, SIAM J Control Optim 30:838). 0.6: assumption within
that range. Measured on re-drawn 20-patient cohorts (100 + 50 iterations), averaging alone
left one run's Monte Carlo SD of ``k_em`` at 1.1 standard errors: the number of effective
draws, not the step size, limits it (:data:`COMPONENT_SWEEPS_ODE` and 150 smoothing
iterations, :data:`cartsim.fitting.api.ODE_SMOOTH`, bring it to 0.15)."""

COMPONENT_SWEEPS_ODE = 1
"""Sweeps of one-component random walks (kernel 3) per smoothing iteration for ODE models
(none while exploring). Why (issue 17, measured on re-drawn 20-patient ``cd7`` cohorts): the
all-component random walk takes steps sized for the best identified parameter, so a weakly
identified one (``k_em``) hardly moves between iterations. One run's Monte Carlo SD of
``k_em`` (100 + 50 iterations, averaged smoothing): 1.1 standard errors with kernels 1 and 2
only, 0.66 with this sweep (at ~1.5x the run time)."""

IS_SAMPLES_ODE = 300
"""Importance samples per patient for an ODE model by default (each a solve: 6000 for 20
patients, ~25% of the solves of the default SAEM run). With 300, the maximum-likelihood
refinement (:data:`REFINE_SAMPLES`) of a re-drawn 20-patient ``cd7`` cohort scattered over four
independent draw sets by 0.04-0.14 standard errors of the typical values (measured, issue 17)."""

REFINE_SAMPLES = 100
"""With ``refine=None``, an ODE model's SAEM run ends with the Monte Carlo maximum-likelihood
refinement of :meth:`~cartsim.fitting.population_estimates.SAEMEstimates._refine_ml` when it
draws at least this many importance samples per patient (assumption: with fewer, e.g. the 20 of
a quick look, the maximum over the draws is too noisy to improve on SAEM)."""

LOGIT_INNER = 6.9
"""Start values of logit parameters are kept within +-6.9 (0.1% of the range from a bound):
an individual estimate on a bound would otherwise start SAEM where the chain cannot move
(assumption)."""


def _log_ratio(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``new - old`` of log-likelihoods, with a state of likelihood 0 (``old = -inf``, e.g.
    a start the model rejects) always left for a finite proposal, and never for another
    impossible one."""
    with np.errstate(invalid="ignore"):
        d = new - old
    return np.where(np.isneginf(old), np.where(np.isfinite(new), np.inf, -np.inf), d)


class PopulationFit(SAEMEstimates):
    """Nonlinear mixed-effects fit of a cohort by SAEM (scikit-learn estimator contract).

    Parameters
    ----------
    parameters : model parameters with a typical value and a log-normal (or
        logit-normal) random effect each; for ``cd7`` also the patient-level scenario
        fields and observation parameters of :mod:`cartsim.fitting.scenario_parameters`.
    model, base, error, transforms, init : as :class:`~cartsim.fitting.individual.IndividualFit`.
    omega_init : smallest starting SD of the random effects (search units), per parameter or
        one value (1 ~ a 100% CV, as Monolix starts; large, so that the chains explore).
    omega_fixed : parameter -> a fixed random-effect SD (search units), not estimated (e.g. a
        literature value where the data cannot estimate it); its omega has no standard
        error and does not count in AIC/BIC.
    init_from : ``individual`` (median and spread of individual fits), ``model`` (scenario
        values or ``init``), ``auto`` (``individual`` for ``stein2019``, else ``model``).
    n_chains : SAEM runs from different starts (1: a single run).
    n_mcmc : Markov chains per patient within a run; ``auto``: ``ceil(50 / patients)`` for
        the closed-form ``stein2019`` (:data:`MCMC_ROWS`), 1 for ODE models (each chain
        is a solve per proposal).
    n_prior, n_rw, n_rw_component : per iteration, the proposals from the population
        distribution (kernel 1; None: 2 for ``stein2019``, 1 for ODE models), random walks
        of all components (kernel 2) and sweeps of one-component random walks (kernel 3,
        one batch per parameter; None: 2 for ``stein2019``; for ODE models, where every
        batch is a set of solves, none while exploring and :data:`COMPONENT_SWEEPS_ODE` per
        smoothing iteration). Monolix and nlmixr2 run 2, 2, 2.
    anneal, n_anneal : simulated annealing: for the first ``n_anneal`` iterations (None:
        ``n_explore``; 0: no annealing) omega^2 and sigma^2 fall by at most the factor
        ``anneal`` per iteration.
    sigma_floor, sigma_fixed : as :class:`~cartsim.fitting.individual.IndividualFit`.
    n_explore, n_smooth : SAEM iterations with step 1 and with step ``1/k`` (250 and 200,
        Monolix's defaults; on the 14 real patients 100 + 50 left restarts displaced by
        the starting omegas apart by up to 1.7 standard errors).
    step_exponent : exponent ``a`` of the smoothing steps ``j^-a``, in (0.5, 1]; below 1 the
        estimates are the average of the iterates over the second half of the smoothing
        phase (None: 1 for ``stein2019``, :data:`STEP_EXPONENT_ODE` for ODE models).
    is_samples : importance samples per patient for the log-likelihood (0: skip; None:
        :data:`IS_SAMPLES` for ``stein2019``, :data:`IS_SAMPLES_ODE` for ODE models).
    refine : end every SAEM run with the maximum of the importance-sampling log-likelihood
        over the same draws, and take the standard errors from those draws (None: for ODE
        models with at least :data:`REFINE_SAMPLES` importance samples; see the module
        docstring).
    method, rtol : ODE solver settings.
    random_state : seed of the MCMC and importance sampling.

    Attributes
    ----------
    params_ : typical values (model units) and residual error parameters.
    omega_ : SD of each random effect (search units; for log parameters ~ the CV).
    sigma_ : residual error parameters.
    se_ : standard errors of ``params_`` entries and of ``omega_<name>``.
    ci_ : Wald 95% intervals of ``params_`` (from ``mu +- 1.96 se`` in search space).
    ebe_ : individual estimates (conditional modes), parameter -> array per patient.
    eta_ : ``phi_i - mu`` at the EBEs, shape (patients, parameters).
    loglik_, aic_, bic_ : importance-sampling log-likelihood (of ln Y), AIC, BIC.
    loglik_se_ : Monte Carlo standard error of ``loglik_``.
    converged_ : True when the chosen run is stationary over the smoothing phase, its
        standard errors are finite, no estimated omega collapsed to 0 and the restarts
        agree (see :meth:`_verdict`).
    status_ : ``converged``, ``parameters still drifting``, ``se_not_finite``,
        ``omega_collapsed`` or ``restarts_disagree`` (the first failure; every failure is
        warned about).
    problem_parameters_ : parameter -> the failed checks that name it (empty when
        converged): e.g. the parameters on which the restarts disagree.
    omega_fixed_ : parameter -> its fixed random-effect SD (``omega_fixed``).
    trace_ : per iteration, ``mu``, ``omega^2`` and the residual parameters (chosen run):
        the iterates (with ``step_exponent`` < 1 the estimates are their average over the
        second half of the smoothing phase).
    restarts_ : one dict per SAEM run (``start``, ``params``, ``omega``, ``mu_se``,
        ``loglik``, ``loglik_se``, ``stationary``, ``refined``, ``best``); the run with the highest
        log-likelihood gives the estimates.
    restart_spread_ : parameter -> range of its typical value over the runs (search units);
        ``restart_spread_se_`` the largest of them in units of the standard error (the
        chosen run's, else the largest finite one of the others);
        ``restart_loglik_spread_`` the range of the log-likelihoods.
    init_from_, init_mu_ : how SAEM was started and the start (search units).
    ipred_, ppred_ : individual (EBE) and population (typical, eta = 0) predictions of
        every observation.
    patient_ids_ : patients in order.
    """

    def __init__(self, parameters: Sequence[str], *, model: str = "cd7",
                 base: Scenario | None = None, error: Mapping[str, str] | None = None,
                 transforms: Mapping[str, str] | None = None,
                 init: Mapping[str, float] | None = None,
                 omega_init: float | Mapping[str, float] = 1.0, n_explore: int = 250,
                 n_smooth: int = 200, n_rw: int = 1, is_samples: int | None = None,
                 method: str = "bdf", rtol: float = 1e-7, init_from: str = "auto",
                 n_chains: int = 3, n_rw_component: int | None = None,
                 n_prior: int | None = None, n_mcmc: int | str = "auto", anneal: float = 0.95,
                 n_anneal: int | None = None, omega_fixed: Mapping[str, float] | None = None,
                 sigma_floor: Mapping[str, float] | None = None,
                 sigma_fixed: Mapping[str, float] | None = None,
                 step_exponent: float | None = None, refine: bool | None = None,
                 random_state: int | None = 0):
        self.parameters = list(parameters)
        self.model = model
        self.base = base
        self.error = dict(error or {})
        self.transforms = dict(transforms or {})
        self.init = dict(init or {})
        self.omega_init = omega_init
        self.n_explore = n_explore
        self.n_smooth = n_smooth
        self.n_rw = n_rw
        self.is_samples = is_samples
        self.method = method
        self.rtol = rtol
        self.init_from = init_from
        self.n_chains = n_chains
        self.n_rw_component = n_rw_component
        self.n_prior = n_prior
        self.n_mcmc = n_mcmc
        self.anneal = anneal
        self.n_anneal = n_anneal
        self.omega_fixed = dict(omega_fixed or {})
        self.sigma_floor = dict(sigma_floor or {})
        self.sigma_fixed = dict(sigma_fixed or {})
        self.step_exponent = step_exponent
        self.refine = refine
        self.random_state = random_state

    # -- helpers -------------------------------------------------------------------------------
    def _theta(self, phi: np.ndarray) -> np.ndarray:
        phi = np.atleast_2d(phi)
        return np.column_stack([t.to_model(phi[:, k]) for k, t in enumerate(self._tfs)])

    def _preds(self, patients, phi) -> list[np.ndarray]:
        return self._fm.predict(patients, self._theta(phi))

    def _ll_patient(self, i: int, f: np.ndarray, x_res: np.ndarray) -> float:
        idx = self._fm.index[i]
        sp, sa = self._sig_cache(x_res)
        v = float(np.sum(loglik_terms(f, self._dv[idx], self._cens[idx], sp[idx], sa[idx])))
        return v if math.isfinite(v) else -np.inf

    def _sig_cache(self, x_res):
        key = tuple(np.round(x_res, 15))
        if getattr(self, "_sig_key", None) != key:
            self._sig_key = key
            self._sig_val = self._resid.sigmas(x_res)
        return self._sig_val

    def _rows(self, pats: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a batch of evaluations of patients ``pats``: the observation index of their
        concatenated predictions, where each evaluation's block starts, and its patient."""
        idx = [self._fm.index[int(i)] for i in pats]
        sizes = np.array([ix.size for ix in idx])
        if np.any(sizes == 0):  # a patient without observations cannot be fitted
            raise ScenarioError("population fit: a patient has no observations")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return np.concatenate(idx), starts, np.asarray(pats, dtype=np.int64)

    def _ll_rows(self, preds: Sequence[np.ndarray], x_res, rows) -> np.ndarray:
        """Log-likelihood of every evaluation of a batch (:meth:`_rows`), in one array
        operation over all its observations; ``-inf`` where a prediction failed."""
        oi, starts, _ = rows
        sp, sa = self._sig_cache(x_res)
        t = loglik_terms(np.concatenate(preds), self._dv[oi], self._cens[oi], sp[oi], sa[oi])
        v = np.add.reduceat(t, starts)
        return np.where(np.isfinite(v), v, -np.inf)

    def _inside(self, phi) -> np.ndarray:
        """Rows of ``phi`` inside the search bounds: outside them the model value is clipped
        to the bound, the likelihood is flat and a chain would drift away unchecked, so
        such proposals are rejected (the random effects live on the bounded search box)."""
        return np.all((phi >= self._box[0]) & (phi <= self._box[1]), axis=1)

    @staticmethod
    def _log_prior(phi, mu, om2) -> np.ndarray:
        d = np.atleast_2d(phi) - mu
        return -0.5 * np.sum(d * d / om2 + np.log(om2) + _LOG_2PI, axis=-1)

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, data: Observations) -> PopulationFit:
        """Estimate typical values, random-effect SDs and residual error from ``data``.

        Runs SAEM ``n_chains`` times from different starts (the first from the data-driven
        start of :meth:`_initial`, the others from it displaced by ``N(0, Omega_0)`` draws),
        keeps the run with the highest log-likelihood and reports the spread of all.

        Returns
        -------
        self
        """
        if not self.parameters:
            raise ScenarioError("fit.parameters is empty: name at least one model parameter")
        if data.n_patients < 2:
            raise ScenarioError(f"{data.source}: a population fit needs at least 2 patients "
                                f"(got {data.n_patients}); use an individual fit")
        if not (isinstance(self.n_chains, (int, np.integer)) and self.n_chains >= 1):
            raise ScenarioError(f"fit.n_chains={self.n_chains!r} is not accepted: expected an "
                                "integer >= 1")
        if self.init_from not in ("auto", "individual", "model"):
            raise ScenarioError(f"fit.init_from={self.init_from!r} is not accepted: expected "
                                "auto, individual or model")
        for key, value, ok, accepted in (
                ("n_mcmc", self.n_mcmc, self.n_mcmc == "auto" or (
                    isinstance(self.n_mcmc, (int, np.integer)) and self.n_mcmc >= 1),
                 "auto or an integer >= 1"),
                ("n_prior", self.n_prior, self.n_prior is None or (
                    isinstance(self.n_prior, (int, np.integer)) and self.n_prior >= 0),
                 "null or an integer >= 0"),
                ("n_anneal", self.n_anneal, self.n_anneal is None or (
                    isinstance(self.n_anneal, (int, np.integer)) and self.n_anneal >= 0),
                 "null or an integer >= 0"),
                ("anneal", self.anneal, isinstance(self.anneal, (int, float))
                 and 0 < self.anneal <= 1, "a factor in (0, 1]"),
                ("refine", self.refine, self.refine is None or isinstance(self.refine, bool),
                 "null, true or false"),
                ("step_exponent", self.step_exponent, self.step_exponent is None or (
                    isinstance(self.step_exponent, (int, float))
                    and not isinstance(self.step_exponent, bool)
                    and 0.5 < self.step_exponent <= 1), "null or a number in (0.5, 1]")):
            if not ok:
                raise ScenarioError(f"fit.{key}={value!r} is not accepted: expected {accepted}")
        self._om_fixed_sd()  # validates omega_fixed before any work
        base = self.base or Scenario(model=ModelConfig(name=self.model))
        fm = ForwardModel(data, data.scenarios(base), self.parameters, method=self.method,
                          rtol=self.rtol)
        self._fm = fm
        self._base = base
        self._tfs = [default_transform(fm.spec(n).lower, fm.spec(n).upper,
                                       self.transforms.get(n)) for n in self.parameters]
        scale = {a: float(np.median(data.dv[data.analyte == a])) for a in data.analytes}
        self._resid = ResidualModel(data.analytes, self.error, data.analyte, scale,
                                    floor=self.sigma_floor, fixed=self.sigma_fixed)
        self._dv, self._cens = data.dv, data.cens
        self.patient_ids_ = list(data.ids)
        self.data_ = data
        mu0, om2_0 = self._initial(data)
        self.init_mu_ = mu0
        fixed = self._om_fixed_sd()
        om2_start = np.where(np.isnan(fixed), om2_0, fixed ** 2)
        streams = np.random.SeedSequence(self.random_state).spawn(self.n_chains + 1)
        runs = []
        for c in range(self.n_chains):
            rng = np.random.default_rng(streams[c])
            start = mu0 if c == 0 else mu0 + np.sqrt(om2_0) * rng.standard_normal(mu0.size)
            start = np.clip(start, self._lo, self._hi)
            # the first run starts every patient at its individual estimate (when there is
            # one); the others at their start, so that they test start-independence
            phi0 = self._phi_init if c == 0 else None
            runs.append(self._saem(start, om2_start, rng, phi0))
        ll = np.array([r["loglik"] if math.isfinite(r["loglik"]) else -np.inf for r in runs])
        best = runs[int(np.argmax(ll))] if np.any(np.isfinite(ll)) else runs[0]
        self._runs = runs
        self.trace_ = best["trace"]
        self.mu_, self.omega2_, self.x_res_ = best["mu"], best["om2"], best["x_res"]
        self.cov_, self.information_ = best["cov"], best["info"]
        self.loglik_, self.loglik_se_ = best["loglik"], best["loglik_se"]
        self._ebe(best["best_phi"], best["mu"], best["om2"], best["x_res"])
        self._summaries()
        self._restart_report(runs, best)
        self._verdict(best)
        return self

    def _initial(self, data: Observations) -> tuple[np.ndarray, np.ndarray]:
        """Start of SAEM in search space: ``(mu_0, omega_0^2)``.

        ``individual`` (default for ``stein2019``): per patient an individual fit (its
        data-driven start and a small multistart, :class:`IndividualFit`), clipped inside the
        search bounds; ``mu_0`` the median over patients, ``omega_0`` their spread
        (1.4826 MAD), at least ``omega_init``, at most 2. ``model``: the scenario values
        (or ``init``), ``omega_0 = omega_init``. Values in ``init`` always win.
        """
        from cartsim.fitting.individual import IndividualFit

        fm, p = self._fm, len(self.parameters)
        bounds = [t.search_bounds() for t in self._tfs]
        lo = np.array([-LOGIT_INNER if t.kind == "logit" else (-np.inf if b[0] is None else b[0])
                       for t, b in zip(self._tfs, bounds)])
        hi = np.array([LOGIT_INNER if t.kind == "logit" else (np.inf if b[1] is None else b[1])
                       for t, b in zip(self._tfs, bounds)])
        self._lo, self._hi = lo, hi
        self._box = (np.array([-np.inf if b[0] is None else b[0] for b in bounds]),
                     np.array([np.inf if b[1] is None else b[1] for b in bounds]))
        self._phi_init = None
        om0 = self.omega_init
        om_min = np.array([(om0.get(k, 0.5) if isinstance(om0, Mapping) else float(om0))
                           for k in self.parameters])
        mu = np.array([t.to_search(self.init.get(k, fm.base_value(k)))
                       for t, k in zip(self._tfs, self.parameters)], dtype=np.float64)
        om = om_min.copy()
        how = self.init_from
        if how == "auto":
            how = "individual" if fm.model_name == "stein2019" else "model"
        self.init_from_ = how
        if how == "individual":
            phis, ok = [], []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitWarning)
                for pid in data.ids:
                    ind = IndividualFit(self.parameters, base=self._base, error=self.error,
                                        transforms=self.transforms, init=self.init,
                                        n_local=2, method=self.method, rtol=self.rtol,
                                        sigma_floor=self.sigma_floor,
                                        sigma_fixed=self.sigma_fixed,
                                        random_state=self.random_state)
                    try:
                        ind.fit(data, patient=pid)
                    except ScenarioError:
                        continue
                    if math.isfinite(ind.loglik_):
                        phis.append(ind.x_[:p])
                        ok.append(len(ok))
                    else:
                        ok.append(-1)
            if len(phis) >= 2:
                phi = np.clip(np.array(phis), lo, hi)
                mu = np.median(phi, axis=0)
                mad = 1.4826 * np.median(np.abs(phi - mu), axis=0)
                om = np.clip(mad, om_min, 2.0)
                for k, name in enumerate(self.parameters):
                    if name in self.init:
                        mu[k] = self._tfs[k].to_search(self.init[name])
                self._phi_init = np.array([phi[k] if k >= 0 else mu for k in ok])
            self.individual_starts_ = np.array(phis)
        return np.clip(mu, lo, hi), om ** 2

    def _om_fixed_sd(self) -> np.ndarray:
        """Per parameter the fixed random-effect SD of ``omega_fixed`` (NaN: estimated)."""
        for k, v in self.omega_fixed.items():
            if k not in self.parameters:
                raise ScenarioError(f"fit.omega_fixed.{k}: {k!r} is not among fit.parameters "
                                    f"({', '.join(self.parameters)})")
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 5):
                raise ScenarioError(f"fit.omega_fixed.{k}={v!r} is not accepted: expected a "
                                    "random-effect SD in search units in (0, 5]")
        return np.array([float(self.omega_fixed.get(k, math.nan)) for k in self.parameters])

    def _mh(self, state, prop, rows, x_res, mu, om2, rng, symmetric: bool):
        """One Metropolis-Hastings step of every chain from proposals ``prop``: ``symmetric``
        (a random walk) weighs in the prior ratio; an independence proposal from the prior
        (kernel 1) accepts on the likelihood ratio alone. Returns the new state and which
        proposals were accepted."""
        phi, ll, preds = state
        pp = self._preds(rows[2], prop)
        llp = np.where(self._inside(prop), self._ll_rows(pp, x_res, rows), -np.inf)
        log_r = _log_ratio(llp, ll)
        if symmetric:
            log_r = log_r + self._log_prior(prop, mu, om2) - self._log_prior(phi, mu, om2)
        acc = np.log(rng.uniform(size=ll.size)) < log_r
        phi = np.where(acc[:, None], prop, phi)
        ll = np.where(acc, llp, ll)
        preds = [pp[r] if acc[r] else preds[r] for r in range(ll.size)]
        return (phi, ll, preds), acc

    def _settings(self) -> tuple[int, int, int, int, int]:
        """``(chains per patient, kernel-1, kernel-2, kernel-3 sweeps, annealed iterations)``
        with the ``auto``/None defaults resolved (see the class docstring)."""
        closed = self._fm.model_name == "stein2019"
        n_mcmc = self.n_mcmc
        if n_mcmc == "auto":
            n_mcmc = max(1, math.ceil(MCMC_ROWS / self.data_.n_patients)) if closed else 1
        n_prior = self.n_prior if self.n_prior is not None else (2 if closed else 1)
        n_comp = self.n_rw_component
        if n_comp is None:  # ODE models: none while exploring, COMPONENT_SWEEPS_ODE smoothing
            n_comp = 2 if closed else -COMPONENT_SWEEPS_ODE
        n_anneal = self.n_explore if self.n_anneal is None else self.n_anneal
        return int(n_mcmc), int(n_prior), int(self.n_rw), int(n_comp), int(n_anneal)

    def _step_exponent(self) -> float:
        """Exponent ``a`` of the smoothing steps ``gamma_k = k^-a`` (``step_exponent``; None:
        1 for a closed-form model, :data:`STEP_EXPONENT_ODE` for an ODE model)."""
        if self.step_exponent is not None:
            return float(self.step_exponent)
        return 1.0 if self._fm.model_name == "stein2019" else STEP_EXPONENT_ODE

    def _is_samples(self) -> int:
        """Importance samples per patient (``is_samples``; None: :data:`IS_SAMPLES` for a
        closed-form model, :data:`IS_SAMPLES_ODE` for an ODE model, where each is a solve)."""
        if self.is_samples is None:
            return IS_SAMPLES if self._fm.model_name == "stein2019" else IS_SAMPLES_ODE
        return int(self.is_samples)

    def _refine(self) -> bool:
        """Whether SAEM ends with the maximum-likelihood refinement (``refine``; None: for an
        ODE model with at least :data:`REFINE_SAMPLES` importance samples per patient)."""
        if self.refine is not None:
            return bool(self.refine)
        return self._fm.model_name != "stein2019" and self._is_samples() >= REFINE_SAMPLES

    def _saem(self, mu, om2, rng, phi0=None) -> dict:
        """One SAEM run from ``(mu, omega^2)``: the estimates, trace, standard errors and
        importance-sampling log-likelihood (see the module docstring). ``n_mcmc`` chains
        per patient (rows ``c n + i``) enter the sufficient statistics, the residual step
        and Louis' information as independent draws of the conditional distribution."""
        n, p = self.data_.n_patients, len(self.parameters)
        n_mcmc, n_prior, n_rw, n_comp, n_anneal = self._settings()
        rows = self._rows(np.tile(np.arange(n), n_mcmc))
        n_row = n * n_mcmc
        mu, om2 = mu.copy(), om2.copy()
        om_free = np.isnan(self._om_fixed_sd())
        x_res = self._resid.start.copy()
        phi = np.tile(mu, (n_row, 1)) if phi0 is None else np.tile(phi0, (n_mcmc, 1))
        preds = self._preds(rows[2], phi)
        state = (phi, self._ll_rows(preds, x_res, rows), preds)
        scale_rw = np.full(n_row, 0.5)
        scale_c = np.full((n_row, p), 0.5)
        s1, s2 = mu.copy(), om2 + mu ** 2
        shrink = 0.5 * math.log(self.anneal)  # largest decrease of ln sigma per iteration
        n_iter = self.n_explore + self.n_smooth
        trace = np.empty((n_iter, 2 * p + len(self._resid)))
        samples: list[np.ndarray] = []
        grads: list[np.ndarray] = []
        hess: list[np.ndarray] = []
        best_phi, best_post = phi.copy(), state[1] + self._log_prior(phi, mu, om2)
        # smoothing steps k^-a; with a < 1 the estimates are the average of the iterates over
        # the second half of the smoothing phase (Polyak-Ruppert, STEP_EXPONENT_ODE)
        a = self._step_exponent()
        avg_from = self.n_explore + self.n_smooth // 2 if a < 1 else n_iter
        estimate = np.full_like(trace, np.nan)
        for it in range(n_iter):
            # 1. simulation: kernel 1 (independent draws from the prior), kernel 2 (random
            # walk of all components), kernel 3 (component-wise random walks, which mix
            # where the parameters of a patient are correlated; Kuhn & Lavielle 2005)
            sd = np.sqrt(om2)
            for _ in range(n_prior):
                prop = mu + rng.standard_normal((n_row, p)) * sd
                state, _ = self._mh(state, prop, rows, x_res, mu, om2, rng, False)
            for _ in range(n_rw):
                prop = state[0] + scale_rw[:, None] * rng.standard_normal((n_row, p)) * sd
                state, acc = self._mh(state, prop, rows, x_res, mu, om2, rng, True)
                scale_rw = np.clip(scale_rw * np.where(acc, 1.1, 0.95), 0.01, 3.0)
            sweeps = n_comp if n_comp >= 0 else (-n_comp if it >= self.n_explore else 0)
            for _ in range(sweeps):
                for j in range(p):
                    prop = state[0].copy()
                    prop[:, j] += scale_c[:, j] * rng.standard_normal(n_row) * sd[j]
                    state, acc = self._mh(state, prop, rows, x_res, mu, om2, rng, True)
                    scale_c[:, j] = np.clip(scale_c[:, j] * np.where(acc, 1.1, 0.95), 0.01, 3.0)
            phi, _, preds = state
            # 2. stochastic approximation (all chains of all patients)
            j = it - self.n_explore + 1  # smoothing iteration
            gamma = 1.0 if j < 1 else (1.0 / j if a == 1.0 else j ** -a)
            s1 = s1 + gamma * (phi.mean(axis=0) - s1)
            s2 = s2 + gamma * ((phi ** 2).mean(axis=0) - s2)
            # 3. maximisation; simulated annealing: while annealing, no variance (omega^2,
            # sigma^2) falls by more than the factor `anneal` per iteration, so that the
            # chains keep exploring while mu moves (Lavielle 2014, ch. 9)
            mu = s1.copy()
            new_om2 = np.maximum(s2 - s1 ** 2, 1e-8)
            x_new = x_res + gamma * (self._fit_residual(preds, x_res, rows) - x_res)
            if it < n_anneal:
                new_om2 = np.maximum(new_om2, self.anneal * om2)
                x_new = np.maximum(x_new, x_res + shrink)
            om2, x_res = np.where(om_free, new_om2, om2), x_new
            ll = self._ll_rows(preds, x_res, rows)
            state = (phi, ll, preds)
            post = ll + self._log_prior(phi, mu, om2)
            better = post > best_post
            best_phi[better] = phi[better]
            best_post = np.where(better, post, best_post)
            trace[it] = np.concatenate([mu, om2, x_res])
            if it >= avg_from:  # running average of the iterates
                m = it - avg_from + 1
                prev = trace[it] if m == 1 else estimate[it - 1]
                estimate[it] = prev + (trace[it] - prev) / m
            else:
                estimate[it] = trace[it]
            if it >= self.n_explore:
                samples.extend(phi.reshape(n_mcmc, n, p))
                g, h = self._complete_derivs(phi, preds, mu, om2, x_res, rows)
                grads.extend(g.reshape(n_mcmc, n, -1))
                hess.extend(h.reshape(n_mcmc, n, *h.shape[1:]))
        mu, om2, x_res = estimate[-1, :p], estimate[-1, p:2 * p], estimate[-1, 2 * p:]
        free = np.concatenate([np.ones(p, bool), om_free, np.ones(len(x_res), bool)])
        cov, info = self._standard_errors(np.array(grads), np.array(hess), free)
        # stationarity over the smoothing phase: the change of every quantity over its last
        # quarter is at most a quarter of its standard error (or 0.05 search units, when
        # larger or when the SE is not finite) - a smaller change than the data can resolve
        # (of the estimate: the last iterate, or with a < 1 the running average of the iterates)
        tail = estimate[-max(5, self.n_smooth // 4):]
        change = np.abs(tail[-1] - tail[0])
        se = np.sqrt(np.diag(cov))
        allowed = np.where(np.isfinite(se), np.maximum(DRIFT_ABS, DRIFT_SE * se), DRIFT_ABS)
        drift = float(np.max(change / allowed)) if change.size else 0.0
        samples = np.array(samples)
        m_is = self._is_samples()
        refined = False
        if self._refine() and m_is > 0 and samples.shape[0] >= 2:
            # Monte Carlo maximum likelihood from the importance-sampling draws (ODE models:
            # see REFINE_SAMPLES), with the information from the same draws
            isd = self._is_draws(samples, om2, rng, m_is, REFINE_INFLATE)
            ref = self._refine_ml(isd, mu, om2, x_res, om_free)
            if ref is not None:
                mu, om2, x_res, cov, info = ref
                refined = True
            loglik, loglik_se = self._is_loglik(isd, mu, om2, x_res)
        else:
            loglik, loglik_se = self._loglik(samples, mu, om2, x_res, rng)
        # the chain's best sample of each patient starts its conditional mode
        chain = np.argmax(best_post.reshape(n_mcmc, n), axis=0)
        best_phi = best_phi.reshape(n_mcmc, n, p)[chain, np.arange(n)]
        return {"mu": mu, "om2": om2, "x_res": x_res, "trace": trace, "drift": drift,
                "max_change": float(np.max(change)),
                "stationary": bool(np.all(np.isfinite(estimate[-1])) and drift <= 1.0),
                "cov": cov, "info": info, "loglik": loglik, "loglik_se": loglik_se,
                "best_phi": best_phi, "start": trace[0, :p], "refined": refined}

    def _fit_residual(self, preds, x_res, rows) -> np.ndarray:
        """Residual parameters maximising the conditional log-likelihood of the current
        predictions of every chain (batch ``rows`` of :meth:`_rows`)."""
        resid = self._resid
        if len(resid) == 0:
            return x_res
        oi = rows[0]
        f = np.concatenate(preds)
        dv, cens = self._dv[oi], self._cens[oi]
        ok = np.isfinite(f)
        if all(k == "proportional" for k in resid.kinds.values()):
            x = np.array(x_res, dtype=np.float64)
            for a, j in resid._prop.items():
                m = resid._masks[a][oi] & ok
                x[j] = ln_sigma_prop_mle(f[m], dv[m], cens[m], x[j], resid.bounds[j])
            return x

        def nll(x):
            sp, sa = resid.sigmas(x)
            v = -np.sum(loglik_terms(f[ok], dv[ok], cens[ok], sp[oi][ok], sa[oi][ok]))
            return v if math.isfinite(v) else 1e300

        r = optimize.minimize(nll, x_res, method="L-BFGS-B", bounds=resid.bounds)
        return r.x

    # -- for results / plots -------------------------------------------------------------------
    def _x_res(self) -> np.ndarray:
        return self.x_res_

    def _individual_theta(self) -> np.ndarray:
        return self._theta(self._phi_ebe)

    def _draw_parameters(self, n_rep: int, rng: np.random.Generator):
        """New patients' parameters: ``phi = mu + eta``, ``eta ~ N(0, Omega)``, per replicate."""
        n = len(self.patient_ids_)
        phi = self.mu_ + rng.standard_normal((n_rep * n, len(self.mu_))) * np.sqrt(self.omega2_)
        return np.tile(np.arange(n), n_rep).tolist(), self._theta(phi)

    def summary(self) -> str:
        """A printable table of the estimates."""
        from cartsim.fitting.report import format_table

        return format_table(self)
