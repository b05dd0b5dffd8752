"""The objective of an individual fit and its local optimiser.

:class:`Objective` is the negative log-likelihood of one patient's observations as a function
of the search vector (model parameters in search space, then ``ln sigma`` of the estimated
residual-error parameters), evaluated in batches of rows; with its finite-difference
gradient, Hessian and one-sided descent slopes (the stationarity check of the verdict of
:class:`~cartsim.fitting.individual.IndividualFit`), and the Levenberg-Marquardt search on
the likelihood profiled over the error parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from cartsim.fitting.forward import ForwardModel
from cartsim.fitting.likelihood import ResidualModel, ln_sigma_prop_mle, loglik_terms

__all__ = ["HESSIAN_LEVELS", "HESSIAN_MARGIN", "PENALTY", "Information", "Objective", "fd_hessian",
           "observed_information"]

PENALTY = 1e10
"""Negative log-likelihood given to a failed solve (finite, so L-BFGS-B backs off)."""


class Objective:
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
        """Model values of search vector(s) ``x`` (one row or a 2-d array of rows)."""
        x = np.asarray(x, dtype=np.float64)
        cols = [t.to_model(x[..., k]) for k, t in enumerate(self.tf)]
        return np.stack(cols, axis=-1)

    def preds(self, X: np.ndarray) -> list[np.ndarray]:
        """Predictions for rows of ``X``, solving each distinct model part once."""
        parts, inverse = np.unique(X[:, : self.n_par], axis=0, return_inverse=True)
        out = self.fm.predict([self.patient] * len(parts), self.theta(parts))
        self.nfev += len(parts)
        return [out[k] for k in np.asarray(inverse).ravel()]

    def nll_rows(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        F = np.array(self.preds(X))
        SP, SA = zip(*(self.resid.sigmas(x[self.n_par:]) for x in X))
        ll = np.sum(loglik_terms(F, self.dv[None, :], self.cens[None, :], np.array(SP),
                                 np.array(SA)), axis=1)
        return np.where(np.isfinite(ll), -ll, PENALTY)

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
        model and no censored value; Newton steps per analyte
        (:func:`~cartsim.fitting.likelihood.ln_sigma_prop_mle`) with censored values; a
        bounded quasi-Newton search for combined error models.
        """
        resid = self.resid
        if self.cens.any() and all(k == "proportional" for k in resid.kinds.values()):
            x = np.array(x_res, dtype=np.float64)
            for a, j in resid._prop.items():
                m = resid._masks[a]
                x[j] = ln_sigma_prop_mle(f[m], self.dv[m], self.cens[m], x[j], resid.bounds[j])
            sp, sa = resid.sigmas(x)
            v = -float(np.sum(loglik_terms(f, self.dv, self.cens, sp, sa)))
            return x, (v if math.isfinite(v) else PENALTY)
        if not self.cens.any() and all(k == "proportional" for k in resid.kinds.values()):
            z = np.log(self.dv) - np.log(np.maximum(f, 1e-30))
            x = np.empty(len(resid))
            for a in resid._prop:
                j = resid._prop[a]
                lo, hi = resid.bounds[j]
                x[j] = np.clip(0.5 * math.log(max(np.mean(z[resid._masks[a]] ** 2), 1e-300)),
                               lo, hi)
            sp, sa = resid.sigmas(x)
            v = -float(np.sum(loglik_terms(f, self.dv, self.cens, sp, sa)))
            return x, (v if math.isfinite(v) else PENALTY)
        if len(resid) == 0:
            sp, sa = resid.sigmas(x_res)
            v = -float(np.sum(loglik_terms(f, self.dv, self.cens, sp, sa)))
            return x_res, (v if math.isfinite(v) else PENALTY)

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
        h = self.fd_step if self.central else self.fd_step * 10
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
            u0 = np.log(np.maximum(f, 1e-30))
            if self.central:
                # central differences (closed-form models): the Jacobian is accurate near the
                # optimum, where a forward difference's bias H h / 2 would stop the search
                X = np.tile(x, (2 * n, 1))
                X[:n, :n] += h * np.eye(n)
                X[n:, :n] -= h * np.eye(n)
                P = self.preds(X)
                J = np.column_stack([(np.log(np.maximum(P[k], 1e-30))
                                      - np.log(np.maximum(P[n + k], 1e-30))) / (2 * h)
                                     for k in range(n)])
            else:
                X = np.tile(x, (n, 1))
                step = np.where(x[:n] + h <= hi[:n], h, -h)
                X[:, :n] += np.diag(step)
                P = self.preds(X)
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
                    small = fval - best_v < 1e-9 * max(1.0, abs(fval))
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
                status, msg = True, "relative decrease below 1e-9"
                break
        return optimize.OptimizeResult(x=x, fun=fval, success=status, nit=nit, message=msg)

    def descent_slopes(self, x, lo, hi, h: float = 1e-3) -> np.ndarray:
        """Steepest one-sided descent of the nll along each search coordinate, ``max(0,
        -(f(x + h e_i) - f(x)) / h, -(f(x - h e_i) - f(x)) / h)``, skipping steps outside the
        bounds: the projected gradient's size at a smooth point, and 0 at a minimum on a
        kink (``stein2019`` at ``Tmax`` = a sample time) or on a bound."""
        n = len(x)
        E = h * np.eye(n)
        X = np.vstack([x[None, :], x + E, x - E])
        v = self.nll_rows(X)
        up = np.where(x + h <= hi, (v[0] - v[1:n + 1]) / h, 0.0)
        down = np.where(x - h >= lo, (v[0] - v[n + 1:]) / h, 0.0)
        return np.maximum(0.0, np.maximum(up, down))


