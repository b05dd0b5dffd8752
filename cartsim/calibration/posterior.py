"""What the model does not know, as a posterior: importance sampling over the free parameters.

The history-matching ensemble (:mod:`~cartsim.calibration.ensemble`) keeps the design points
that no figure rules out; with 16 free values and 51 figures only a handful of a 256-point
space-filling design survive, so its spread says more about the design than about the
evidence. Here the ensemble is a sample of the posterior

.. math:: \\pi(\\theta \\mid \\text{figures}) \\propto p(\\theta)\\, \\prod_j L_j(\\theta),

with the prior :math:`p` uniform on the log scale within the bounds of the free values
(``calibration.yaml: free``, the ranges the design searched) and :math:`L_j` each
figure's likelihood (:func:`~cartsim.calibration.likelihood.loglik`), estimated by
self-normalised importance sampling (e.g. Robert & Casella 2004, ch. 3.3):

1. **Proposal** (:func:`proposal_from_design`): a multivariate Student-t (5 degrees of
   freedom, heavier tails than the posterior) on the unit cube ``u`` of the search. Its
   scale is the weighted covariance of every stored design and refinement point under the
   *tempered* likelihood :math:`L^{1/T}`, ``T`` chosen so that those weights have an
   effective sample size of ``ess`` points (the shape of the plausible region as the
   design saw it, at a width the design can resolve), inflated by ``inflate``; its
   centre is the shipped best point. Draws outside the bounds are redrawn (the prior is
   zero there; the truncation constant is common to all draws and cancels).
2. **Draws** (:func:`run_importance`): every draw is simulated like a design point (the
   same trials, replicates and common random numbers) and stored row by row with the
   proposal in the store's header, so a run resumes and the weights can be recomputed.
   Adaptive: a later batch draws from a proposal fitted to the weighted draws so far
   (:func:`proposal_from_draws`), and all batches are weighted against the mixture of
   their proposals (:func:`mixture_log_q`).
3. **Weights** (:func:`importance_weights`): :math:`\\log w_i = \\sum_j \\log L_j(\\theta_i) -
   \\log q(u_i)`, truncated at :math:`\\bar w \\sqrt{N}` (Ionides 2008 J Comput Graph Stat
   17:295: bounded variance at a small bias) and normalised; the effective sample size
   :math:`1 / \\sum w_i^2` says how many independent posterior draws they are worth.
4. **Leave one trial out** (:func:`posterior_coverage`): without trial :math:`k` the
   weights are :math:`w_i / L_k(\\theta_i)` (no new simulation; the proposal is wider than
   the posterior, which is what reweighting to a wider held-out posterior needs). For
   each held-out figure: the model interval (weighted quantiles of the expected figure),
   the predictive interval (the same members plus the sampling of a trial of the
   published size, :func:`~cartsim.calibration.likelihood.sample`), and what each claims
   for the *observed* figure: the predictive 95% interval claims 95%; the model-only
   interval, which leaves the trial's own sampling out, claims the predictive
   probability of the observed figure landing inside it. Summed over figures that is the
   number of held-out figures it should cover if the model is right; the table puts the
   count it does cover beside it.
5. **Members** (:func:`resample`): systematic resampling of the weighted draws into ``k``
   equally weighted members, in a random order, so the first ``j`` members of the file
   are themselves a posterior sample (trials, the what-if app and sweeps take the first
   ``j``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from cartsim.calibration.design import DesignStore, Simulator, Space, check_model, loglik_matrix
from cartsim.calibration.ensemble import _weighted_quantiles
from cartsim.calibration.likelihood import loglik, sample
from cartsim.calibration.targets import TARGETS, Target, trials

__all__ = ["IMPORTANCE_ID0", "box_mass", "draw_proposal", "effective_sample_size",
           "format_coverage", "format_marginals", "importance_weights", "log_q", "marginals",
           "mixture_log_q",
           "posterior_coverage", "proposal_from_design", "proposal_from_draws", "resample",
           "run_importance"]

IMPORTANCE_ID0 = 2_000_000
"""First id of importance-sampling rows (design points from 0, refinement from 1,000,000)."""


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of weights ``w``."""
    w = np.asarray(w, dtype=float)
    s = w.sum()
    return float(s * s / np.sum(w * w)) if s > 0 else 0.0


def _tempered(ll: np.ndarray, ess: float) -> tuple[np.ndarray, float]:
    """Weights ``exp((ll - max) / T)`` with ``T`` set (bisection on ``ln T``) to the ESS."""
    ll = ll - ll.max()
    lo, hi = 0.0, 12.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if effective_sample_size(np.exp(ll / math.exp(mid))) < ess:
            lo = mid
        else:
            hi = mid
    t = math.exp(hi)
    w = np.exp(ll / t)
    return w / w.sum(), t


