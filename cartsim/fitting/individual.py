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
    ``n_starts`` points are screened in one batch: the given start value, the
    data-driven start of a non-compartmental read (observed peak, its day, the
    expansion and decline slopes; :mod:`cartsim.fitting.nca`), and a scrambled
    Sobol design (``scipy.stats.qmc``, seeded by ``random_state``) within
    ``start_spread`` search units of either. By default ``n_starts`` and
    ``n_local`` scale with the number of estimated quantities
    (:func:`default_design`). A local optimiser runs from the best ``n_local``
    of them: by default Levenberg-Marquardt on the likelihood profiled over the
    error parameters (Jacobian of ``ln f`` by central differences for the closed
    form, forward for ODE models, one batch per iteration; Gauss-Newton curvature
    of every observation's term, exact for the M3 term's dependence on ``ln f``),
    or L-BFGS-B on all parameters (``optimizer="lbfgsb"``); a Nelder-Mead polish
    where the best optimum sits on a kink of the likelihood.
Verdict
    ``converged_`` is True only when (i) the best optimum was reached from at
    least two distinct starts within ``reproduce_tol`` of -2LL, (ii) -LL falls
    along no search coordinate by more than ``gtol`` per unit (one-sided
    differences: the projected gradient at a smooth point, robust at kinks and
    bounds), (iii) no estimate sits on a bound of its search interval (a residual
    SD on its floor included; a fixed SD is not estimated) and (iv) every
    standard error is finite. Otherwise ``status_`` names the first failed check,
    ``checks_`` holds all, and a
    :class:`~cartsim.fitting.messages.ConvergenceWarning` says them in words.
    Fewer quantified observations than estimated quantities is a
    :class:`~cartsim.fitting.messages.FitWarning` naming the patient.
