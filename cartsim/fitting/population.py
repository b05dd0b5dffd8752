"""Population fit: nonlinear mixed effects by SAEM, with empirical Bayes estimates.

Model (mu-referenced, in the search space of :mod:`cartsim.fitting.transforms`)::

    phi_i = mu + eta_i,   eta_i ~ N(0, Omega),   Omega = diag(omega_1^2, ..., omega_p^2)
    theta_i = T^-1(phi_i)                        (log: log-normal IIV)
    y_ij | phi_i ~ residual model of :mod:`cartsim.fitting.likelihood` (M3 for BLQ)

Algorithm: stochastic approximation EM (Delyon, Lavielle & Moulines 1999, Ann
Stat 27:94; Kuhn & Lavielle 2005, Comput Stat Data Anal 49:1020), as in
Monolix:

1. simulation: per iteration, Metropolis-Hastings updates of every patient's
   ``phi_i``: one proposal from the population distribution ``N(mu, Omega)``
   and ``n_rw`` random-walk proposals ``phi_i + s_i N(0, Omega)`` with a
   per-patient scale ``s_i`` adapted towards 30% acceptance; all patients'
   proposals are integrated as one compiled batch;
2. stochastic approximation of the sufficient statistics
   ``S1 = mean_i phi_i``, ``S2 = mean_i phi_i^2`` with step ``gamma_k = 1``
   for ``n_explore`` iterations, then ``1 / (k - n_explore)`` for ``n_smooth``;
3. maximisation: ``mu = S1``, ``omega^2 = S2 - S1^2`` (not shrinking by more
   than 5% per iteration while exploring), and the residual parameters by
   maximising the conditional log-likelihood of the current ``phi_i`` and
   moving towards it with step ``gamma_k`` (no closed form with M3 and the
   combined error model).

After SAEM:

* empirical Bayes estimates (EBE): conditional modes
  ``argmax_phi l_i(phi) + ln N(phi; mu, Omega)`` per patient (L-BFGS-B from
  the best sample of the chain);
* standard errors of ``mu``, ``omega^2`` and ``ln sigma`` from the observed
  information by Louis' principle, ``I = sum_i (E[-H_i] - Var[g_i])`` with
  ``g_i, H_i`` the gradient and Hessian of the complete-data log-likelihood,
  expectations over the chain's samples during the smoothing phase (Kuhn &
  Lavielle 2005, section 2.3); delta method to ``theta`` and ``omega``;
* the log-likelihood ``sum_i ln int p(y_i | phi) p(phi) dphi`` by importance
  sampling with a Student-t (5 df) proposal fitted to each patient's
  conditional mean and variance (as Monolix does), hence AIC and BIC, with its
  Monte Carlo standard error.

Start and restarts (issue 17): SAEM starts from the data (median and spread of
quick individual fits, ``init_from``), not from literature values, and runs
``n_chains`` times: the first run with every patient at its individual estimate,
the others from starts displaced by draws of the starting Omega. The run with the
highest log-likelihood gives the estimates; ``restarts_`` keeps all of them, and
the fit is converged only when the chosen run is stationary over the smoothing
phase (:data:`DRIFT_SE`), its standard errors are finite and the restarts agree
(typical values within one standard error, log-likelihoods within
``max(1, 3 x`` the Monte Carlo SE)); each failure is a
:class:`~cartsim.fitting.messages.ConvergenceWarning`. Proposals outside the
search box are rejected (the model clips there and the chain would drift on a
flat likelihood); for the closed-form ``stein2019`` a component-wise random walk
per parameter is added to every iteration (Kuhn & Lavielle 2005).

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
from cartsim.fitting.messages import ConvergenceWarning, FitWarning
from cartsim.fitting.population_estimates import SAEMEstimates
from cartsim.fitting.transforms import default_transform
from cartsim.scenario import ModelConfig, Scenario, ScenarioError

__all__ = ["PopulationFit"]

_LOG_2PI = math.log(2 * math.pi)

DRIFT_SE = 0.25
DRIFT_ABS = 0.05
"""Stationarity over the smoothing phase: every trace quantity (mu, omega^2, ln sigma)
changes over the last quarter of the smoothing phase by at most ``max(DRIFT_ABS,
DRIFT_SE * se)`` (search units). Assumption: a change below a quarter of the standard
error cannot alter a conclusion drawn from the estimate."""

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
        fields of :mod:`cartsim.fitting.scenario_parameters`.
    model, base, error, transforms, init : as :class:`~cartsim.fitting.individual.IndividualFit`.
    omega_init : smallest starting SD of the random effects (search units), per parameter or
        one value.
    init_from : ``individual`` (median and spread of individual fits), ``model`` (scenario
        values or ``init``), ``auto`` (``individual`` for ``stein2019``, else ``model``).
    n_chains : SAEM runs from different starts (1: a single run).
    n_rw_component : sweeps of component-wise random-walk proposals per iteration (one
        batch per parameter); default 1 for the closed-form ``stein2019``, 0 for ODE models.
    sigma_floor, sigma_fixed : as :class:`~cartsim.fitting.individual.IndividualFit`.
    n_explore, n_smooth : SAEM iterations with step 1 and with step ``1/k``.
    n_rw : random-walk Metropolis-Hastings proposals per patient and iteration.
    is_samples : importance samples per patient for the log-likelihood (0: skip).
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
        standard errors are finite and the restarts agree (see :meth:`_verdict`).
    status_ : ``converged``, ``parameters still drifting``, ``se_not_finite`` or
        ``restarts_disagree`` (the first failure; every failure is warned about).
    trace_ : per iteration, ``mu``, ``omega^2`` and the residual parameters (chosen run).
    restarts_ : one dict per SAEM run (``start``, ``params``, ``omega``, ``mu_se``,
        ``loglik``, ``loglik_se``, ``stationary``, ``best``); the run with the highest
        log-likelihood gives the estimates.
    restart_spread_ : parameter -> range of its typical value over the runs (search units);
        ``restart_spread_se_`` the largest of them in units of the standard error;
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
                 omega_init: float | Mapping[str, float] = 0.5, n_explore: int = 100,
                 n_smooth: int = 50, n_rw: int = 1, is_samples: int = 50,
                 method: str = "bdf", rtol: float = 1e-7, init_from: str = "auto",
                 n_chains: int = 3, n_rw_component: int | None = None,
                 sigma_floor: Mapping[str, float] | None = None,
                 sigma_fixed: Mapping[str, float] | None = None,
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
        self.sigma_floor = dict(sigma_floor or {})
        self.sigma_fixed = dict(sigma_fixed or {})
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

    def _ll_all(self, preds: Sequence[np.ndarray], x_res) -> np.ndarray:
        return np.array([self._ll_patient(i, f, x_res) for i, f in enumerate(preds)])

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
        streams = np.random.SeedSequence(self.random_state).spawn(self.n_chains + 1)
        runs = []
        for c in range(self.n_chains):
            rng = np.random.default_rng(streams[c])
            start = mu0 if c == 0 else mu0 + np.sqrt(om2_0) * rng.standard_normal(mu0.size)
            start = np.clip(start, self._lo, self._hi)
            # the first run starts every patient at its individual estimate (when there is
            # one); the others at their start, so that they test start-independence
            phi0 = self._phi_init if c == 0 else None
            runs.append(self._saem(start, om2_0, rng, phi0))
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

    def _saem(self, mu, om2, rng, phi0=None) -> dict:
        """One SAEM run from ``(mu, omega^2)``: the estimates, trace, standard errors and
        importance-sampling log-likelihood (see the module docstring)."""
        n, p = self.data_.n_patients, len(self.parameters)
        pats = list(range(n))
        mu, om2 = mu.copy(), om2.copy()
        x_res = self._resid.start.copy()
        phi = np.tile(mu, (n, 1)) if phi0 is None else phi0.copy()
        n_comp = self.n_rw_component
        if n_comp is None:
            n_comp = 1 if self._fm.model_name == "stein2019" else 0
        scale_c = np.full((n, p), 0.5)
        preds = self._preds(pats, phi)
        ll = self._ll_all(preds, x_res)
        scale_rw = np.full(n, 0.5)
        s1, s2 = mu.copy(), om2 + mu ** 2
        n_iter = self.n_explore + self.n_smooth
        trace = np.empty((n_iter, 2 * p + len(self._resid)))
        samples: list[np.ndarray] = []
        grads: list[np.ndarray] = []
        hess: list[np.ndarray] = []
        best_phi, best_post = phi.copy(), ll + self._log_prior(phi, mu, om2)
        for it in range(n_iter):
            # 1. simulation: MH kernels (prior proposal, then random walks)
            for kernel in range(1 + self.n_rw):
                if kernel == 0:
                    prop = mu + rng.standard_normal((n, p)) * np.sqrt(om2)
                else:
                    prop = phi + scale_rw[:, None] * rng.standard_normal((n, p)) * np.sqrt(om2)
                pp = self._preds(pats, prop)
                llp = np.where(self._inside(prop), self._ll_all(pp, x_res), -np.inf)
                log_r = _log_ratio(llp, ll)
                if kernel > 0:
                    log_r += self._log_prior(prop, mu, om2) - self._log_prior(phi, mu, om2)
                acc = np.log(rng.uniform(size=n)) < log_r
                phi = np.where(acc[:, None], prop, phi)
                ll = np.where(acc, llp, ll)
                preds = [pp[i] if acc[i] else preds[i] for i in range(n)]
                if kernel > 0:
                    scale_rw *= np.where(acc, 1.1, 0.95)
                    scale_rw = np.clip(scale_rw, 0.01, 3.0)
            # component-wise random walks (one coordinate at a time, Kuhn & Lavielle 2005):
            # they mix where the parameters are correlated in the posterior of a patient
            for _ in range(n_comp):
                for j in range(p):
                    prop = phi.copy()
                    prop[:, j] += scale_c[:, j] * rng.standard_normal(n) * np.sqrt(om2[j])
                    pp = self._preds(pats, prop)
                    llp = np.where(self._inside(prop), self._ll_all(pp, x_res), -np.inf)
                    log_r = (_log_ratio(llp, ll) + self._log_prior(prop, mu, om2)
                             - self._log_prior(phi, mu, om2))
                    acc = np.log(rng.uniform(size=n)) < log_r
                    phi = np.where(acc[:, None], prop, phi)
                    ll = np.where(acc, llp, ll)
                    preds = [pp[i] if acc[i] else preds[i] for i in range(n)]
                    scale_c[:, j] = np.clip(scale_c[:, j] * np.where(acc, 1.1, 0.95), 0.01, 3.0)
            # 2. stochastic approximation
            gamma = 1.0 if it < self.n_explore else 1.0 / (it - self.n_explore + 1)
            s1 = s1 + gamma * (phi.mean(axis=0) - s1)
            s2 = s2 + gamma * ((phi ** 2).mean(axis=0) - s2)
            # 3. maximisation
            mu = s1.copy()
            new_om2 = np.maximum(s2 - s1 ** 2, 1e-8)
            if it < self.n_explore:
                new_om2 = np.maximum(new_om2, 0.95 * om2)
            om2 = new_om2
            x_new = self._fit_residual(preds, x_res)
            x_res = x_res + gamma * (x_new - x_res)
            ll = self._ll_all(preds, x_res)
            post = ll + self._log_prior(phi, mu, om2)
            better = post > best_post
            best_phi[better] = phi[better]
            best_post = np.where(better, post, best_post)
            trace[it] = np.concatenate([mu, om2, x_res])
            if it >= self.n_explore:
                samples.append(phi.copy())
                g, h = self._complete_derivs(phi, preds, mu, om2, x_res)
                grads.append(g)
                hess.append(h)
        cov, info = self._standard_errors(np.array(grads), np.array(hess))
        # stationarity over the smoothing phase: the change of every quantity over its last
        # quarter is at most a quarter of its standard error (or 0.05 search units, when
        # larger or when the SE is not finite) - a smaller change than the data can resolve
        tail = trace[-max(5, self.n_smooth // 4):]
        change = np.abs(tail[-1] - tail[0])
        se = np.sqrt(np.diag(cov))
        allowed = np.where(np.isfinite(se), np.maximum(DRIFT_ABS, DRIFT_SE * se), DRIFT_ABS)
        drift = float(np.max(change / allowed)) if change.size else 0.0
        loglik, loglik_se = self._loglik(np.array(samples), mu, om2, x_res, rng)
        return {"mu": mu, "om2": om2, "x_res": x_res, "trace": trace, "drift": drift,
                "max_change": float(np.max(change)),
                "stationary": bool(np.all(np.isfinite(trace[-1])) and drift <= 1.0),
                "cov": cov, "info": info, "loglik": loglik, "loglik_se": loglik_se,
                "best_phi": best_phi, "start": trace[0, :p]}

    def _restart_report(self, runs, best) -> None:
        """``restarts_`` (one dict per run) and ``restart_spread_se_``: the largest range of a
        typical value (search units) over the runs, in units of its standard error."""
        p = len(self.parameters)
        self.restarts_ = []
        for r in runs:
            theta = [float(t.to_model(v)) for t, v in zip(self._tfs, r["mu"])]
            params = dict(zip(self.parameters, theta))
            params.update(zip(self._resid.names, np.exp(r["x_res"]).tolist()))
            se = np.sqrt(np.diag(r["cov"]))[:p]
            self.restarts_.append({
                "start": dict(zip(self.parameters,
                                  [float(t.to_model(v)) for t, v in zip(self._tfs, r["start"])])),
                "params": params, "omega": dict(zip(self.parameters, np.sqrt(r["om2"]).tolist())),
                "mu_se": se, "loglik": r["loglik"], "loglik_se": r["loglik_se"],
                "stationary": r["stationary"], "best": r is best})
        mus = np.array([r["mu"] for r in runs])
        se = np.sqrt(np.diag(best["cov"]))[:p]
        spread = np.ptp(mus, axis=0)
        self.restart_spread_ = dict(zip(self.parameters, spread.tolist()))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = spread / se
        self.restart_spread_se_ = float(np.max(rel)) if np.all(np.isfinite(rel)) else math.inf
        lls = np.array([r["loglik"] for r in runs])
        self.restart_loglik_spread_ = float(np.ptp(lls)) if len(runs) > 1 else 0.0

    def _verdict(self, best) -> None:
        """``converged_`` and ``status_``; a :class:`ConvergenceWarning` for each failure:
        drift at the end of the smoothing phase, non-finite standard errors, restarts whose
        estimates differ by more than a standard error or whose log-likelihoods differ by
        more than ``max(1, 3 x`` the largest Monte Carlo SE)."""
        problems = []
        if not best["stationary"]:
            problems.append((
                "parameters still drifting",
                "population fit (SAEM): parameters still drift at the end of the smoothing "
                f"phase (change up to {best['max_change']:.3g} in search units over its last "
                f"quarter, {best['drift']:.3g} x the allowed max({DRIFT_ABS:g}, "
                f"{DRIFT_SE:g} SE)): increase fit.n_explore/n_smooth"))
        se = np.sqrt(np.diag(self.cov_))
        if not np.all(np.isfinite(se)):
            problems.append((
                "se_not_finite",
                "population fit (SAEM): standard errors are not finite (the observed "
                "information by Louis' principle is not positive definite): some typical "
                "values, omegas or residual SDs are not identifiable from these data; fix "
                "them or fit fewer random effects"))
        if len(self._runs) > 1:
            lls = np.array([r["loglik"] for r in self._runs])
            mc = max([r["loglik_se"] for r in self._runs if math.isfinite(r["loglik_se"])],
                     default=0.0)
            ll_bad = np.all(np.isfinite(lls)) and np.ptp(lls) > max(1.0, 3.0 * mc)
            if self.restart_spread_se_ > 1.0 or ll_bad:
                worst = max(self.restart_spread_, key=lambda k: self.restart_spread_[k]
                            / max(self.mu_se_[self.parameters.index(k)], 1e-300))
                ll_text = (f", log-likelihoods by {np.ptp(lls):.3g} (Monte Carlo SE {mc:.2g})"
                           if np.all(np.isfinite(lls)) else "")
                problems.append((
                    "restarts_disagree",
                    f"population fit (SAEM): the {len(self._runs)} restarts disagree: typical "
                    f"values differ by up to {self.restart_spread_se_:.3g} standard errors "
                    f"({worst}){ll_text}; the estimate depends on the start: use more "
                    "iterations (fit.n_explore, fit.n_smooth), fewer random effects, or "
                    "compare restarts_"))
        self.converged_ = not problems
        self.status_ = "converged" if not problems else problems[0][0]
        for _, text in problems:
            warnings.warn(text, ConvergenceWarning, stacklevel=3)

    def _fit_residual(self, preds, x_res) -> np.ndarray:
        f = np.empty(self._dv.size)
        for i, pr in enumerate(preds):
            f[self._fm.index[i]] = pr
        ok = np.isfinite(f)
        resid = self._resid
        if len(resid) == 0:
            return x_res
        if all(k == "proportional" for k in resid.kinds.values()):
            x = np.array(x_res, dtype=np.float64)
            for a, j in resid._prop.items():
                m = resid._masks[a] & ok
                x[j] = ln_sigma_prop_mle(f[m], self._dv[m], self._cens[m], x[j], resid.bounds[j])
            return x

        def nll(x):
            sp, sa = self._resid.sigmas(x)
            v = -np.sum(loglik_terms(f[ok], self._dv[ok], self._cens[ok], sp[ok], sa[ok]))
            return v if math.isfinite(v) else 1e300

        r = optimize.minimize(nll, x_res, method="L-BFGS-B", bounds=self._resid.bounds)
        return r.x

    def _summaries(self) -> None:
        names = self.parameters
        p = len(names)
        mu, om2, x_res = self.mu_, self.omega2_, self.x_res_
        se = np.sqrt(np.diag(self.cov_))
        theta = [float(t.to_model(v)) for t, v in zip(self._tfs, mu)]
        sig = np.exp(x_res)
        self.params_ = dict(zip(names, theta))
        self.params_.update(zip(self._resid.names, sig.tolist()))
        self.sigma_ = dict(zip(self._resid.names, sig.tolist()))
        self.sigma_fixed_ = dict(self._resid.fixed)
        self.omega_ = dict(zip(names, np.sqrt(om2).tolist()))
        self.se_ = {}
        for j, (n, t) in enumerate(zip(names, self._tfs)):
            self.se_[n] = float(abs(t.jacobian(mu[j])) * se[j])
            self.se_[f"omega_{n}"] = float(se[p + j] / (2 * math.sqrt(om2[j])))
        for a, n in enumerate(self._resid.names):
            self.se_[n] = float(sig[a] * se[2 * p + a])
        self.mu_se_ = se[:p]
        self.ci_ = {n: (float(t.to_model(mu[j] - 1.959963984540054 * se[j])),
                        float(t.to_model(mu[j] + 1.959963984540054 * se[j])))
                    for j, (n, t) in enumerate(zip(names, self._tfs))}
        for a, n in enumerate(self._resid.names):
            self.ci_[n] = (float(np.exp(x_res[a] - 1.959963984540054 * se[2 * p + a])),
                           float(np.exp(x_res[a] + 1.959963984540054 * se[2 * p + a])))
        k = 2 * p + len(x_res)
        n_obs = int(self._dv.size)
        self.n_obs_ = n_obs
        self.n_censored_ = int(self._cens.sum())
        self.aic_ = 2 * k - 2 * self.loglik_
        self.bic_ = k * math.log(n_obs) - 2 * self.loglik_
        self.eta_ = self._phi_ebe - mu
        theta_i = self._theta(self._phi_ebe)
        self.ebe_ = {n: theta_i[:, j] for j, n in enumerate(names)}
        n_pat = len(self.patient_ids_)
        ipred = self._preds(range(n_pat), self._phi_ebe)
        ppred = self._preds(range(n_pat), np.tile(mu, (n_pat, 1)))
        self.ipred_ = np.empty(n_obs)
        self.ppred_ = np.empty(n_obs)
        for i in range(n_pat):
            self.ipred_[self._fm.index[i]] = ipred[i]
            self.ppred_[self._fm.index[i]] = ppred[i]

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