def proposal_from_design(df: pd.DataFrame, space: Space, targets: Sequence[Target] = TARGETS,
                         *, centre=None, ess: float = 40.0, inflate: float = 1.5,
                         dof: float = 5.0) -> dict:
    """The importance proposal (a dict stored in the draws' header; see the module docstring).

    ``df``: stored points with their figures (design and refinement); ``centre``: parameter
    values of the proposal's centre (default: the weighted mean).
    """
    ok = df["status"].eq("ok").to_numpy() if "status" in df else np.ones(len(df), bool)
    d = df[ok]
    u = space.unit(d[list(space.keys)].to_numpy(float))
    ll = loglik_matrix(d, targets).sum(axis=1)
    finite = np.isfinite(ll)
    u, ll = u[finite], ll[finite]
    if len(ll) < 2 * len(space.keys):
        raise ValueError(f"the proposal needs at least {2 * len(space.keys)} stored points with "
                         f"figures ({len(ll)} given): run the design first")
    w, temp = _tempered(ll, min(ess, len(ll) / 2))
    mean = None if centre is None else space.unit(np.asarray(centre, dtype=float))
    return {**_shape(u, w, mean, inflate, dof), "temperature": float(temp),
            "ess": float(ess), "built_from": "design"}


def _shape(u: np.ndarray, w: np.ndarray, mean, inflate: float, dof: float) -> dict:
    """A multivariate-t proposal with the weighted covariance of ``u`` (inflated)."""
    mean = w @ u if mean is None else np.asarray(mean, dtype=float)
    r = u - mean
    cov = inflate**2 * ((r * w[:, None]).T @ r) + 1e-6 * np.eye(u.shape[1])
    return {"family": "multivariate-t on the unit cube (log scale within the bounds)",
            "mean": [float(v) for v in mean], "cov": [[float(v) for v in row] for row in cov],
            "dof": float(dof), "inflate": float(inflate)}


def proposal_from_draws(df: pd.DataFrame, space: Space, proposals, targets: Sequence[Target]
                        = TARGETS, *, ess: float = 30.0, inflate: float = 1.3,
                        dof: float = 5.0) -> dict:
    """The next proposal of an adaptive run (population Monte Carlo; Cappe et al. 2004 J
    Comput Graph Stat 13:907): the weighted mean and covariance of the draws so far, their
    importance weights tempered (``w^(1/T)``) to an effective sample size of ``ess`` so
    that a few heavy draws cannot collapse it, inflated by ``inflate``."""
    u = space.unit(df[list(space.keys)].to_numpy(float))
    lw = np.log(np.maximum(importance_weights(df, space, proposals, targets, truncate=False),
                           1e-300))
    w, temp = _tempered(lw, min(ess, len(lw) / 2))
    return {**_shape(u, w, None, inflate, dof), "temperature": float(temp),
            "ess": float(ess), "built_from": f"{len(df)} importance draws"}


def log_q(proposal: dict, u) -> np.ndarray:
    """Log density of the (untruncated) multivariate-t proposal at unit-cube points ``u``."""
    u = np.atleast_2d(np.asarray(u, dtype=float))
    mean = np.asarray(proposal["mean"])
    cov = np.asarray(proposal["cov"])
    nu = float(proposal["dof"])
    d = mean.size
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (u - mean).T)
    maha = np.sum(z * z, axis=0)
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    return (special.gammaln((nu + d) / 2) - special.gammaln(nu / 2)
            - 0.5 * d * math.log(nu * math.pi) - 0.5 * logdet
            - 0.5 * (nu + d) * np.log1p(maha / nu))


_BOX_MASS: dict[str, float] = {}