def _hessian_rows(x, h: float) -> np.ndarray:
    """The points of :func:`fd_hessian`: ``x``, ``x +- h e_i``, ``x +- h e_i +- h e_j``."""
    n = len(x)
    E = h * np.eye(n)
    rows = [x]
    for i in range(n):
        rows += [x + E[i], x - E[i]]
    for i in range(n):
        for j in range(i + 1, n):
            rows += [x + E[i] + E[j], x + E[i] - E[j], x - E[i] + E[j], x - E[i] - E[j]]
    return np.array(rows)


def _hessian_from(v: np.ndarray, n: int, h: float) -> np.ndarray:
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


def fd_hessian(fun_rows, x, h: float | Sequence[float]) -> np.ndarray | list[np.ndarray]:
    """Hessian of ``fun`` at ``x`` by central differences (error ``O(h^2)``).

    ``H_ii = (f(x + h e_i) - 2 f(x) + f(x - h e_i)) / h^2`` and
    ``H_ij = (f(x + h e_i + h e_j) - f(x + h e_i - h e_j) - f(x - h e_i + h e_j)
    + f(x - h e_i - h e_j)) / (4 h^2)``. ``fun_rows`` maps rows of points to values; with a
    sequence of steps every point of every step goes in one call (one batch of solves) and
    a list of Hessians comes back.
    """
    x = np.asarray(x, dtype=np.float64)
    steps = [h] if np.isscalar(h) else list(h)
    n = len(x)
    rows = [_hessian_rows(x, s) for s in steps]
    v = np.asarray(fun_rows(np.vstack(rows)), dtype=np.float64)
    m = len(rows[0])
    out = [_hessian_from(v[k * m:(k + 1) * m], n, s) for k, s in enumerate(steps)]
    return out[0] if np.isscalar(h) else out


HESSIAN_LEVELS = 5
"""Steps of the ladder of :func:`observed_information` (``h0, h0/2, ..., h0/16``). Assumption:
with the default ``h0 = 5e-3`` search units the smallest step, 3.1e-4, stays above the
round-off and ODE-tolerance noise of the nll (``rtol`` 1e-8: noise ~1e-7 / h^2 < 1e-2)."""


HESSIAN_MARGIN = 2.0
"""A ladder estimate is accepted when its smallest scaled eigenvalue exceeds this multiple of
its error estimate. Why 2: along a flat direction (true eigenvalue 0) of a smooth nll the
Richardson estimate is its own ``O(h^4)`` remainder, which halving the step divides by 16,
so the eigenvalue is 16/15 of the error estimate and a margin of 1 could let it pass;
round-off noise, 4x larger at the halved step, would have to reach ~8 of its SDs."""


@dataclass
class Information:
    """Observed information ``-d2 l / dphi2`` at an optimum, as :func:`observed_information`
    found it.

    Attributes
    ----------
    hessian : the accepted estimate (the first step's Hessian when no step passed).
    step : the step of the accepted estimate (search units).
    positive : positive definite (on the free parameters) beyond its estimated error.
    min_eig : smallest eigenvalue of the free block scaled to unit diagonal (NaN where a
        curvature is not positive).
    error : estimated error of that scaled block (spectral norm; 0 for the first step).
    weak : unit vector (free parameters, scaled coordinates) along which the information is
        least (or not) positive.
    richardson : the estimate is Richardson-extrapolated from two steps of the ladder.
    ladder : ``(step, min_eig, error)`` of every estimate tried (a Richardson estimate
        under the larger of its two steps).
    steps : every step at which the Hessian was evaluated.
    """

    hessian: np.ndarray
    step: float
    positive: bool
    min_eig: float
    error: float
    weak: np.ndarray
    richardson: bool
    ladder: list = field(default_factory=list)
    steps: tuple = ()


