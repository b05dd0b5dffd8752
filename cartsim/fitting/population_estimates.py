"""What a population fit estimates after SAEM: standard errors, individual estimates, the
log-likelihood and the verdict (the methods of
:class:`~cartsim.fitting.population.PopulationFit` that read finished SAEM runs; see that
module's docstring for the maths).

* :meth:`SAEMEstimates._standard_errors`: the observed information by Louis' principle,
  ``I = sum_i (E[-H_i] - Var[g_i])`` over the smoothing-phase samples (Kuhn & Lavielle
  2005, Comput Stat Data Anal 49:1020, section 2.3), with the per-patient derivatives of
  :meth:`SAEMEstimates._complete_derivs`;
* :meth:`SAEMEstimates._ebe`: conditional modes of every patient's parameters;
* :meth:`SAEMEstimates._loglik`: the importance-sampling log-likelihood and its Monte Carlo
  standard error; :meth:`SAEMEstimates._refine_ml`: its maximum over the same draws (ODE
  models), with the information of :meth:`SAEMEstimates._is_information`;
* :meth:`SAEMEstimates._restart_report` and :meth:`SAEMEstimates._verdict`: how the
  restarts compare, ``converged_``, ``status_`` and the parameters each failed check names.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import optimize, special

from cartsim.fitting.likelihood import loglik_terms
from cartsim.fitting.messages import ConvergenceWarning

__all__ = ["DRIFT_ABS", "DRIFT_SE", "OMEGA_COLLAPSE", "REFINE_BOX", "REFINE_INFLATE",
           "SAEMEstimates"]

DRIFT_SE = 0.25
DRIFT_ABS = 0.05
"""Stationarity over the smoothing phase: every trace quantity (mu, omega^2, ln sigma)
changes over the last quarter of the smoothing phase by at most ``max(DRIFT_ABS,
DRIFT_SE * se)`` (search units). Assumption: a change below a quarter of the standard
error cannot alter a conclusion drawn from the estimate."""

OMEGA_COLLAPSE = 0.01
"""An estimated random-effect SD (search units) below this at the end of SAEM has collapsed to
0: the data show no between-patient variability of that parameter (assumption: a 1% CV is
below what a CAR-T assay resolves), and Louis' information is unreliable there."""

REFINE_INFLATE = 2.0
"""The importance-sampling proposal of the maximum-likelihood refinement has this many times the
covariance of the chain's samples. Why (issue 17): a chain's samples underestimate the
conditional variance (by 10-40% with 30-150 autocorrelated samples), and a maximum over draws
from too narrow a proposal favours too small an omega: on the 20-patient test cohort of
``test_cd7_population_recovery_on_simulated_cohort`` (30 smoothing samples) the uninflated
proposal drove omega of ``delta_e`` onto the factor-2 search box, the doubled one did not."""

REFINE_BOX = 2.0
"""The maximum-likelihood refinement after SAEM (:meth:`SAEMEstimates._refine_ml`) searches
typical values within one random-effect SD of the SAEM estimate, omegas and residual SDs within
this factor of it (assumption: the SAEM estimates of issue 17 were within 0.6 standard errors
of the maximum; a larger move means the importance-sampling proposal no longer covers the
conditional distributions, and the refinement is rejected)."""

SINGULAR_LOADING = 0.3
"""A quantity is named as not identified when it loads by at least this much on the direction
of least information (the eigenvector of the smallest eigenvalue of the correlation-scaled
information; assumption: smaller loadings are shared by many quantities and name none)."""


