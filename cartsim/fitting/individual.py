"""Individual fit: maximum likelihood for one patient, with standard errors and profiles.

Estimates chosen model parameters ``theta`` and the residual-error parameters
of every analyte by maximising the censored log-likelihood
(:mod:`cartsim.fitting.likelihood`)::

    l(theta, sigma) = sum_j l_j(f_j(theta), y_j; sigma_a(j))

Search space
    ``phi = T(theta)`` (log / logit, :mod:`cartsim.fitting.transforms`) with the
    bounds of each parameter's :class:`~cartsim.parameters.base.Parameter`, and
    ``ln sigma`` for the error parameters.
Multi-start
    ``n_starts`` points (the start value plus a scrambled Sobol design,
    ``scipy.stats.qmc``, seeded by ``random_state``, within ``start_spread`` of
    the start in search units) are screened in one batch; a local optimiser
    runs from the best ``n_local`` of them: by default Levenberg-Marquardt on
    the likelihood profiled over the error parameters (Jacobian of ``ln f`` by
    forward differences, one compiled batch per iteration; Gauss-Newton
    curvature of every observation's term, exact for the M3 term's
    dependence on ``ln f``), or L-BFGS-B on all parameters
    (``optimizer="lbfgsb"``). Convergence: small projected gradient or
    relative decrease; otherwise ``status_`` says why it stopped and a
    :class:`~cartsim.fitting.messages.ConvergenceWarning` is issued.
Uncertainty
    Observed information ``I = -d2 l / dphi2`` by central finite differences
    at the optimum (one batch); ``cov(phi) = n/(n-k) I^-1`` (``n`` observations,
    ``k`` estimated quantities: the small-sample correction of nonlinear
    regression, Bates & Watts 1988, without which 12-point curves under-cover
    by ~15%); Wald 95% intervals ``phi +- t(0.975, n-k) se(phi)`` mapped back to
    ``theta`` (asymmetric for log parameters) and ``se(theta) = |dtheta/dphi|
    se(phi)`` (delta method).
    Profile-likelihood intervals for chosen parameters: the set where
    ``2 (l_max - l_p(theta_k)) <= 3.84`` (chi-square, 1 df, 95%); a profile that
    does not rise to that level on a side is flat: the parameter is not
    identifiable there (:class:`~cartsim.fitting.messages.IdentifiabilityWarning`).

References: Raue et al. 2009, Bioinformatics 25:1923 (profile likelihood);
Beal 2001, J Pharmacokinet Pharmacodyn 28:481 (M3).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import optimize, stats
from scipy.stats import qmc

from cartsim.fitting.data import Observations
from cartsim.fitting.forward import ForwardModel
from cartsim.fitting.likelihood import ResidualModel, loglik_terms
from cartsim.fitting.messages import ConvergenceWarning, IdentifiabilityWarning
from cartsim.fitting.transforms import default_transform
from cartsim.scenario import Scenario, ScenarioError

__all__ = ["CHI2_95", "IndividualFit"]

CHI2_95 = 3.841458820694124
"""95% quantile of chi-square with 1 degree of freedom (profile-likelihood threshold)."""
Z_95 = 1.959963984540054
PENALTY = 1e10
"""Negative log-likelihood given to a failed solve (finite, so L-BFGS-B backs off)."""


class _Objective:
    """Negative log-likelihood of one patient as a function of the search vector."""

    def __init__(self, fm: ForwardModel, patient: int, transforms, resid: ResidualModel,
                 fd_step: float, central: bool = False):
        self.fm, self.patient, self.tf, self.resid = fm, patient, transforms, resid
        idx = fm.index[patient]
        self.dv = fm.data.dv[idx]
        self.cens = fm.data.cens[idx]
        self.n_par = len(transforms)
        self.fd_step = fd_step
        self.central = central
        self.nfev = 0

    def theta(self, x) -> np.ndarray:
        return np.array([t.to_model(v) for t, v in zip(self.tf, x[: self.n_par])])

    def preds(self, X: np.ndarray) -> list[np.ndarray]:
        """Predictions for rows of ``X``, solving each distinct model part once."""
        parts, inverse = np.unique(X[:, : self.n_par], axis=0, return_inverse=True)
        theta = np.array([self.theta(p) for p in parts])
        out = self.fm.predict([self.patient] * len(parts), theta)
        self.nfev += len(parts)
        return [out[k] for k in np.asarray(inverse).ravel()]

    def nll_rows(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        res = []
        for x, f in zip(X, self.preds(X)):
            sp, sa = self.resid.sigmas(x[self.n_par:])
            ll = float(np.sum(loglik_terms(f, self.dv, self.cens, sp, sa)))
            res.append(-ll if math.isfinite(ll) else PENALTY)
        return np.array(res)

    def value_and_grad(self, x):
        h = self.fd_step
        n = len(x)
        if self.central:
            X = np.tile(x, (2 * n + 1, 1))
            X[1:n + 1] += h * np.eye(n)
            X[n + 1:] -= h * np.eye(n)
            v = self.nll_rows(X)
            return v[0], (v[1:n + 1] - v[n + 1:]) / (2 * h)
        X = np.tile(x, (n + 1, 1))
        X[1:] += h * np.eye(n)
        v = self.nll_rows(X)
        return v[0], (v[1:] - v[0]) / h

    # -- Levenberg-Marquardt on the profile likelihood ---------------------------------------------
    def _obs_derivs(self, u, x_res):
        """Per-observation nll and its first two derivatives in ``u = ln f`` (central
        differences; no model solve)."""
        sp, sa = self.resid.sigmas(x_res)
        h = 1e-4
        f0 = -loglik_terms(np.exp(u), self.dv, self.cens, sp, sa)
        fp = -loglik_terms(np.exp(u + h), self.dv, self.cens, sp, sa)
        fm = -loglik_terms(np.exp(u - h), self.dv, self.cens, sp, sa)
        return f0, (fp - fm) / (2 * h), np.maximum((fp - 2 * f0 + fm) / (h * h), 0.0)

    def _best_residual(self, f, x_res):
        """``argmin`` over the error parameters with the predictions held fixed.

        Closed form ``sigma_a^2 = mean(ln y - ln f)^2`` when every analyte has a proportional
        model and no censored value; a bounded quasi-Newton search otherwise.
        """
        resid = self.resid
        if not self.cens.any() and all(k == "proportional" for k in resid.kinds.values()):
            z = np.log(self.dv) - np.log(np.maximum(f, 1e-30))
            x = np.empty(len(resid))
            for a in resid.analytes:
                j = resid._prop[a]
                lo, hi = resid.bounds[j]
                x[j] = np.clip(0.5 * math.log(max(np.mean(z[resid._masks[a]] ** 2), 1e-300)),
                               lo, hi)
            sp, sa = resid.sigmas(x)
            v = -float(np.sum(loglik_terms(f, self.dv, self.cens, sp, sa)))
            return x, (v if math.isfinite(v) else PENALTY)

        def nll(z):
            sp, sa = self.resid.sigmas(z)
            v = -np.sum(loglik_terms(f, self.dv, self.cens, sp, sa))
            return v if math.isfinite(v) else PENALTY

        r = optimize.minimize(nll, x_res, method="L-BFGS-B", bounds=self.resid.bounds)
        return r.x, float(r.fun)

    def levenberg_marquardt(self, x0, lo, hi, max_iter: int):
        """Minimise the nll profiled over the error parameters by Levenberg-Marquardt.

        With ``u_j = ln f_j(phi)`` and ``J = du/dphi`` (forward differences, one batch),
        the gradient is ``J^T d1`` and the Gauss-Newton curvature ``J^T diag(d2) J`` with
        ``d1_j, d2_j`` the derivatives of observation ``j``'s nll in ``u_j`` (exact
        curvature of the Gaussian and of the M3 term, ``lambda (lambda + z) / W^2 >= 0``).
        The error parameters are re-optimised at every accepted point (cheap: no solve).
        Steps are projected onto the bounds. Returns an ``OptimizeResult``-like object.
        """
        n = self.n_par
        h = self.fd_step * 10
        x = np.clip(np.array(x0, dtype=np.float64), lo, hi)
        lam = 1e-2
        f = self.preds(x[None, :])[0]
        x[n:], fval = self._best_residual(f, x[n:])
        status, nit, msg = False, 0, "maximum number of iterations reached"
        if not np.all(np.isfinite(f)):
            return optimize.OptimizeResult(x=x, fun=PENALTY, success=False, nit=0,
                                           message="the model could not be solved at the start")
        lams = np.array([1.0, 4.0, 16.0, 64.0])
        while nit < max_iter:
            nit += 1
            X = np.tile(x, (n, 1))
            step = np.where(x[:n] + h <= hi[:n], h, -h)
            X[:, :n] += np.diag(step)
            P = self.preds(X)
            u0 = np.log(np.maximum(f, 1e-30))
            J = np.column_stack([(np.log(np.maximum(P[k], 1e-30)) - u0) / step[k]
                                 for k in range(n)])
            J[~np.isfinite(J)] = 0.0
            _, d1, d2 = self._obs_derivs(u0, x[n:])
            g = J.T @ d1
            H = J.T @ (d2[:, None] * J)
            free = ~(((x[:n] <= lo[:n]) & (g > 0)) | ((x[:n] >= hi[:n]) & (g < 0)))
            if np.max(np.abs(g[free]), initial=0.0) < 1e-3:
                status, msg = True, "gradient below 1e-3"
                break
            improved, small = False, False
            for _ in range(4):
                # four damping levels tried as one batch (parallel solves)
                trials = []
                for lm in lam * lams:
                    A = H + lm * (np.diag(np.diag(H)) + 1e-9 * np.eye(n))
                    try:
                        delta = -np.linalg.solve(A, g)
                    except np.linalg.LinAlgError:
                        delta = -g / (lm * (1.0 + np.abs(np.diag(H))))
                    xn = x.copy()
                    xn[:n] = np.clip(x[:n] + delta, lo[:n], hi[:n])
                    trials.append(xn)
                FN = self.preds(np.array(trials))
                best_k, best_v, best_r = -1, fval, None
                for k, fn in enumerate(FN):
                    if np.all(np.isfinite(fn)):
                        xr, fv = self._best_residual(fn, x[n:])
                        if fv < best_v:
                            best_k, best_v, best_r = k, fv, xr
                if best_k >= 0:
                    improved = True
                    small = fval - best_v < 1e-5 * max(1.0, abs(fval))
                    x = trials[best_k]
                    x[n:] = best_r
                    f, fval = FN[best_k], best_v
                    lam = max(lam * lams[best_k] / 4, 1e-7)
                    break
                lam *= 256
            if not improved:
                status, msg = True, "no further decrease (local minimum within tolerance)"
                break
            if small:
                status, msg = True, "relative decrease below 1e-5"
                break
        return optimize.OptimizeResult(x=x, fun=fval, success=status, nit=nit, message=msg)

    def hessian(self, x, h: float) -> np.ndarray:
        n = len(x)
        E = h * np.eye(n)
        rows = [x]
        for i in range(n):
            rows += [x + E[i], x - E[i]]
        for i in range(n):
            for j in range(i + 1, n):
                rows += [x + E[i] + E[j], x + E[i] - E[j], x - E[i] + E[j], x - E[i] - E[j]]
        v = self.nll_rows(np.array(rows))
        H = np.empty((n, n))
        f0 = v[0]
        for i in range(n):
            H[i, i] = (v[1 + 2 * i] - 2 * f0 + v[2 + 2 * i]) / h ** 2
        k = 1 + 2 * n
        for i in range(n):
            for j in range(i + 1, n):
                H[i, j] = H[j, i] = (v[k] - v[k + 1] - v[k + 2] + v[k + 3]) / (4 * h * h)
                k += 4
        return H


class IndividualFit:
    """Maximum-likelihood fit of selected parameters to one patient's observations.

    Follows the scikit-learn estimator contract: ``__init__`` stores options,
    :meth:`fit` validates the data, estimates and returns ``self``; learned
    values end in ``_``.

    Parameters
    ----------
    parameters : names of the model parameters to estimate (others keep the
        scenario's values).
    model : ``cd7`` or ``stein2019`` (ignored when ``base`` is given: its model is used).
    base : scenario every patient starts from (covariates and doses of the data
        replace its fields); default ``Scenario(model=ModelConfig(model))``.
    error : analyte -> ``proportional`` or ``combined`` (default proportional).
    transforms : parameter -> ``log``, ``logit`` or ``none`` (default: log if the
        lower bound is > 0, else logit).
    init : parameter -> start value (model units); default the scenario's value.
    n_starts, n_local : design points screened / local optimisations run from the best.
    start_spread : half-width of the start design around the start (search units;
        1.0 = a factor e for log parameters).
    profile : parameters to profile (likelihood-based 95% intervals).
    max_iter : L-BFGS-B iterations per local optimisation.
    fd_step, hessian_step : finite-difference steps in search space.
    method, rtol : ODE solver settings during the fit.
    gradient : ``forward`` or ``central`` finite differences (``auto``: central for the
        closed-form ``stein2019`` model, where evaluations are cheap and exact; forward
        for ODE models).
    optimizer : ``lm`` (default: Levenberg-Marquardt on the likelihood profiled over the
        error parameters, Gauss-Newton curvature per observation, see
        :meth:`_Objective.levenberg_marquardt`) or ``lbfgsb`` (L-BFGS-B on all of them).
    random_state : seed of the start design.

    Attributes
    ----------
    params_ : estimated parameters and error parameters (model units).
    se_ : standard errors (delta method; NaN where the information is singular).
    ci_ : Wald 95% intervals ``(low, high)`` (mapped back from search space).
    profile_ci_ : profile-likelihood 95% intervals (``-inf`` / ``inf`` where flat).
    profile_ : per profiled parameter, ``{"value": grid, "loglik": l_p}``.
    cov_ : covariance of the search vector (``phi`` and ``ln sigma``).
    at_bound_ : names of estimates that ended on a bound of their search interval; they are
        held fixed for the covariance (no standard error, an ``IdentifiabilityWarning``).
    loglik_, aic_, bic_ : maximised log-likelihood (of ln Y), AIC, BIC.
    n_obs_, n_censored_ : observations used, of which censored.
    converged_, status_, message_ : convergence flag, short status, optimiser message.
    nfev_ : model evaluations (patient solves) in total.
    predictions_ : predicted observations at the estimate.
    patient_id_ : the patient fitted.
    """

    def __init__(self, parameters: Sequence[str], *, model: str = "cd7",
                 base: Scenario | None = None, error: Mapping[str, str] | None = None,
                 transforms: Mapping[str, str] | None = None,
                 init: Mapping[str, float] | None = None, n_starts: int = 8, n_local: int = 1,
                 start_spread: float = 1.0, profile: Sequence[str] = (), max_iter: int = 200,
                 fd_step: float = 1e-5, hessian_step: float = 5e-3, method: str = "bdf",
                 rtol: float = 1e-8, gradient: str = "auto", optimizer: str = "lm",
                 random_state: int | None = 0):
        self.parameters = list(parameters)
        self.model = model
        self.base = base
        self.error = dict(error or {})
        self.transforms = dict(transforms or {})
        self.init = dict(init or {})
        self.n_starts = n_starts
        self.n_local = n_local
        self.start_spread = start_spread
        self.profile = list(profile)
        self.max_iter = max_iter
        self.fd_step = fd_step
        self.hessian_step = hessian_step
        self.method = method
        self.rtol = rtol
        self.gradient = gradient
        self.optimizer = optimizer
        self.random_state = random_state

    # -- setup ----------------------------------------------------------------------------------
    def _setup(self, data: Observations, patient):
        if not self.parameters:
            raise ScenarioError("fit.parameters is empty: name at least one model parameter")
        if self.n_starts < 1 or self.n_local < 1:
            raise ScenarioError("fit.n_starts and fit.n_local must be >= 1")
        if data.n_patients > 1 and patient is None:
            raise ScenarioError(f"{data.source} holds {data.n_patients} patients: pass patient= "
                                "(an ID) for an individual fit, or use PopulationFit")
        one = data.select(patient if patient is not None else 0)
        from cartsim.scenario import ModelConfig

        base = self.base or Scenario(model=ModelConfig(name=self.model))
        fm = ForwardModel(one, one.scenarios(base), self.parameters, method=self.method,
                          rtol=self.rtol)
        pset = fm.model.parameters
        for name in self.profile:
            if name not in self.parameters:
                raise ScenarioError(f"fit.profile: {name!r} is not among fit.parameters "
                                    f"({', '.join(self.parameters)})")
        tfs = [default_transform(pset[n].lower, pset[n].upper, self.transforms.get(n))
               for n in self.parameters]
        scale = {a: float(np.median(one.dv[one.analyte == a])) for a in one.analytes}
        resid = ResidualModel(one.analytes, self.error, one.analyte, scale)
        return one, fm, tfs, resid

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, data: Observations, patient=None) -> IndividualFit:
        """Estimate the parameters from ``data`` (one patient, or the one named by ``patient``).

        Returns
        -------
        self
        """
        one, fm, tfs, resid = self._setup(data, patient)
        central = {"auto": fm.model_name == "stein2019", "central": True,
                   "forward": False}.get(self.gradient)
        if central is None:
            raise ScenarioError(f"gradient={self.gradient!r} is not accepted: expected auto, "
                                "central or forward")
        obj = _Objective(fm, 0, tfs, resid, self.fd_step * (100 if central else 1), central)
        self._fm = fm
        n_par = len(tfs)
        start_theta = [self.init.get(n, fm.base_value(n)) for n in self.parameters]
        x0 = np.concatenate([[t.to_search(v) for t, v in zip(tfs, start_theta)], resid.start])
        bounds = [t.search_bounds() for t in tfs] + list(resid.bounds)
        lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
        hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
        x0 = np.clip(x0, lo, hi)
        starts = [x0]
        if self.n_starts > 1:
            sob = qmc.Sobol(n_par, scramble=True, seed=self.random_state)
            m = max(0, math.ceil(math.log2(self.n_starts - 1)))
            u = sob.random_base2(m)[: self.n_starts - 1]
            for row in u:
                x = x0.copy()
                x[:n_par] = x0[:n_par] + self.start_spread * (2 * row - 1)
                starts.append(np.clip(x, lo, hi))
        starts = np.array(starts)
        screen = obj.nll_rows(starts)
        order = np.argsort(screen)[: self.n_local]
        best = None
        for k in order:
            if self.optimizer == "lm":
                res = obj.levenberg_marquardt(starts[k], lo, hi, self.max_iter)
            else:
                res = optimize.minimize(obj.value_and_grad, starts[k], jac=True,
                                        method="L-BFGS-B", bounds=bounds,
                                        options={"maxiter": self.max_iter})
            if best is None or res.fun < best.fun:
                best = res
        x = best.x
        self.x_ = x
        self.starts_ = starts
        self.start_nll_ = screen
        self._obj, self._tfs, self._resid, self._bounds = obj, tfs, resid, bounds
        names = self.parameters + resid.names
        # convergence: L-BFGS-B success, or a stationary point by the projected gradient
        self.message_ = str(best.message)
        stationary = False
        if not best.success and best.fun < PENALTY / 2:
            _, g = obj.value_and_grad(x)
            at_bound = (np.isclose(x, lo) & (g > 0)) | (np.isclose(x, hi) & (g < 0))
            g_free = np.where(at_bound, 0.0, g)
            stationary = bool(np.max(np.abs(g_free)) < 1e-2 * max(1.0, abs(best.fun)) ** 0.5)
        self.converged_ = bool(best.fun < PENALTY / 2 and (best.success or stationary))
        if best.fun >= PENALTY / 2:
            self.status_ = "failed: the model could not be solved at any start"
        elif not self.converged_:
            self.status_ = ("max_iterations" if best.nit >= self.max_iter else "not_converged")
        else:
            self.status_ = "converged"
        self.nit_ = int(best.nit)
        if not self.converged_:
            warnings.warn(f"individual fit of patient {one.ids[0]!r} did not converge "
                          f"({self.status_}: {self.message_}); estimates are unreliable",
                          ConvergenceWarning, stacklevel=2)
        self.loglik_ = -float(best.fun) if best.fun < PENALTY / 2 else -math.inf
        k = len(x)
        self.n_obs_ = int(one.dv.size)
        self.n_censored_ = int(one.cens.sum())
        self.aic_ = 2 * k - 2 * self.loglik_
        self.bic_ = k * math.log(self.n_obs_) - 2 * self.loglik_
        self.patient_id_ = one.ids[0]
        self.data_ = one
        self.predictions_ = obj.preds(x[None, :])[0]
        self.ipred_ = self.predictions_
        self.ppred_ = fm.predict([0], fm.defaults[None, :])[0]
        # observed information and Wald intervals
        H = obj.hessian(x, self.hessian_step)
        self.hessian_ = H
        # an estimate on a bound of its search interval is not an interior maximum: it is
        # held fixed (no standard error), and the others get theirs conditional on it
        width = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
        on_bound = (np.abs(x - lo) <= 1e-6 * width) | (np.abs(hi - x) <= 1e-6 * width)
        self.at_bound_ = [n for n, b in zip(names, on_bound) if b]
        if self.at_bound_:
            warnings.warn(f"patient {one.ids[0]!r}: {', '.join(self.at_bound_)} on a bound of "
                          "the search interval: held fixed for the standard errors of the "
                          "others (no standard error of its own)", IdentifiabilityWarning,
                          stacklevel=2)
        free = ~on_bound
        cov = np.full((k, k), np.nan)
        Hf = H[np.ix_(free, free)]
        try:
            if free.any() and np.all(np.isfinite(Hf)) and np.all(np.linalg.eigvalsh(Hf) > 0):
                cov[np.ix_(free, free)] = np.linalg.inv(Hf)
        except np.linalg.LinAlgError:
            pass
        if free.any() and not np.all(np.isfinite(cov[np.ix_(free, free)])):
            warnings.warn(f"patient {one.ids[0]!r}: the observed information is not positive "
                          "definite: some of " + ", ".join(np.array(names)[free]) + " are not "
                          "identifiable from these data (standard errors are NaN)",
                          IdentifiabilityWarning, stacklevel=2)
        # small-sample correction as in nonlinear regression (Bates & Watts 1988, ch. 2):
        # covariance scaled by n/(n-k) and t quantiles with n-k degrees of freedom
        dof = self.n_obs_ - k
        if dof > 0:
            cov = cov * self.n_obs_ / dof
            z = float(stats.t.ppf(0.975, dof))
        else:
            z = Z_95
        self.cov_ = cov
        se_x = np.sqrt(np.diag(cov))
        tf_all = tfs + [default_transform(1e-300, math.inf, "log")] * len(resid)
        values = np.array([t.to_model(v) for t, v in zip(tf_all, x)])
        self.params_ = dict(zip(names, values.tolist()))
        jac = np.array([t.jacobian(v) for t, v in zip(tf_all, x)])
        self.se_ = dict(zip(names, (np.abs(jac) * se_x).tolist()))
        self.ci_ = {n: (float(t.to_model(v - z * s)), float(t.to_model(v + z * s)))
                    for n, t, v, s in zip(names, tf_all, x, se_x)}
        self.profile_, self.profile_ci_ = {}, {}
        for name in self.profile:
            self._profile(name)
        return self

    # -- profile likelihood ---------------------------------------------------------------------
    def _profile(self, name: str, max_steps: int = 8) -> None:
        obj, tfs, x = self._obj, self._tfs, self.x_
        i = self.parameters.index(name)
        lo_b, hi_b = self._bounds[i]
        se = math.sqrt(self.cov_[i, i]) if np.isfinite(self.cov_[i, i]) else 0.5
        step = min(max(se, 0.05), 1.0)
        others = [b for j, b in enumerate(self._bounds) if j != i]
        grid, ll = [float(x[i])], [self.loglik_]
        ends = {}
        for sign in (-1.0, 1.0):
            xs = x.copy()
            for s in range(1, max_steps + 1):
                v = x[i] + sign * s * step
                bound = lo_b if sign < 0 else hi_b
                if bound is not None and (v - bound) * sign >= 0:
                    v = bound
                free = np.delete(xs, i)

                def fg(z, v=v):
                    full = np.insert(z, i, v)
                    f, g = obj.value_and_grad(full)
                    return f, np.delete(g, i)

                r = optimize.minimize(fg, free, jac=True, method="L-BFGS-B", bounds=others,
                                      options={"maxiter": self.max_iter})
                xs = np.insert(r.x, i, v)
                grid.append(float(v))
                ll.append(-float(r.fun))
                if 2 * (self.loglik_ + r.fun) > CHI2_95:
                    ends[sign] = True
                    break
                if bound is not None and v == bound:
                    break
        order = np.argsort(grid)
        g = np.array(grid)[order]
        l = np.array(ll)[order]
        tf = tfs[i]
        self.profile_[name] = {"value": tf.to_model(g), "loglik": l}
        drop = 2 * (self.loglik_ - l) - CHI2_95
        k0 = int(np.argmin(np.abs(g - x[i])))
        ci = []
        for sign, rng in ((-1.0, range(k0, 0, -1)), (1.0, range(k0, len(g) - 1))):
            val = -math.inf if sign < 0 else math.inf
            for k in rng:
                a, b = (k - 1, k) if sign < 0 else (k, k + 1)
                if (drop[a] > 0) != (drop[b] > 0):
                    t = drop[a] / (drop[a] - drop[b])
                    val = float(tf.to_model(g[a] + t * (g[b] - g[a])))
                    break
            ci.append(val)
        self.profile_ci_[name] = (ci[0], ci[1])
        flat = [side for side, v in zip(("lower", "upper"), ci) if not math.isfinite(v)]
        if flat:
            warnings.warn(f"patient {self.patient_id_!r}: the likelihood profile of {name} is "
                          f"flat on the {' and '.join(flat)} side (it does not fall by "
                          f"{CHI2_95:.2f}/2 within the searched range): {name} is not "
                          "identifiable from these data", IdentifiabilityWarning, stacklevel=3)

    # -- for results / plots -------------------------------------------------------------------
    def _x_res(self) -> np.ndarray:
        return self.x_[len(self.parameters):]

    def _individual_theta(self) -> np.ndarray:
        return self._obj.theta(self.x_)[None, :]

    def _draw_parameters(self, n_rep: int, rng: np.random.Generator):
        """Parameter draws from the estimate's uncertainty (normal in search space)."""
        n_par = len(self.parameters)
        x = np.tile(self.x_[:n_par], (n_rep, 1))
        cov = self.cov_[:n_par, :n_par]
        if np.all(np.isfinite(cov)):
            x = x + rng.multivariate_normal(np.zeros(n_par), cov, size=n_rep,
                                            method="eigh")
        return [0] * n_rep, np.array([self._obj.theta(r) for r in x])

    # -- summaries ------------------------------------------------------------------------------
    def summary(self) -> str:
        """A printable table of the estimates."""
        from cartsim.fitting.report import format_table

        return format_table(self)