def box_mass(proposal: dict, n: int = 2_000_000, seed: int = 0) -> float:
    """Share of the untruncated proposal's mass inside the unit cube (the prior's bounds).

    Draws outside the bounds are redrawn (:func:`draw_proposal`), so a batch's density is
    ``q / box_mass(q)`` there. Exact for one free value (Student-t CDF); otherwise the
    share of ``n`` seeded draws inside (relative Monte Carlo error
    ``sqrt((1 - Z) / (n Z))``, 0.1% at Z = 0.2), cached per proposal.
    """
    key = json.dumps(proposal, sort_keys=True)
    if key in _BOX_MASS:
        return _BOX_MASS[key]
    mean = np.asarray(proposal["mean"], dtype=float)
    cov = np.asarray(proposal["cov"], dtype=float)
    nu = float(proposal["dof"])
    if mean.size == 1:
        sd = math.sqrt(cov[0, 0])
        z = float(stats.t.cdf((1.0 - mean[0]) / sd, nu) - stats.t.cdf(-mean[0] / sd, nu))
    else:
        chol = np.linalg.cholesky(cov)
        rng = np.random.default_rng(seed)
        inside, chunk = 0, 100_000
        for _ in range(max(1, n // chunk)):
            g = rng.chisquare(nu, chunk) / nu
            x = mean + (rng.standard_normal((chunk, mean.size)) @ chol.T) / np.sqrt(g)[:, None]
            inside += int(np.all((x >= 0) & (x <= 1), axis=1).sum())
        z = inside / (max(1, n // chunk) * chunk)
    if z <= 0.0:
        raise ValueError("the proposal puts almost no mass inside the bounds of the free values")
    _BOX_MASS[key] = z
    return z


def mixture_log_q(proposals, u) -> np.ndarray:
    """Log density of the draws' proposal: one proposal (a dict), or the mixture of several
    batches ``[(proposal, n_draws), ...]`` weighted by their sizes (the deterministic-mixture
    weights of multiple importance sampling, Veach & Guibas 1995; Owen & Zhou 2000 JASA
    95:135), which keeps every batch's draws valid for the one posterior.

    Each batch's density is its multivariate t truncated to the bounds, ``log_q -
    log box_mass``: its draws outside were redrawn. For one proposal the constant cancels
    in the normalised weights and is left out; in a mixture the batches' constants differ
    (the shipped proposals keep 12-63% of their mass inside), and leaving them out would
    weight the wider batches' draws too much.
    """
    if isinstance(proposals, dict):
        return log_q(proposals, u)
    sizes = np.array([n for _, n in proposals], dtype=float)
    terms = np.stack([math.log(n / sizes.sum()) + log_q(p, u) - math.log(box_mass(p))
                      for (p, _), n in zip(proposals, sizes) if n > 0])
    return special.logsumexp(terms, axis=0)


def draw_proposal(proposal: dict, n: int, seed: int = 0) -> np.ndarray:
    """``n`` unit-cube draws of the proposal, redrawing those outside the bounds.

    Deterministic in ``seed``; the first ``n`` draws of a longer run are the draws of a
    shorter one (draws are made in fixed blocks), so a run can be extended.
    """
    mean = np.asarray(proposal["mean"])
    chol = np.linalg.cholesky(np.asarray(proposal["cov"]))
    nu = float(proposal["dof"])
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    have = 0
    for _ in range(10_000):
        if have >= n:
            break
        z = rng.standard_normal((256, mean.size)) @ chol.T
        g = rng.chisquare(nu, 256) / nu
        u = mean + z / np.sqrt(g)[:, None]
        u = u[np.all((u >= 0) & (u <= 1), axis=1)]
        out.append(u)
        have += len(u)
    else:
        raise ValueError("the proposal puts almost no mass inside the bounds of the free values")
    return np.vstack(out)[:n]


def run_importance(space: Space, n: int, path, proposal: dict, *, seed: int = 0,
                   batch: int = 0, replicates: float = 5, fixed: Sequence[str] = (),
                   targets: Sequence[Target] = TARGETS, simulate: Simulator | None = None,
                   log: Callable | None = print) -> pd.DataFrame:
    """Simulate the first ``n`` proposal draws not yet stored at ``path``; return the store.

    Rows have ``source`` ``importance`` (``importance:<batch>`` after the first) and ids
    from :data:`IMPORTANCE_ID0` + 100,000 ``batch``; the store's header holds the proposal,
    so :func:`importance_weights` needs nothing else. Each batch of an adaptive run has its
    own store and seed.
    """
    from cartsim.calibration.design import default_simulator, model_fingerprint

    meta = {"free": space.to_dict(), "seed": int(seed), "replicates": replicates,
            "fixed": list(fixed), "targets": [t.key for t in targets],
            "model": model_fingerprint(), "proposal": proposal}
    if batch:
        meta["batch"] = int(batch)
    store = DesignStore(path, meta, targets)
    sim = simulate or default_simulator(targets, replicates, fixed)
    df = store.frame()
    done = set(df["id"].tolist())
    if done and log is not None:
        log(f"{len(done)} draws already in {store.path}: continuing")
    for i, u in enumerate(draw_proposal(proposal, n, seed + batch)):
        pid = IMPORTANCE_ID0 + 100_000 * batch + i
        if pid in done:
            continue
        x = space.values(u)
        values, status = sim(space.overrides(x))
        if simulate is None:
            check_model(meta, f"importance draw {i}")
        store.append(pid, f"importance:{batch}" if batch else "importance", status, x, values)
        if log is not None:
            ll = sum(loglik(t, *values[t.key]) for t in targets)
            log(f"importance draw {i + 1}/{n}: log-likelihood {ll:9.2f}")
    return store.frame()


def importance_weights(df: pd.DataFrame, space: Space, proposal,
                       targets: Sequence[Target] = TARGETS, *,
                       truncate: bool = True) -> np.ndarray:
    """Normalised importance weights of the stored draws for the figures ``targets``.

    ``proposal``: the proposal dict, or ``[(proposal, n_draws), ...]`` of the batches whose
    draws ``df`` holds (:func:`mixture_log_q`).

    A draw whose simulation failed (status other than ``ok``) or whose likelihood is not
    finite gets weight 0 and is counted, not dropped (the caller sees the zeros).
    """
    u = space.unit(df[list(space.keys)].to_numpy(float))
    ll = loglik_matrix(df, targets).sum(axis=1) if len(targets) else np.zeros(len(df))
    return _normalised(ll - mixture_log_q(proposal, u), df, truncate)


def _normalised(lw: np.ndarray, df: pd.DataFrame, truncate: bool) -> np.ndarray:
    """Weights ``exp(lw)`` normalised, 0 for failed draws, truncated (Ionides 2008)."""
    ok = np.isfinite(lw) & df["status"].eq("ok").to_numpy()
    if not ok.any():
        raise ValueError("no importance draw has a finite likelihood")
    w = np.zeros(len(df))
    w[ok] = np.exp(lw[ok] - lw[ok].max())
    if truncate:
        w = np.minimum(w, w[ok].mean() * math.sqrt(ok.sum()))
    return w / w.sum()


def posterior_coverage(df: pd.DataFrame, space: Space, proposal,
                       targets: Sequence[Target] = TARGETS, *, level: float = 0.95,
                       draws: int = 200, seed: int = 0) -> list[dict]:
    """Per figure, out of sample (its trial left out of the weights): the model and
    predictive intervals, whether the observed figure falls inside each, and the model
    interval's claimed coverage of the observed figure (see the module docstring)."""
    rng = np.random.default_rng(seed)
    q = ((1 - level) / 2, (1 + level) / 2)
    rows = []
    ll = loglik_matrix(df, targets)  # once: each held-out trial drops its own columns
    lq = mixture_log_q(proposal, space.unit(df[list(space.keys)].to_numpy(float)))
    for trial in trials(targets):
        keep = np.array([t.trial != trial for t in targets])
        w = _normalised(ll[:, keep].sum(axis=1) - lq, df, truncate=True)
        ess = effective_sample_size(w)
        for t in (t for t in targets if t.trial == trial):
            sims = df[t.key].to_numpy(float)
            ok = np.isfinite(sims) & (w > 0)
            if not ok.any():
                rows.append({"trial": trial, "key": t.key, "name": t.name,
                             "observed": t.observed, "ess": ess, "median": math.nan,
                             "model": (math.nan, math.nan),
                             "predictive": (math.nan, math.nan), "in_model": False,
                             "in_predictive": False, "claimed_model": math.nan})
                continue
            s, ws = sims[ok], w[ok] / w[ok].sum()
            lo, hi = _weighted_quantiles(s, ws, q)
            pred = sample(t, s, rng, draws)  # (members, draws)
            pw = np.repeat(ws / draws, draws)
            plo, phi = _weighted_quantiles(pred.ravel(), pw, q)
            inside = (pred >= lo) & (pred <= hi)
            rows.append({"trial": trial, "key": t.key, "name": t.name, "observed": t.observed,
                         "ess": ess, "median": float(_weighted_quantiles(s, ws, [0.5])[0]),
                         "model": (float(lo), float(hi)), "predictive": (float(plo), float(phi)),
                         "in_model": bool(lo <= t.observed <= hi),
                         "in_predictive": bool(plo <= t.observed <= phi),
                         "claimed_model": float(np.sum(inside.mean(axis=1) * ws))})
    return rows


def format_coverage(rows: Sequence[dict], level: float = 0.95) -> str:
    """The out-of-sample posterior table and its coverage lines (claimed beside achieved)."""
    from cartsim.calibration.likelihood import fmt_figure as f

    lines = [f"{'trial':<19} {'figure':<40} {'observed':>9} {'post. median':>12} "
             f"{'model 95%':<20} {'claims':>6} {'predictive 95%':<20} {'ESS':>5}"]
    for r in rows:
        lines.append(f"{r['trial']:<19} {r['name'][:40]:<40} {f(r['observed']):>9} "
                     f"{f(r['median']):>12} {f(r['model'][0]) + '-' + f(r['model'][1]):<20} "
                     f"{r['claimed_model']:>6.2f} "
                     f"{f(r['predictive'][0]) + '-' + f(r['predictive'][1]):<20} {r['ess']:>5.1f}")
    n = len(rows)
    claimed = float(np.nansum([r["claimed_model"] for r in rows]))
    in_model = sum(r["in_model"] for r in rows)
    in_pred = sum(r["in_predictive"] for r in rows)
    sd = math.sqrt(sum(c * (1 - c) for c in (r["claimed_model"] for r in rows)
                       if math.isfinite(c)))
    lines.append(f"held-out observed figures inside the model-only interval: {in_model}/{n}; "
                 f"it claims {claimed:.1f}/{n} (+-{sd:.1f}, the sum over figures of the "
                 "predictive probability of landing inside it)")
    lines.append(f"inside the predictive (model + trial sampling) {level:.0%} interval: "
                 f"{in_pred}/{n}; it claims {level * n:.1f}/{n} "
                 f"(+-{math.sqrt(n * level * (1 - level)):.1f})")
    return "\n".join(lines)


def marginals(df: pd.DataFrame, w: np.ndarray, space: Space, level: float = 0.95) -> list[dict]:
    """What the figures pin down, per free value: the weighted posterior median and central
    ``level`` interval of each key beside its prior (uniform on the log scale within the
    bounds), and ``learned`` = 1 - (interval width / the prior's central-``level`` width), both
    on the log scale: 0 when the figures say nothing about the value, near 1 when they fix it.
    At a small effective sample size the intervals are rough (the table prints the ESS)."""
    q = ((1 - level) / 2, 0.5, (1 + level) / 2)
    u = space.unit(df[list(space.keys)].to_numpy(float))
    w = np.asarray(w, dtype=float)
    rows = []
    for j, key in enumerate(space.keys):
        lo, med, hi = _weighted_quantiles(u[:, j], w, q)
        lo_v, med_v, hi_v = space.values(np.array([[lo] * len(space.keys), [med] * len(
            space.keys), [hi] * len(space.keys)]))[:, j]
        rows.append({"key": key, "lower": space.lower[j], "upper": space.upper[j],
                     "start": space.start[j], "median": float(med_v),
                     "interval": (float(lo_v), float(hi_v)),
                     "learned": float(1.0 - (hi - lo) / level)})
    return rows


def format_marginals(rows: Sequence[dict], ess: float, level: float = 0.95) -> str:
    """The table of :func:`marginals`."""
    def f(x: float) -> str:
        return f"{x:.3g}"

    lines = [f"posterior of each free value (effective sample size {ess:.1f}); learned = 1 - "
             f"{level:.0%} interval width / prior width, log scale (0: the figures say nothing)",
             f"{'free value':<48} {'prior bounds':<22} {'shipped':>9} {'post. median':>12} "
             f"{'posterior ' + format(level, '.0%'):<22} {'learned':>7}"]
    for r in rows:
        lines.append(f"{r['key']:<48} {f(r['lower']) + '-' + f(r['upper']):<22} "
                     f"{f(r['start']):>9} {f(r['median']):>12} "
                     f"{f(r['interval'][0]) + '-' + f(r['interval'][1]):<22} "
                     f"{r['learned']:>7.2f}")
    return "\n".join(lines)


def resample(df: pd.DataFrame, w: np.ndarray, k: int, space: Space, *,
             seed: int = 0) -> pd.DataFrame:
    """``k`` equally weighted members by systematic resampling, in a random order.

    Columns: ``id``, ``source``, the free keys, ``weight`` (1/k each; a draw picked twice
    appears twice, so any first ``j`` rows are a posterior sample of size ``j``).
    """
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"ensemble members k={k!r} is not accepted: expected an integer >= 1")
    rng = np.random.default_rng(seed)
    c = np.cumsum(np.asarray(w, dtype=float) / np.sum(w))
    pos = (rng.random() + np.arange(k)) / k
    idx = np.minimum(np.searchsorted(c, pos, side="right"), len(c) - 1)
    idx = idx[rng.permutation(k)]
    out = df.iloc[idx][["id", "source", *space.keys]].reset_index(drop=True)
    out["weight"] = 1.0 / k
    return out
