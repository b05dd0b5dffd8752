"""What a population fit estimates after SAEM: standard errors, individual estimates and
the log-likelihood (the methods of :class:`~cartsim.fitting.population.PopulationFit` that
read a finished SAEM run; see that module's docstring for the maths).

* :meth:`SAEMEstimates._standard_errors`: the observed information by Louis' principle,
  ``I = sum_i (E[-H_i] - Var[g_i])`` over the smoothing-phase samples (Kuhn & Lavielle
  2005, Comput Stat Data Anal 49:1020, section 2.3), with the per-patient derivatives of
  :meth:`SAEMEstimates._complete_derivs`;
* :meth:`SAEMEstimates._ebe`: conditional modes of every patient's parameters;
* :meth:`SAEMEstimates._loglik`: the importance-sampling log-likelihood and its Monte Carlo
  standard error.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from cartsim.fitting.likelihood import loglik_terms

__all__ = ["SAEMEstimates"]


class SAEMEstimates:
    """Mixin of :class:`~cartsim.fitting.population.PopulationFit`: it uses the fit's
    ``_preds``, ``_ll_patient``, ``_log_prior``, ``_sig_cache``, ``_fm``, ``_dv`` and
    ``_cens``."""

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

    def _standard_errors(self, grads: np.ndarray, hess: np.ndarray):
        """Louis' observed information from the smoothing-phase samples; returns
        ``(cov, info)`` (cov all NaN when the information is not positive definite)."""
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
        return cov, info

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

        Per patient ``L_i = mean_k w_k``, ``w_k = p(y_i | phi_k) p(phi_k) / q(phi_k)``; the SE
        of ``ln L_i`` by the delta method is ``sd(w) / (sqrt(m) mean(w))``, and patients add
        independently: ``se = sqrt(sum_i se_i^2)``. ``(nan, nan)`` when skipped.
        """
        m = int(self.is_samples)
        if m <= 0 or samples.shape[0] < 2:
            return math.nan, math.nan
        n, p = samples.shape[1], samples.shape[2]
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
        lse = special.logsumexp(log_w, axis=0)
        with np.errstate(invalid="ignore"):  # a patient with no finite sample: NaN, -inf
            w = np.exp(log_w - lse[None, :])  # normalised per patient: mean(w) = 1/m
            se_i = np.sqrt(m / (m - 1) * np.sum((w - 1.0 / m) ** 2, axis=0))
        loglik = float(np.sum(lse - math.log(m)))
        return loglik, float(np.sqrt(np.sum(se_i ** 2)))