class SAEMEstimates:
    """Mixin of :class:`~cartsim.fitting.population.PopulationFit`: it uses the fit's
    ``_preds``, ``_rows``, ``_ll_rows``, ``_ll_patient``, ``_log_prior``, ``_sig_cache``,
    ``_fm``, ``_dv`` and ``_cens``."""

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
        fixed = ~np.isnan(self._om_fixed_sd())
        self.omega_fixed_ = {n: self.omega_[n] for n, f in zip(names, fixed) if f}
        self.se_ = {}
        for j, (n, t) in enumerate(zip(names, self._tfs)):
            self.se_[n] = float(abs(t.jacobian(mu[j])) * se[j])
            # a fixed omega is not estimated: no standard error (as a fixed sigma)
            self.se_[f"omega_{n}"] = (math.nan if fixed[j]
                                      else float(se[p + j] / (2 * math.sqrt(om2[j]))))
        for a, n in enumerate(self._resid.names):
            self.se_[n] = float(sig[a] * se[2 * p + a])
        self.mu_se_ = se[:p]
        self.ci_ = {n: (float(t.to_model(mu[j] - 1.959963984540054 * se[j])),
                        float(t.to_model(mu[j] + 1.959963984540054 * se[j])))
                    for j, (n, t) in enumerate(zip(names, self._tfs))}
        for a, n in enumerate(self._resid.names):
            self.ci_[n] = (float(np.exp(x_res[a] - 1.959963984540054 * se[2 * p + a])),
                           float(np.exp(x_res[a] + 1.959963984540054 * se[2 * p + a])))
        k = 2 * p - int(fixed.sum()) + len(x_res)
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

    # -- restarts and verdict --------------------------------------------------------------------
    def _restart_report(self, runs, best) -> None:
        """``restarts_`` (one dict per run), ``restart_spread_`` and ``restart_spread_se_``:
        the range of every typical value (search units) over the runs, and the largest
        of them in units of its standard error (the chosen run's, or where that is not
        finite the largest finite one of the others, or where no run has one the
        conditional ``1 / sqrt(I_jj)`` of the chosen run's information; else ``inf``)."""
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
                "stationary": r["stationary"], "refined": r.get("refined", False),
                "best": r is best})
        spread = np.ptp(np.array([r["mu"] for r in runs]), axis=0)
        ses = np.array([np.sqrt(np.diag(r["cov"]))[:p] for r in runs])
        ref = np.sqrt(np.diag(best["cov"]))[:p]
        info = np.diag(best["info"])[:p]
        for j in range(p):
            if not (math.isfinite(ref[j]) and ref[j] > 0):
                ref[j] = max((s for s in ses[:, j] if math.isfinite(s) and s > 0),
                             default=math.nan)
            if not math.isfinite(ref[j]) and info[j] > 0:
                # no run has a standard error: the conditional one (the others known),
                # 1 / sqrt(I_jj), a lower bound - the comparison stays conservative
                ref[j] = 1.0 / math.sqrt(info[j])
        rel = np.where(np.isfinite(ref), spread / np.where(np.isfinite(ref), ref, 1.0),
                       np.where(spread > DRIFT_ABS, math.inf, 0.0))
        self.restart_spread_ = dict(zip(self.parameters, spread.tolist()))
        self._restart_rel = dict(zip(self.parameters, rel.tolist()))
        self.restart_spread_se_ = float(np.max(rel)) if len(runs) > 1 else 0.0
        lls = np.array([r["loglik"] for r in runs])
        self.restart_loglik_spread_ = float(np.ptp(lls)) if len(runs) > 1 else 0.0

    def _least_informed(self, info) -> list[str]:
        """Parameters along the direction of least information of ``info`` (estimated
        quantities only): each quantity loading by at least :data:`SINGULAR_LOADING` on
        the eigenvector of the smallest eigenvalue of the correlation-scaled information,
        largest first."""
        p = len(self.parameters)
        labels = ([f"{n} (typical value)" for n in self.parameters]
                  + [f"{n} (random effect)" for n in self.parameters] + list(self._resid.names))
        free = [k for k in range(len(labels))
                if not (p <= k < 2 * p and k - p in self._fixed_omega_index())]
        m = info[np.ix_(free, free)]
        if not np.all(np.isfinite(m)):
            return []
        d = np.sqrt(np.maximum(np.abs(np.diag(m)), 1e-12))
        w, v = np.linalg.eigh(m / np.outer(d, d))
        load = np.abs(v[:, 0])
        return [labels[free[k]] for k in np.argsort(-load) if load[k] >= SINGULAR_LOADING]

    def _fixed_omega_index(self) -> set[int]:
        return {j for j, v in enumerate(self._om_fixed_sd()) if not math.isnan(v)}

    def _verdict(self, best) -> None:
        """``converged_``, ``status_`` and ``problem_parameters_``; a
        :class:`ConvergenceWarning` for each failure, naming the parameters concerned:
        drift at the end of the smoothing phase; non-finite standard errors (with the
        parameters along the direction of least information); an estimated omega that
        collapsed below :data:`OMEGA_COLLAPSE`; restarts whose typical values differ by more
        than a standard error or whose log-likelihoods differ by more than
        ``max(1, 3 x`` the largest Monte Carlo SE) - with the log-likelihoods in agreement
        the likelihood is flat along those parameters (the data do not identify them),
        otherwise the runs stopped at different optima."""
        problems: list[tuple[str, str]] = []
        flagged: dict[str, list[str]] = {}

        def flag(names, why):
            for n in names:
                reasons = flagged.setdefault(n.split(" (")[0], [])
                if why not in reasons:
                    reasons.append(why)

        fix = ("fix it (leave it out of fit.parameters and set +model.params.NAME=VALUE) or its "
               "random effect (omega_fixed), or run longer (fit.n_explore, fit.n_smooth)")
        if not best["stationary"]:
            problems.append((
                "parameters still drifting",
                "population fit (SAEM): parameters still drift at the end of the smoothing "
                f"phase (change up to {best['max_change']:.3g} in search units over its last "
                f"quarter, {best['drift']:.3g} x the allowed max({DRIFT_ABS:g}, "
                f"{DRIFT_SE:g} SE)): increase fit.n_explore/n_smooth"))
        se = np.sqrt(np.diag(self.cov_))
        if not np.all(np.isfinite(se)):
            weak = self._least_informed(self.information_)
            flag(weak, "standard errors not finite")
            where = (f"; the information is least along {', '.join(weak)}" if weak else "")
            problems.append((
                "se_not_finite",
                "population fit (SAEM): standard errors are not finite (the observed "
                "information by Louis' principle is not positive definite): some typical "
                f"values, omegas or residual SDs are not identifiable from these data{where}; "
                + fix.replace("it (", "one of them (", 1)))
        fixed = self._fixed_omega_index()
        small = [n for j, n in enumerate(self.parameters)
                 if j not in fixed and self.omega_[n] < OMEGA_COLLAPSE]
        if small:
            flag(small, "random effect collapsed to 0")
            problems.append((
                "omega_collapsed",
                "population fit (SAEM): the random effect of "
                + ", ".join(f"{n} (omega {self.omega_[n]:.2g})" for n in small)
                + f" collapsed below {OMEGA_COLLAPSE:g}: the data show no between-patient "
                "variability there and its standard errors are unreliable; fix its omega "
                "(omega_fixed) or the parameter (leave it out of fit.parameters)"))
        if len(self._runs) > 1:
            lls = np.array([r["loglik"] for r in self._runs])
            mc = max([r["loglik_se"] for r in self._runs if math.isfinite(r["loglik_se"])],
                     default=0.0)
            tol = max(1.0, 3.0 * mc)
            finite = bool(np.all(np.isfinite(lls)))
            ll_bad = finite and np.ptp(lls) > tol
            if self.restart_spread_se_ > 1.0 or ll_bad:
                off = sorted((n for n, v in self._restart_rel.items() if v > 1.0),
                             key=lambda n: -self._restart_rel[n])
                flag(off, "restarts disagree")
                on = f" on {', '.join(off)}" if off else ""
                ll_text = (f", log-likelihoods by {np.ptp(lls):.3g} (Monte Carlo SE {mc:.2g})"
                           if finite else "")
                if off and finite and not ll_bad:
                    why = ("the log-likelihoods agree, so the likelihood is flat along "
                           f"{', '.join(off)}: the data do not identify "
                           f"{'it' if len(off) == 1 else 'them'}")
                else:
                    k = int(np.nanargmax(np.where(np.isfinite(lls), lls, -np.inf)))
                    why = f"they stopped at different optima (the best, restart {k}, is reported)"
                problems.append((
                    "restarts_disagree",
                    f"population fit (SAEM): the {len(self._runs)} restarts disagree{on}: "
                    f"typical values differ by up to {self.restart_spread_se_:.3g} standard "
                    f"errors{ll_text}; {why}; "
                    + (fix.replace("it (", "one of them (", 1) if off else
                       "run longer (fit.n_explore, fit.n_smooth)") + "; compare restarts_"))
        self.problem_parameters_ = flagged
        self.converged_ = not problems
        self.status_ = "converged" if not problems else problems[0][0]
        for _, text in problems:
            warnings.warn(text, ConvergenceWarning, stacklevel=3)

    def _complete_derivs(self, phi, preds, mu, om2, x_res, rows):
        """Per-row gradient and Hessian of the complete-data log-likelihood in
        ``(mu, omega^2, ln sigma)`` (analytic in ``mu, omega^2``; central differences in
        ``ln sigma`` with the predictions held fixed), for a batch of evaluations ``rows``
        (:meth:`_rows`: one row per chain and patient)."""
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

        def ll(x):
            return self._ll_rows(preds, x, rows)

        f0 = ll(x_res)
        with np.errstate(invalid="ignore"):  # a chain at likelihood 0: -inf - -inf, zeroed
            for a in range(r):
                fp, fm_ = ll(x_res + E[a]), ll(x_res - E[a])
                G[:, 2 * p + a] = (fp - fm_) / (2 * h)
                H[:, 2 * p + a, 2 * p + a] = (fp - 2 * f0 + fm_) / h ** 2
                for b in range(a + 1, r):
                    v = (ll(x_res + E[a] + E[b]) - ll(x_res + E[a] - E[b])
                         - ll(x_res - E[a] + E[b]) + ll(x_res - E[a] - E[b])) / (4 * h * h)
                    H[:, 2 * p + a, 2 * p + b] = H[:, 2 * p + b, 2 * p + a] = v
        G[~np.isfinite(G)] = 0.0
        H[~np.isfinite(H)] = 0.0
        return G, H

    def _standard_errors(self, grads: np.ndarray, hess: np.ndarray, free=None):
        """Louis' observed information from the smoothing-phase samples; returns
        ``(cov, info)``. Quantities not estimated (``free`` False: a fixed omega) are left out
        of the inversion and get zero variance; cov is all NaN when the information of the
        estimated ones is not positive definite."""
        k = grads.shape[2]
        info = np.zeros((k, k))
        for i in range(grads.shape[1]):
            g = grads[:, i, :]
            info += -hess[:, i].mean(axis=0) - np.cov(g, rowvar=False, bias=True).reshape(k, k)
        return self._cov_from_info(info, free), info

    @staticmethod
    def _cov_from_info(info, free=None) -> np.ndarray:
        """Inverse of the information over the estimated quantities (``free``; the others get
        zero variance); all NaN when that part is not positive definite."""
        k = info.shape[0]
        free = np.ones(k, dtype=bool) if free is None else np.asarray(free, dtype=bool)
        cov = np.zeros((k, k))
        try:
            sub = np.linalg.inv(info[np.ix_(free, free)])
            if not np.all(np.diag(sub) > 0):
                raise np.linalg.LinAlgError
            cov[np.ix_(free, free)] = sub
        except np.linalg.LinAlgError:
            cov = np.full((k, k), np.nan)
        return cov

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

    def _loglik(self, samples, mu, om2, x_res, rng) -> tuple[float, float]:
        """Importance-sampling log-likelihood and its Monte Carlo SE.

        Per patient ``L_i = mean_k w_k``, ``w_k = p(y_i | phi_k) p(phi_k) / q_i(phi_k)``, with
        ``q_i`` a multivariate Student t (5 df) with the mean and the full covariance of the
        patient's smoothing-phase samples (the conditional distribution; its correlations,
        e.g. between the two contraction rates, matter: a diagonal proposal gives weights so
        uneven that 50 samples per patient are off by several units). The SE of ``ln L_i`` by
        the delta method is ``sd(w) / (sqrt(m) mean(w))``, and patients add independently:
        ``se = sqrt(sum_i se_i^2)``. ``(nan, nan)`` when skipped.
        """
        m = self._is_samples()
        if m <= 0 or samples.shape[0] < 2:
            return math.nan, math.nan
        return self._is_loglik(self._is_draws(samples, om2, rng, m), mu, om2, x_res)

    def _is_draws(self, samples, om2, rng, m: int, inflate: float = 1.0) -> dict:
        """``m`` draws per patient from the Student t proposal ``q_i`` of :meth:`_loglik`
        (fitted to the smoothing-phase ``samples``, shape (draws, patients, parameters); its
        covariance times ``inflate``), with their predictions (one batch of solves) and
        ``ln q_i``: everything the importance-sampling likelihood needs at any
        ``(mu, Omega, sigma)``."""
        n, p = samples.shape[1], samples.shape[2]
        nu = 5.0
        cm = samples.mean(axis=0)
        d = samples - cm
        cov = np.einsum("sia,sib->iab", d, d) / (samples.shape[0] - 1)
        if inflate != 1.0:
            cov = cov * inflate
        cov += np.diag(1e-6 * om2)[None]
        chol = np.linalg.cholesky(cov)
        z = rng.standard_normal((m, n, p))
        u = rng.chisquare(nu, size=(m, n)) / nu
        draws = cm + np.einsum("iab,kib->kia", chol, z) / np.sqrt(u)[..., None]
        pats = np.repeat(np.arange(n)[None, :], m, axis=0).ravel()
        pr = self._preds(pats, draws.reshape(m * n, p))
        log_det = np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        log_q = (special.gammaln((nu + p) / 2) - special.gammaln(nu / 2)
                 - 0.5 * p * math.log(nu * math.pi) - log_det[None, :]
                 - 0.5 * (nu + p) * np.log1p(np.sum(z * z, axis=2) / (u * nu)))
        return {"draws": draws, "preds": pr, "rows": self._rows(pats), "log_q": log_q}

    def _is_log_w(self, isd, mu, om2, x_res) -> np.ndarray:
        """``ln w`` of every draw (shape (draws, patients)) at ``(mu, om2, x_res)``."""
        m, n, _ = isd["draws"].shape
        ll = self._ll_rows(isd["preds"], x_res, isd["rows"]).reshape(m, n)
        return ll + self._log_prior(isd["draws"], mu, om2) - isd["log_q"]

    def _is_loglik(self, isd, mu, om2, x_res) -> tuple[float, float]:
        """The importance-sampling log-likelihood of :meth:`_loglik` and its Monte Carlo SE
        from the draws ``isd`` of :meth:`_is_draws`."""
        m = isd["draws"].shape[0]
        log_w = self._is_log_w(isd, mu, om2, x_res)
        lse = special.logsumexp(log_w, axis=0)
        with np.errstate(invalid="ignore"):  # a patient with no finite sample: NaN, -inf
            w = np.exp(log_w - lse[None, :])  # normalised per patient: mean(w) = 1/m
            se_i = np.sqrt(m / (m - 1) * np.sum((w - 1.0 / m) ** 2, axis=0))
        loglik = float(np.sum(lse - math.log(m)))
        return loglik, float(np.sqrt(np.sum(se_i ** 2)))

    def _is_information(self, isd, mu, om2, x_res) -> np.ndarray:
        """Observed information in ``(mu, omega^2, ln sigma)`` by Louis' principle with the
        expectations over the conditional distributions taken by self-normalised importance
        weights, ``I = sum_i (E_w[-H_i] - Var_w[g_i])`` (per-draw ``g, H`` of
        :meth:`_complete_derivs`). It is minus the Hessian of the importance-sampling
        log-likelihood of the same draws, and unlike the chains' version it is not biased
        by their autocorrelation (a single chain's variance about its own mean is too small
        by about its integrated autocorrelation time over its length)."""
        draws = isd["draws"]
        m, n, p = draws.shape
        log_w = self._is_log_w(isd, mu, om2, x_res)
        w = np.exp(log_w - special.logsumexp(log_w, axis=0)[None, :])
        w = np.where(np.isfinite(w), w, 0.0)
        g, h = self._complete_derivs(draws.reshape(m * n, p), isd["preds"], mu, om2, x_res,
                                     isd["rows"])
        k = g.shape[1]
        g, h = g.reshape(m, n, k), h.reshape(m, n, k, k)
        eg = np.einsum("mi,mia->ia", w, g)
        egg = np.einsum("mi,mia,mib->iab", w, g, g)
        eh = np.einsum("mi,miab->iab", w, h)
        return np.sum(-eh - (egg - eg[:, :, None] * eg[:, None, :]), axis=0)

    def _refine_ml(self, isd, mu, om2, x_res, om_free):
        """Maximum of the importance-sampling log-likelihood of the draws ``isd`` over
        ``(mu, ln omega^2, ln sigma)`` (fixed omegas and fixed residual SDs held), from the
        SAEM estimate: Monte Carlo maximum likelihood with the draws held fixed (Geyer 1994,
        J R Stat Soc B 56:261), which needs no further solves. Why (issue 17): with one
        chain per patient the SAEM estimate of an ODE model stays up to ~0.5 standard errors
        from the maximum of the likelihood along weakly identified typical values (measured
        on re-drawn 20-patient ``cd7`` cohorts against this maximum over independent draw
        sets). The search is kept within :data:`REFINE_BOX` of the SAEM estimate; ending on
        that box, failing, or a non-positive-definite information rejects the refinement
        (None). Returns ``(mu, om2, x_res, cov, info)`` with the information of
        :meth:`_is_information` at the maximum."""
        p, r = mu.size, x_res.size
        free_om = np.flatnonzero(om_free)
        lo_x, hi_x = np.array(self._resid.bounds, dtype=np.float64).reshape(-1, 2).T \
            if r else (np.zeros(0), np.zeros(0))
        sd = np.sqrt(om2)
        step = math.log(REFINE_BOX)
        lower = np.concatenate([np.maximum(mu - sd, self._box[0]), np.log(om2[free_om]) - 2 * step,
                                np.maximum(x_res - step, lo_x)])
        upper = np.concatenate([np.minimum(mu + sd, self._box[1]), np.log(om2[free_om]) + 2 * step,
                                np.minimum(x_res + step, hi_x)])
        h = 1e-5

        def unpack(th):
            o2 = om2.copy()
            o2[free_om] = np.exp(th[p:p + free_om.size])
            return th[:p], o2, th[p + free_om.size:]

        def nll_grad(th):
            m_, o2, xr = unpack(th)
            log_w = self._is_log_w(isd, m_, o2, xr)
            lse = special.logsumexp(log_w, axis=0)
            val = -float(np.sum(lse))
            if not math.isfinite(val):
                return 1e300, np.zeros_like(th)
            w = np.exp(log_w - lse[None, :])
            d = isd["draws"] - m_
            g_mu = np.einsum("mi,mia->a", w, d) / o2
            g_om = np.einsum("mi,mia->a", w, 0.5 * d * d / o2 - 0.5)[free_om]
            g_x = np.empty(r)
            for a in range(r):  # the predictions are fixed: central differences are cheap
                e = np.zeros(r)
                e[a] = h
                vp = -np.sum(special.logsumexp(self._is_log_w(isd, m_, o2, xr + e), axis=0))
                vm = -np.sum(special.logsumexp(self._is_log_w(isd, m_, o2, xr - e), axis=0))
                g_x[a] = (vp - vm) / (2 * h)
            return val, np.concatenate([-g_mu, -g_om, g_x])

        th0 = np.concatenate([mu, np.log(om2[free_om]), x_res])
        th0 = np.clip(th0, lower, upper)
        with np.errstate(invalid="ignore", over="ignore"):
            res = optimize.minimize(nll_grad, th0, jac=True, method="L-BFGS-B",
                                    bounds=list(zip(lower, upper)))
        if not (res.success and np.all(np.isfinite(res.x))):
            return None
        on_box = (np.abs(res.x - lower) < 1e-6) & (lower > np.concatenate(
            [self._box[0], np.full(free_om.size, -np.inf), lo_x]))
        on_box |= (np.abs(res.x - upper) < 1e-6) & (upper < np.concatenate(
            [self._box[1], np.full(free_om.size, np.inf), hi_x]))
        if np.any(on_box):
            return None
        m_, o2, xr = unpack(res.x)
        info = self._is_information(isd, m_, o2, xr)
        free = np.concatenate([np.ones(p, bool), om_free, np.ones(r, bool)])
        cov = self._cov_from_info(info, free)
        if not np.all(np.isfinite(cov)):
            return None
        return m_, o2, xr, cov, info