def _scaled_min_eig(H: np.ndarray):
    """``(smallest eigenvalue, its unit eigenvector, scale)`` of ``D^-1/2 H D^-1/2`` (``D``
    the diagonal of ``H``); where a diagonal is not positive, NaN and the unit vector of the
    worst such parameter."""
    d = np.diag(H)
    if not np.all(np.isfinite(H)) or np.any(d <= 0):
        bad = np.where(np.isfinite(d), d, -np.inf)
        return math.nan, np.eye(len(d))[int(np.argmin(bad))], None
    s = 1.0 / np.sqrt(d)
    w, V = np.linalg.eigh(s[:, None] * H * s[None, :])
    return float(w[0]), V[:, 0], s


def observed_information(fun_rows, x, h0: float, free=None,
                         levels: int = HESSIAN_LEVELS) -> Information:
    """Observed information (Hessian of the nll ``fun``) at an optimum ``x``, robust to the
    step.

    First the central-difference Hessian at ``h0`` (:func:`fd_hessian`); where it is
    positive definite on the ``free`` parameters it is kept, as before. Where it is not, the
    truncation error ``O(h^2)`` may be the cause: an ill-conditioned Hessian (curvatures
    10^4 apart, as in a ``cd7`` fit with the CAR-T expansion and death rates against the
    blast burden) needs its large entries to a relative precision finer than the ratio of
    its eigenvalues. Then a ladder of steps ``h_k = h0 / 2^k`` (``k < levels``), evaluated
    as far as needed (one batch per step), is Richardson-extrapolated, ``R_k = (4 H_{k+1} -
    H_k) / 3`` (error ``O(h^4)``; Richardson 1911; numdifftools extrapolates its steps so,
    and Minuit's HESSE refines its steps until the second derivatives are stable); in
    coordinates scaled to unit curvature (``D^-1/2 R D^-1/2``), ``R_k`` is accepted at the
    largest step where its smallest eigenvalue exceeds :data:`HESSIAN_MARGIN` times the
    error estimate ``||R_k - R_{k+1}||_2`` (Weyl's inequality: then the exact information is
    positive definite too, if the error estimate holds). The comparison with the next,
    smaller step's estimate, whose round-off noise is 4x larger, keeps a flat direction
    (true eigenvalue 0, estimates noise) from passing by chance. If no step passes, the
    information is not positive definite: ``positive`` is False and ``weak`` names the
    direction.

    Parameters
    ----------
    fun_rows : rows of points -> values (one batch).
    x : the optimum (search units).
    h0 : first step (search units).
    free : bool mask of the parameters whose block must be positive definite (others are
        held fixed: an estimate on a bound); default all.
    levels : steps in the ladder (fewer than 3: the first step alone, no ladder).
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    free = np.ones(n, bool) if free is None else np.asarray(free, bool)
    H0 = fd_hessian(fun_rows, x, h0)
    lam0, v0, _ = _scaled_min_eig(H0[np.ix_(free, free)]) if free.any() else (
        math.nan, np.zeros(0), None)
    ladder = [(h0, lam0, 0.0)]
    if not free.any() or lam0 > 0 or levels < 3:  # levels < 3: no ladder, the first step
        return Information(H0, h0, bool(free.any()) and lam0 > 0, lam0, 0.0, v0, False,
                           ladder, (h0,))
    # the ladder, one batch per level: R_k needs the steps down to h0 / 2^(k+2)
    steps = [h0]
    Hs = [H0]

    def extend(upto: int) -> None:
        new = [h0 / 2 ** j for j in range(len(steps), upto + 1)]
        Hs.extend(fd_hessian(fun_rows, x, new))
        steps.extend(new)

    weak = v0
    for k in range(levels - 2):
        extend(k + 2)
        Rk, Rk1 = ((4 * Hs[j + 1] - Hs[j])[np.ix_(free, free)] / 3 for j in (k, k + 1))
        lam, v, s = _scaled_min_eig(Rk)
        if s is None:
            ladder.append((h0 / 2 ** k, lam, math.nan))
            weak = v
            continue
        err = float(np.linalg.norm(s[:, None] * (Rk1 - Rk) * s[None, :], 2))
        ladder.append((h0 / 2 ** k, lam, err))
        if lam > HESSIAN_MARGIN * err:
            return Information((4 * Hs[k + 1] - Hs[k]) / 3, h0 / 2 ** k, True, lam, err, v,
                               True, ladder, tuple(steps))
        weak = v
    return Information(H0, h0, False, lam0, 0.0, weak, False, ladder, tuple(steps))