Uncertainty
    Observed information ``I = -d2 l / dphi2`` by central finite differences
    at the optimum (one batch); where it is not positive definite at ``hessian_step``, a
    ladder of halved steps with Richardson extrapolation decides whether it is positive
    definite beyond its finite-difference error
    (:func:`~cartsim.fitting.objective.observed_information`), else ``se_not_finite`` names
    the direction of least information; ``cov(phi) = n/(n-k) I^-1`` (``n`` observations,
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
from cartsim.fitting.likelihood import ResidualModel
from cartsim.fitting.messages import ConvergenceWarning, FitWarning, IdentifiabilityWarning
from cartsim.fitting.nca import nca_read, start_values
from cartsim.fitting.objective import PENALTY, Objective, observed_information
from cartsim.fitting.transforms import default_transform
from cartsim.scenario import Scenario, ScenarioError

__all__ = ["CHI2_95", "GTOL", "STARTS_PER_PARAMETER", "IndividualFit", "default_design"]

CHI2_95 = 3.841458820694124
"""95% quantile of chi-square with 1 degree of freedom (profile-likelihood threshold)."""
Z_95 = 1.959963984540054


WEAK_LOADING = 0.3
"""A ``se_not_finite`` verdict names the estimates whose component in the direction of least
information (a unit vector in search coordinates scaled to unit curvature) is at least this
(assumption: 0.3^2 = 9% of the direction; a single non-identified parameter has 1)."""


GTOL = 0.05
"""Largest one-sided slope of -LL (per search unit, over a step of 1e-3 search units) at a
converged optimum. Assumption: such a step (0.1% of a log parameter) then lowers -2LL by
< 1e-4, far below any difference that matters (0.1-1 unit of -2LL); the finite step keeps
the test meaningful at the kinks of ``stein2019`` (Tmax at a sample time), where the
derivative jumps and a smaller step reports the jump."""

STARTS_PER_PARAMETER = 16
"""Start points screened per estimated quantity when ``n_starts`` is not given (-).
Assumption, raised (with ``n_local``) until ``benchmarks/fit.py`` passed on the shipped real
patients (B-ALL CAR-T, 6 ``stein2019`` parameters + 1 SD: 112 starts, 9 local runs): every
default fit reaches the reference optimum within 1 of -2LL (13 of 14) or is not converged."""


STARTS_PER_PARAMETER_ODE = 4
"""The same for ODE models (-), whose evaluations cost 100-1000x more than the closed form
(assumption: the pre-issue-17 default was 8 starts for any number of parameters)."""


def default_design(n_estimated: int, cheap: bool = True) -> tuple[int, int]:
    """``(n_starts, n_local)`` scaled with the number of estimated quantities.

    ``n_starts = STARTS_PER_PARAMETER * n_estimated`` (one batch of evaluations);
    ``n_local = 2 + n_estimated`` local runs for closed-form models (the verdict needs the
    best optimum from at least 2). ODE models (``cheap=False``): ``STARTS_PER_PARAMETER_ODE
    * n_estimated`` starts and 2 local runs (the fewest the verdict can use), which cost
    10-100x more: about 3 s for 6 ``cd7`` parameters, against 1.7 s for the single run of
    the design before (``benchmarks/fit.py --synthetic``).
    """
    n_local = 2 + n_estimated if cheap else 2
    per = STARTS_PER_PARAMETER if cheap else STARTS_PER_PARAMETER_ODE
    return max(per * n_estimated, n_local), n_local


class IndividualFit:
    """Maximum-likelihood fit of selected parameters to one patient's observations.

    Follows the scikit-learn estimator contract: ``__init__`` stores options,
    :meth:`fit` validates the data, estimates and returns ``self``; learned
    values end in ``_``.

    Parameters
    ----------
    parameters : names of the model parameters to estimate (others keep the
        scenario's values); for ``cd7`` also the patient-level scenario fields
        ``marrow_blast_pct``, ``blast_growth_per_day``, ``cd7neg_blast_fraction``,
        ``cd7_density`` and the observation parameter ``f_blood_blast`` (share of blasts in
        blood) (:mod:`cartsim.fitting.scenario_parameters`).
    model : ``cd7`` or ``stein2019`` (ignored when ``base`` is given: its model is used).
    base : scenario every patient starts from (covariates and doses of the data
        replace its fields); default ``Scenario(model=ModelConfig(model))``.
    error : analyte -> ``proportional`` or ``combined`` (default proportional).
    transforms : parameter -> ``log``, ``logit`` or ``none`` (default: log if the
        lower bound is > 0, else logit).
    init : parameter -> start value (model units); default the scenario's value.
    n_starts : design points screened; default (None) :data:`STARTS_PER_PARAMETER` per
        estimated quantity (model and error parameters).
    n_local : local optimisations run from the best-screened points; default (None)
        ``2 + n_par`` (:func:`default_design`), at most ``n_starts``.
    start_spread : half-width of the start design around its centre (search units;
        1.0 = a factor e for log parameters).
    profile : parameters to profile (likelihood-based 95% intervals).
    max_iter : iterations per local optimisation.
    fd_step, hessian_step : finite-difference steps in search space (``hessian_step``: the
        first step of the observed information's ladder).
    method, rtol : ODE solver settings during the fit.
    gradient : ``forward`` or ``central`` finite differences (``auto``: central for the
        closed-form ``stein2019`` model, where evaluations are cheap and exact; forward
        for ODE models).
    optimizer : ``lm`` (default: Levenberg-Marquardt on the likelihood profiled over the
        error parameters, Gauss-Newton curvature per observation, see
        :meth:`~cartsim.fitting.objective.Objective.levenberg_marquardt`) or ``lbfgsb``
        (L-BFGS-B on all of them).
    sigma_floor : analyte -> lower limit of ``sigma_prop`` (default
        :data:`~cartsim.fitting.likelihood.SIGMA_PROP_FLOOR`, tied to assay precision).
    sigma_fixed : analyte -> fixed ``sigma_prop`` (not estimated).
    reproduce_tol : two local optima are the same when their -2LL differ by at most this.
    gtol : largest projected gradient of -LL (per search unit) at a converged optimum.
    random_state : seed of the start design.

    Attributes
    ----------
    params_ : estimated parameters and error parameters (model units).
    se_ : standard errors (delta method; NaN where the information is singular).
    ci_ : Wald 95% intervals ``(low, high)`` (mapped back from search space).
    profile_ci_ : profile-likelihood 95% intervals (``-inf`` / ``inf`` where flat).
    profile_ : per profiled parameter, ``{"value": grid, "loglik": l_p}``.
    cov_ : covariance of the search vector (``phi`` and ``ln sigma``).
    hessian_ : the observed information used (search units); ``hessian_step_`` its step;
        ``information_`` how it was found (:class:`~cartsim.fitting.objective.Information`:
        the steps tried, the smallest scaled eigenvalue and its error estimate).
    at_bound_ : names of estimates that ended on a bound of their search interval; they are
        held fixed for the covariance (no standard error) and the fit is not converged.
    loglik_, aic_, bic_ : maximised log-likelihood (of ln Y), AIC, BIC.
    n_obs_, n_censored_ : observations used, of which censored.
    converged_ : True only when every check of :attr:`checks_` passed.
    checks_ : ``{"solved", "reproduced", "gradient", "interior", "se_finite"}`` -> bool.
    status_ : ``converged`` or the first failed check: ``failed`` (no start could be
        solved), ``at_bound``, ``not_reproduced`` (the best optimum was reached from one
        start only), ``gradient`` (projected gradient not small), ``se_not_finite``.
    message_ : the failed checks in words (or the optimiser's message).
    n_hits_ : local runs that reached the best optimum (within ``reproduce_tol``).
    local_nll_ : final -LL of every local run; ``grad_`` projected gradient at the optimum.
    nca_ : the non-compartmental read of the CAR-T curve (the first ``car_*`` analyte of the
        data, else its first analyte; :mod:`cartsim.fitting.nca`).
    nfev_ : model evaluations (patient solves) in total.
    predictions_ : predicted observations at the estimate.
    patient_id_ : the patient fitted.
    """

    def __init__(self, parameters: Sequence[str], *, model: str = "cd7",
                 base: Scenario | None = None, error: Mapping[str, str] | None = None,
                 transforms: Mapping[str, str] | None = None,
                 init: Mapping[str, float] | None = None, n_starts: int | None = None,
                 n_local: int | None = None, start_spread: float = 1.0,
                 profile: Sequence[str] = (), max_iter: int = 200,
                 fd_step: float = 1e-5, hessian_step: float = 5e-3, method: str = "bdf",
                 rtol: float = 1e-8, gradient: str = "auto", optimizer: str = "lm",
                 sigma_floor: Mapping[str, float] | None = None,
                 sigma_fixed: Mapping[str, float] | None = None, reproduce_tol: float = 0.1,
                 gtol: float = GTOL, random_state: int | None = 0):
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
        self.sigma_floor = dict(sigma_floor or {})
        self.sigma_fixed = dict(sigma_fixed or {})
        self.reproduce_tol = reproduce_tol
        self.gtol = gtol
        self.random_state = random_state

    # -- setup ----------------------------------------------------------------------------------
    def _setup(self, data: Observations, patient):
        if not self.parameters:
            raise ScenarioError("fit.parameters is empty: name at least one model parameter")
        for key in ("n_starts", "n_local"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
                raise ScenarioError(f"fit.{key}={v!r} is not accepted: expected an integer "
                                    ">= 1 or null (scaled with the number of parameters)")
        if data.n_patients > 1 and patient is None:
            raise ScenarioError(f"{data.source} holds {data.n_patients} patients: pass patient= "
                                "(an ID) for an individual fit, or use PopulationFit")
        one = data.select(patient if patient is not None else 0)
        from cartsim.scenario import ModelConfig

        base = self.base or Scenario(model=ModelConfig(name=self.model))
        fm = ForwardModel(one, one.scenarios(base), self.parameters, method=self.method,
                          rtol=self.rtol)
        for name in self.profile:
            if name not in self.parameters:
                raise ScenarioError(f"fit.profile: {name!r} is not among fit.parameters "
                                    f"({', '.join(self.parameters)})")
        tfs = [default_transform(fm.spec(n).lower, fm.spec(n).upper, self.transforms.get(n))
               for n in self.parameters]
        scale = {a: float(np.median(one.dv[one.analyte == a])) for a in one.analytes}
        resid = ResidualModel(one.analytes, self.error, one.analyte, scale,
                              floor=self.sigma_floor, fixed=self.sigma_fixed)
        return one, fm, tfs, resid

    def _start_design(self, one, fm, tfs, resid, lo, hi):
        """Start points (rows, search space): the given start, the data-driven start of the
        non-compartmental read (with a scrambled Sobol cloud around it) and a Sobol cloud
        around the given start. Returns ``(starts, n_local)``."""
        n_par = len(tfs)
        n_starts, n_local = default_design(n_par + len(resid), cheap=fm.model_name == "stein2019")
        n_starts = self.n_starts if self.n_starts is not None else n_starts
        n_local = min(self.n_local if self.n_local is not None else n_local, n_starts)
        start_theta = [self.init.get(n, fm.base_value(n)) for n in self.parameters]
        x0 = np.concatenate([[t.to_search(v) for t, v in zip(tfs, start_theta)], resid.start])
        x0 = np.clip(x0, lo, hi)
        pset = fm.model.parameters
        # the CAR-T curve: with blast analytes in the data, their values are another curve
        car = [a for a in one.analytes if a.startswith("car_")] or one.analytes
        m = one.analyte == car[0]
        self.nca_ = nca_read(one.time[m], one.dv[m], one.cens[m])
        guess = start_values(fm.model_name, self.nca_,
                             {n: (pset[n].lower, pset[n].upper) for n in pset})
        centres = [x0]
        if guess:
            xd = x0.copy()
            for k, (n, t) in enumerate(zip(self.parameters, tfs)):
                if n in guess and n not in self.init:
                    xd[k] = t.to_search(guess[n])
            centres.insert(0, np.clip(xd, lo, hi))
        starts = [c for c in centres][: n_starts]
        n_rest = n_starts - len(starts)
        if n_rest > 0:
            sob = qmc.Sobol(n_par, scramble=True, seed=self.random_state)
            u = sob.random_base2(max(0, math.ceil(math.log2(n_rest))))[:n_rest]
            for j, row in enumerate(u):
                c = centres[j % len(centres)]  # alternate between the centres
                x = c.copy()
                x[:n_par] = c[:n_par] + self.start_spread * (2 * row - 1)
                starts.append(np.clip(x, lo, hi))
        return np.array(starts), n_local

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
        if self.optimizer not in ("lm", "lbfgsb"):
            raise ScenarioError(f"optimizer={self.optimizer!r} is not accepted: expected lm or "
                                "lbfgsb")
        pid = one.ids[0]
        k = len(tfs) + len(resid)
        n_quant = int((~one.cens).sum())
        if n_quant < k:
            warnings.warn(f"patient {pid!r}: {n_quant} quantified observations for {k} estimated "
                          f"quantities ({', '.join(self.parameters + resid.names)}): the data "
                          "cannot determine them all; fix some parameters (or the residual SD, "
                          "fit.sigma_fixed) or use a population fit", FitWarning, stacklevel=2)
        obj = Objective(fm, 0, tfs, resid, self.fd_step * (100 if central else 1), central)
        self._fm = fm
        bounds = [t.search_bounds() for t in tfs] + list(resid.bounds)
        lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
        hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
        starts, n_local = self._start_design(one, fm, tfs, resid, lo, hi)
        screen = obj.nll_rows(starts)
        order = np.argsort(screen, kind="stable")[:n_local]
        runs = []
        for j in order:
            if self.optimizer == "lm":
                res = obj.levenberg_marquardt(starts[j], lo, hi, self.max_iter)
            else:
                res = optimize.minimize(obj.value_and_grad, starts[j], jac=True,
                                        method="L-BFGS-B", bounds=bounds,
                                        options={"maxiter": self.max_iter})
            runs.append(res)
        best = min(runs, key=lambda r: r.fun)
        if best.fun < PENALTY / 2 and np.max(obj.descent_slopes(best.x, lo, hi)) >= self.gtol:
            best = self._polish(obj, best, lo, hi, bounds)
        x = best.x
        self.x_ = x
        self.starts_ = starts
        self.start_nll_ = screen
        self.local_nll_ = np.array([r.fun for r in runs])
        self.local_starts_ = starts[order]
        self._obj, self._tfs, self._resid, self._bounds = obj, tfs, resid, bounds
        names = self.parameters + resid.names
        self.nit_ = int(best.nit)
        self.loglik_ = -float(best.fun) if best.fun < PENALTY / 2 else -math.inf
        self.n_obs_ = int(one.dv.size)
        self.n_censored_ = int(one.cens.sum())
        self.aic_ = 2 * k - 2 * self.loglik_
        self.bic_ = k * math.log(self.n_obs_) - 2 * self.loglik_
        self.patient_id_ = pid
        self.data_ = one
        self.predictions_ = obj.preds(x[None, :])[0]
        self.ipred_ = self.predictions_
        self.ppred_ = fm.predict([0], fm.defaults[None, :])[0]
        tf_all = tfs + [default_transform(math.exp(b[0]), math.exp(b[1]), "log")
                        for b in resid.bounds]
        on_bound = np.array([t.on_bound(v) for t, v in zip(tf_all, x)])
        self.at_bound_ = [n for n, b in zip(names, on_bound) if b]
        self._uncertainty(obj, x, on_bound, tfs, resid, names)
        self._verdict(best, obj, x, lo, hi, on_bound, names)
        self.profile_, self.profile_ci_ = {}, {}
        for name in self.profile:
            self._profile(name)
        return self

    def _polish(self, obj, best, lo, hi, bounds):
        """Derivative-free polish of the best optimum (Nelder-Mead within the bounds), used
        when -LL still falls along a coordinate: the Gauss-Newton steps stall on a kink of
        the likelihood (``stein2019`` with ``Tmax`` at a sample time, where the derivative
        in ``Tmax`` jumps). Kept only if lower."""
        n = len(best.x)
        r = optimize.minimize(lambda z: float(obj.nll_rows(z[None, :])[0]), best.x,
                              method="Nelder-Mead", bounds=bounds,
                              options={"xatol": 1e-7, "fatol": 1e-9, "maxfev": 300 * n,
                                       "maxiter": self.max_iter * n, "adaptive": True})
        if r.fun < best.fun:
            return optimize.OptimizeResult(x=np.clip(r.x, lo, hi), fun=float(r.fun),
                                           success=True, nit=best.nit + r.nit,
                                           message=f"{best.message}; polished by Nelder-Mead")
        return best

    def _uncertainty(self, obj, x, on_bound, tfs, resid, names) -> None:
        """Observed information, covariance, standard errors and Wald intervals; an estimate
        on a bound of its search interval is not an interior maximum: it is held fixed (no
        standard error), and the others get theirs conditional on it."""
        k = len(x)
        free = ~on_bound
        info = observed_information(obj.nll_rows, x, self.hessian_step, free=free)
        self.information_ = info
        self.hessian_ = H = info.hessian
        self.hessian_step_ = info.step
        cov = np.full((k, k), np.nan)
        if info.positive:
            try:
                cov[np.ix_(free, free)] = np.linalg.inv(H[np.ix_(free, free)])
            except np.linalg.LinAlgError:
                pass
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
        self.sigma_fixed_ = dict(resid.fixed)

    def _verdict(self, best, obj, x, lo, hi, on_bound, names) -> None:
        """``converged_``, ``checks_``, ``status_`` and ``message_`` (see the class docstring);
        a :class:`ConvergenceWarning` names every failed check."""
        solved = bool(best.fun < PENALTY / 2)
        hit = self.local_nll_ - best.fun <= 0.5 * self.reproduce_tol
        # independent: distinct start points (clipping onto a bound can make two equal)
        self.n_hits_ = int(np.unique(self.local_starts_[hit], axis=0).shape[0]) if solved else 0
        g = obj.descent_slopes(x, lo, hi) if solved else np.full(len(x), np.nan)
        self.grad_ = g
        gmax = float(np.max(g)) if solved else math.inf
        se_ok = bool(np.all(np.isfinite([self.se_[n] for n in names])))
        self.checks_ = {"solved": solved, "interior": not on_bound.any(),
                        "reproduced": self.n_hits_ >= 2, "gradient": gmax < self.gtol,
                        "se_finite": se_ok}
        words = {
            "solved": "the model could not be solved at any start",
            "interior": "on a bound of the search interval (not estimated by the data): "
                        + ", ".join(self.at_bound_),
            "reproduced": f"the best optimum was reached from {self.n_hits_} of "
                          f"{len(self.local_nll_)} local runs (at least 2 needed within "
                          f"{self.reproduce_tol:g} of -2LL); more starts (fit.n_starts, "
                          "fit.n_local) may find a better one",
            "gradient": f"-LL still falls at slope {gmax:.3g} per search unit (> "
                        f"{self.gtol:g}) along "
                        + ", ".join(n for n, v in zip(names, g) if v >= self.gtol)
                        + f" after {self.nit_} iterations: not a stationary point",
            "se_finite": self._se_words(names, on_bound),
        }
        codes = {"solved": "failed", "interior": "at_bound", "reproduced": "not_reproduced",
                 "gradient": "gradient", "se_finite": "se_not_finite"}
        failed = [c for c, ok in self.checks_.items() if not ok]
        self.converged_ = not failed
        self.status_ = "converged" if not failed else codes[failed[0]]
        self.message_ = (str(best.message) if not failed
                         else "; ".join(words[c] for c in failed))
        if failed:
            warnings.warn(f"individual fit of patient {self.patient_id_!r} did not converge "
                          f"({self.status_}): {self.message_}; estimates are unreliable",
                          ConvergenceWarning, stacklevel=3)

    def _se_words(self, names, on_bound) -> str:
        """Why some standard errors are not finite: the estimates on a bound (held fixed, no
        standard error) or an observed information that is not positive definite."""
        info = getattr(self, "information_", None)
        if info is not None and info.positive:
            return ("no standard errors for the estimates held on a bound: "
                    + ", ".join(self.at_bound_))
        return ("some standard errors are not finite: the observed information is not "
                f"positive definite{self._weak_words(names, on_bound)} (not every parameter "
                "is identifiable)")

    def _weak_words(self, names, on_bound) -> str:
        """`` along NAMES (at Hessian steps A to B)``: the estimates that load on the direction
        of least information (unit vector in curvature-scaled search coordinates, components
        of at least :data:`WEAK_LOADING`), largest first."""
        info = getattr(self, "information_", None)
        if info is None or not len(info.weak):
            return ""
        free = [n for n, b in zip(names, on_bound) if not b]
        v = np.abs(info.weak)
        order = [i for i in np.argsort(-v, kind="stable") if v[i] >= WEAK_LOADING]
        steps = info.steps
        where = (f"at Hessian step {steps[0]:.2g}" if len(steps) == 1 else
                 f"at Hessian steps {max(steps):.2g} to {min(steps):.2g}, Richardson-"
                 "extrapolated")
        return f" along {', '.join(free[i] for i in order)} ({where})"

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
