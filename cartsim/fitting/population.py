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
  conditional mean and variance (as Monolix does), hence AIC and BIC.

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
from scipy import optimize, special

from cartsim.fitting.data import Observations
from cartsim.fitting.forward import ForwardModel
from cartsim.fitting.likelihood import ResidualModel, loglik_terms
from cartsim.fitting.messages import ConvergenceWarning
from cartsim.fitting.transforms import default_transform
from cartsim.scenario import ModelConfig, Scenario, ScenarioError

__all__ = ["PopulationFit"]

_LOG_2PI = math.log(2 * math.pi)


class PopulationFit:
    """Nonlinear mixed-effects fit of a cohort by SAEM (scikit-learn estimator contract).

    Parameters
    ----------
    parameters : model parameters with a typical value and a log-normal (or
        logit-normal) random effect each.
    model, base, error, transforms, init : as :class:`~cartsim.fitting.individual.IndividualFit`.
    omega_init : starting SD of the random effects (search units), per parameter or one value.
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
    converged_, status_ : convergence flag and a short status.
    trace_ : per iteration, ``mu``, ``omega^2`` and the residual parameters.
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
                 method: str = "bdf", rtol: float = 1e-7, random_state: int | None = 0):
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

    @staticmethod
    def _log_prior(phi, mu, om2) -> np.ndarray:
        d = np.atleast_2d(phi) - mu
        return -0.5 * np.sum(d * d / om2 + np.log(om2) + _LOG_2PI, axis=-1)

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, data: Observations) -> PopulationFit:
        """Estimate typical values, random-effect SDs and residual error from ``data``.

        Returns
        -------
        self
        """
        if not self.parameters:
            raise ScenarioError("fit.parameters is empty: name at least one model parameter")
        if data.n_patients < 2:
            raise ScenarioError(f"{data.source}: a population fit needs at least 2 patients "
                                f"(got {data.n_patients}); use an individual fit")
        rng = np.random.default_rng(self.random_state)
        base = self.base or Scenario(model=ModelConfig(name=self.model))
        fm = ForwardModel(data, data.scenarios(base), self.parameters, method=self.method,
                          rtol=self.rtol)
        pset = fm.model.parameters
        self._fm = fm
        self._tfs = [default_transform(pset[n].lower, pset[n].upper, self.transforms.get(n))
                     for n in self.parameters]
        scale = {a: float(np.median(data.dv[data.analyte == a])) for a in data.analytes}
        self._resid = ResidualModel(data.analytes, self.error, data.analyte, scale)
        self._dv, self._cens = data.dv, data.cens
        n, p = data.n_patients, len(self.parameters)
        pats = list(range(n))
        mu = np.array([t.to_search(self.init.get(k, fm.base_value(k)))
                       for t, k in zip(self._tfs, self.parameters)], dtype=np.float64)
        om0 = self.omega_init
        om2 = np.array([(om0.get(k, 0.5) if isinstance(om0, Mapping) else float(om0)) ** 2
                        for k in self.parameters])
        x_res = self._resid.start.copy()
        phi = np.tile(mu, (n, 1))
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
                llp = self._ll_all(pp, x_res)
                log_r = llp - ll
                if kernel > 0:
                    log_r += self._log_prior(prop, mu, om2) - self._log_prior(phi, mu, om2)
                acc = np.log(rng.uniform(size=n)) < log_r
                phi = np.where(acc[:, None], prop, phi)
                ll = np.where(acc, llp, ll)
                preds = [pp[i] if acc[i] else preds[i] for i in range(n)]
                if kernel > 0:
                    scale_rw *= np.where(acc, 1.1, 0.95)
                    scale_rw = np.clip(scale_rw, 0.01, 3.0)
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
        self.trace_ = trace
        self.mu_, self.omega2_, self.x_res_ = mu, om2, x_res
        self.patient_ids_ = list(data.ids)
        self.data_ = data
        # convergence: parameters stable over the last quarter of the smoothing phase
        tail = trace[-max(5, self.n_smooth // 4):]
        drift = np.abs(tail[-1] - tail[0])
        self.converged_ = bool(np.all(np.isfinite(trace[-1])) and np.all(drift < 0.05))
        self.status_ = "converged" if self.converged_ else "parameters still drifting"
        if not self.converged_:
            warnings.warn("population fit (SAEM): parameters still drift at the end of the "
                          f"smoothing phase (max change {float(np.max(drift)):.3g} in search "
                          "units over its last quarter): increase fit.n_explore/n_smooth",
                          ConvergenceWarning, stacklevel=2)
        self._standard_errors(np.array(grads), np.array(hess))
        self._ebe(best_phi, mu, om2, x_res)
        samp = np.array(samples)
        self._loglik(samp, mu, om2, x_res, rng)
        self._summaries()
        return self

    def _fit_residual(self, preds, x_res) -> np.ndarray:
        f = np.empty(self._dv.size)
        for i, pr in enumerate(preds):
            f[self._fm.index[i]] = pr
        ok = np.isfinite(f)

        def nll(x):
            sp, sa = self._resid.sigmas(x)
            v = -np.sum(loglik_terms(f[ok], self._dv[ok], self._cens[ok], sp[ok], sa[ok]))
            return v if math.isfinite(v) else 1e300

        r = optimize.minimize(nll, x_res, method="L-BFGS-B", bounds=self._resid.bounds)
        return r.x

    def _complete_derivs(self, phi, preds, mu, om2, x_res):
        """Per-patient gradient and Hessian of the complete-data log-likelihood in
        ``(mu, omega^2, ln sigma)`` (analytic in ``mu, omega^2``; central differences in
        ``ln sigma`` with the predictions held fixed)."""
        n, p = phi.shape
        r = len(x_res)
        k = 2 * p + r
        G = np.zeros((n, k))
        H = np.zeros((n, k, k))
        d = phi - mu
        G[:, :p] = d / om2
        G[:, p:2 * p] = -0.5 / om2 + 0.5 * d * d / om2 ** 2
        for j in range(p):
            H[:, j, j] = -1.0 / om2[j]
            H[:, p + j, p + j] = 0.5 / om2[j] ** 2 - d[:, j] ** 2 / om2[j] ** 3
            H[:, j, p + j] = H[:, p + j, j] = -d[:, j] / om2[j] ** 2
        h = 1e-4
        E = np.eye(r) * h
        for i in range(n):
            f0 = self._ll_patient(i, preds[i], x_res)
            fp = [self._ll_patient(i, preds[i], x_res + E[a]) for a in range(r)]
            fm_ = [self._ll_patient(i, preds[i], x_res - E[a]) for a in range(r)]
            for a in range(r):
                G[i, 2 * p + a] = (fp[a] - fm_[a]) / (2 * h)
                H[i, 2 * p + a, 2 * p + a] = (fp[a] - 2 * f0 + fm_[a]) / h ** 2
                for b in range(a + 1, r):
                    v = (self._ll_patient(i, preds[i], x_res + E[a] + E[b])
                         - self._ll_patient(i, preds[i], x_res + E[a] - E[b])
                         - self._ll_patient(i, preds[i], x_res - E[a] + E[b])
                         + self._ll_patient(i, preds[i], x_res - E[a] - E[b])) / (4 * h * h)
                    H[i, 2 * p + a, 2 * p + b] = H[i, 2 * p + b, 2 * p + a] = v
        G[~np.isfinite(G)] = 0.0
        H[~np.isfinite(H)] = 0.0
        return G, H

    def _standard_errors(self, grads: np.ndarray, hess: np.ndarray) -> None:
        """Louis' observed information from the smoothing-phase samples."""
        k = grads.shape[2]
        info = np.zeros((k, k))
        for i in range(grads.shape[1]):
            g = grads[:, i, :]
            info += -hess[:, i].mean(axis=0) - np.cov(g, rowvar=False, bias=True).reshape(k, k)
        try:
            cov = np.linalg.inv(info)
            if not np.all(np.diag(cov) > 0):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            cov = np.full((k, k), np.nan)
        self.cov_ = cov
        self.information_ = info

    def _ebe(self, start, mu, om2, x_res, max_iter: int = 40) -> None:
        """Conditional modes ``argmin_phi -l_i(phi) - ln N(phi; mu, Omega)``, all patients
        together: Levenberg-Marquardt steps in lockstep, each iteration one batch of
        Jacobian solves (forward differences of ``ln f``) and one batch of trial solves;
        Gauss-Newton curvature per observation plus the prior's ``Omega^-1``. Starts from
        the best sample of the chain; a patient stops when its gradient or decrease is tiny.
        """
        n, p = start.shape
        phi = start.copy()
        sp, sa = self._sig_cache(x_res)
        h, hu = 1e-4, 1e-4

        def post(i, f, ph):
            v = -self._ll_patient(i, f, x_res) - float(self._log_prior(ph, mu, om2)[0])
            return v if math.isfinite(v) else math.inf

        f = self._preds(range(n), phi)
        val = np.array([post(i, f[i], phi[i]) for i in range(n)])
        lam = np.full(n, 1e-2)
        active = np.isfinite(val)
        for _ in range(max_iter):
            act = np.flatnonzero(active)
            if act.size == 0:
                break
            X = np.repeat(phi[act], p, axis=0) + h * np.tile(np.eye(p), (act.size, 1))
            P = self._preds(np.repeat(act, p), X)
            trials = []
            for a, i in enumerate(act):
                o = self._fm.index[i]
                u0 = np.log(np.maximum(f[i], 1e-30))
                J = np.column_stack([(np.log(np.maximum(P[a * p + k], 1e-30)) - u0) / h
                                     for k in range(p)])
                J[~np.isfinite(J)] = 0.0
                terms = [-loglik_terms(np.exp(u0 + d), self._dv[o], self._cens[o], sp[o], sa[o])
                         for d in (0.0, hu, -hu)]
                d1 = (terms[1] - terms[2]) / (2 * hu)
                d2 = np.maximum((terms[1] - 2 * terms[0] + terms[2]) / hu ** 2, 0.0)
                g = J.T @ d1 + (phi[i] - mu) / om2
                H = J.T @ (d2[:, None] * J) + np.diag(1.0 / om2)
                if np.max(np.abs(g)) < 1e-3:
                    active[i] = False
                    trials.append(phi[i])
                    continue
                A = H + lam[i] * np.diag(np.diag(H))
                trials.append(phi[i] - np.linalg.solve(A, g))
            trials = np.array(trials)
            FT = self._preds(act, trials)
            for a, i in enumerate(act):
                if not active[i]:
                    continue
                v = post(i, FT[a], trials[a])
                if v < val[i]:
                    small = val[i] - v < 1e-6 * max(1.0, abs(val[i]))
                    phi[i], f[i], val[i] = trials[a], FT[a], v
                    lam[i] = max(lam[i] / 3, 1e-7)
                    if small:
                        active[i] = False
                else:
                    lam[i] *= 8
                    if lam[i] > 1e6:
                        active[i] = False
        self._phi_ebe = phi
        self.ebe_converged_ = ~active

    def _loglik(self, samples, mu, om2, x_res, rng) -> None:
        m = int(self.is_samples)
        n, p = samples.shape[1], samples.shape[2]
        if m <= 0 or samples.shape[0] < 2:
            self.loglik_ = math.nan
            return
        cm = samples.mean(axis=0)
        sd = np.sqrt(np.maximum(samples.var(axis=0), 1e-6 * om2))
        nu = 5.0
        t = rng.standard_t(nu, size=(m, n, p))
        draws = cm + sd * t
        pats = np.repeat(np.arange(n)[None, :], m, axis=0).ravel()
        pr = self._preds(pats, draws.reshape(m * n, p))
        ll = np.array([self._ll_patient(int(i), f, x_res) for i, f in zip(pats, pr)])
        ll = ll.reshape(m, n)
        log_q = np.sum(special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
                       - 0.5 * np.log(nu * math.pi) - np.log(sd)
                       - (nu + 1) / 2 * np.log1p(t * t / nu), axis=2)
        log_w = ll + self._log_prior(draws, mu, om2) - log_q
        self.loglik_ = float(np.sum(special.logsumexp(log_w, axis=0) - math.log(m)))

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
