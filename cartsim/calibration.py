"""Calibration of the default model and population against published CD7 CAR-T figures.

The targets are ``../shared/science/targets.md``, one :class:`Target` each, tied to
the experiment config that replicates the trial (``conf/experiment/trial_*.yaml``:
product, regimen, dose range, disease mix and follow-up matched to the trial).

How a target is checked
-----------------------
Each trial is simulated at ``replicates`` times its enrolled size (one seeded
cohort), which estimates the model's *expected* figure with little Monte-Carlo
noise. The figure must then lie

* for a proportion ``k/n``: inside the exact (Clopper-Pearson) 95% interval of the
  observed ``k/n``, i.e. the model's rate is consistent with what the trial saw;
* for a Kaplan-Meier landmark: inside the published 95% interval;
* for a median: inside a stated band (the published range where one is given; a
  factor-of-two band around the median CAR-T peak, whose between-patient spread
  covers two decades).

:func:`evaluate` returns one row per target; :func:`calibrate` searches the named
free parameters (log scale, Nelder-Mead with common random numbers) to bring
every figure inside its interval. ``experiments/calibrate.py`` runs it from
``experiments/calibration.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TARGETS", "Target", "evaluate", "loss", "format_rows", "calibrate"]


@dataclass(frozen=True)
class Target:
    """One published figure: where it comes from and how the model is compared with it."""

    name: str
    experiment: str
    statistic: str
    observed: str
    lo: float
    hi: float
    source: str
    n_trial: int


def _ci(k: int, n: int) -> tuple[float, float]:
    from cartsim.stats import binomial_ci

    return binomial_ci(k, n)


def _rate(name, exp, stat, k, n, source) -> Target:
    lo, hi = _ci(k, n)
    return Target(name, exp, stat, f"{k}/{n} ({100 * k / n:.1f}%)", lo, hi, source, n)


NCT = "trial_nct05290155"
PAN = "trial_pan2021"
LU = "trial_lu2022"
_NCT_SRC = "NCT05290155 phase I abstract (n=14)"
_PAN_SRC = "Pan et al. 2021 J Clin Oncol 39:3340"
_TAN_SRC = "Tan et al. 2023 J Hematol Oncol 16"
_LU_SRC = "Lu et al. 2022 Blood 140:321"

TARGETS: tuple[Target, ...] = (
    Target("peak CAR copies, median", NCT, "median_cmax_qpcr", "62,390 copies/ug",
           62390 / 2, 62390 * 2, _NCT_SRC + "; band: factor 2 around the median", 14),
    Target("time of peak, median", NCT, "median_tmax_qpcr", "day 12 (10-21)", 10.0, 14.0,
           _NCT_SRC + "; band: +-2 days around the median, inside the range", 14),
    _rate("expansion observed", NCT, "rate_expansion", 13, 14, _NCT_SRC),
    _rate("marrow CR/CRi at day 28", NCT, "rate_response_d28", 14, 14, _NCT_SRC),
    _rate("extramedullary ORR", NCT, "rate_em_orr", 11, 14, _NCT_SRC + " (78.5%)"),
    _rate("extramedullary CR", NCT, "rate_em_cr", 9, 14, _NCT_SRC + " (64.2%)"),
    _rate("CRS any grade", NCT, "rate_crs_any", 12, 14, _NCT_SRC + " (85.7%)"),
    _rate("CRS grade >= 3", NCT, "rate_crs_g3", 1, 14, _NCT_SRC),
    _rate("ICANS any grade", NCT, "rate_icans_any", 2, 14, _NCT_SRC + " (14.3%)"),
    _rate("CR/CRi (donor-derived)", PAN, "rate_response_d28", 18, 20, _PAN_SRC),
    _rate("CRS grade >= 3", PAN, "rate_crs_g3", 2, 20, _PAN_SRC + " (G3-4 10%)"),
    _rate("CRS any grade", PAN, "rate_crs_any", 20, 20, _PAN_SRC + " (G1-2 90% + G3-4 10%)"),
    _rate("neurotoxicity any grade", PAN, "rate_icans_any", 3, 20, _PAN_SRC + " (G1-2 15%)"),
    _rate("grade 3-4 cytopenia", PAN, "rate_cytopenia_g34", 20, 20, _PAN_SRC + " (100%)"),
    _rate("CAR-T detectable at month 6", PAN, "rate_car_m6", 5, 5, _PAN_SRC + " (5/5 assessed)"),
    _rate("relapse", PAN, "rate_relapse", 6, 20, _TAN_SRC),
    _rate("CD7-negative share of relapses", PAN, "share_cd7neg_relapse", 4, 6, _TAN_SRC),
    Target("time to relapse, median", PAN, "median_relapse_month", "6 months (4.0-10.9)",
           4.0, 10.9, _TAN_SRC + "; band: the published range", 20),
    Target("PFS at 24 months", PAN, "km_pfs_24", "36.8% (13.8-59.8)", 0.138, 0.598, _TAN_SRC,
           20),
    Target("OS at 24 months", PAN, "km_os_24", "42.3% (18.8-65.8)", 0.188, 0.658, _TAN_SRC,
           20),
    _rate("MRD-negative marrow CR by day 28", LU, "rate_mrdneg_d28", 19, 20, _LU_SRC),
    _rate("extramedullary CR", LU, "rate_em_cr", 5, 9, _LU_SRC),
    _rate("CRS any grade", LU, "rate_crs_any", 19, 20, _LU_SRC + " (<= G2 in 18, G3 in 1)"),
    _rate("CRS grade >= 3", LU, "rate_crs_g3", 1, 20, _LU_SRC),
    _rate("ICANS any grade", LU, "rate_icans_any", 2, 20, _LU_SRC + " (G1 in 2)"),
)
"""Every figure of ``science/targets.md`` the trial experiments are checked against.

Not included: the Fludarabine-exposure association (Fabrizio 2022), an effect size
rather than a cohort figure, and the tisagenlecleucel curve, which belongs to the
``stein2019`` model and is checked by ``tests/models/test_stein2019.py``.
"""

MONTH = 365.25 / 12.0


def _km_at(ep, time_var: str, event_var: str, day: float) -> float:
    from cartsim.stats import kaplan_meier

    ok = ep["evaluable"].values
    km = kaplan_meier(ep[time_var].values[ok], ep[event_var].values[ok].astype(int))
    return float(np.asarray(km.at(day)[0]))


def statistic(ep, name: str) -> float:
    """The figure ``name`` of an endpoints Dataset (evaluable patients only)."""
    ok = ep["evaluable"].values.astype(bool)

    def v(var):
        return ep[var].values[ok]

    def frac(mask, among=None):
        among = np.ones_like(mask, bool) if among is None else among
        return float(mask[among].mean()) if among.any() else math.nan

    em = v("em_present").astype(bool)
    relapse = v("relapse").astype(bool)
    alive_m6 = ~(v("death_day") <= round(6 * MONTH))
    table: dict[str, Callable[[], float]] = {
        "median_cmax_qpcr": lambda: float(np.nanmedian(v("cmax_qpcr"))),
        "median_tmax_qpcr": lambda: float(np.nanmedian(v("tmax_qpcr"))),
        "rate_expansion": lambda: frac(v("expansion").astype(bool)),
        "rate_response_d28": lambda: frac(v("response_d28") >= 1),
        "rate_mrdneg_d28": lambda: frac(v("mrd_flow_neg_d28").astype(bool)),
        "rate_em_orr": lambda: frac(np.isin(v("em_best_response"), (1, 2)), em),
        "rate_em_cr": lambda: frac(v("em_best_response") == 1, em),
        "rate_crs_any": lambda: frac(v("crs_grade") >= 1),
        "rate_crs_g3": lambda: frac(v("crs_grade") >= 3),
        "rate_icans_any": lambda: frac(v("icans_grade") >= 1),
        "rate_cytopenia_g34": lambda: frac(v("cytopenia_g34").astype(bool)),
        "rate_car_m6": lambda: frac(v("car_detectable_m6").astype(bool), alive_m6),
        "rate_relapse": lambda: frac(relapse),
        "share_cd7neg_relapse": lambda: frac(v("relapse_cd7neg").astype(bool), relapse),
        "median_relapse_month": lambda: float(np.nanmedian(v("relapse_day")[relapse]) / MONTH)
        if relapse.any() else math.nan,
        "km_pfs_24": lambda: _km_at(ep, "pfs_day", "pfs_event", round(24 * MONTH)),
        "km_os_24": lambda: _km_at(ep, "os_day", "os_event", round(24 * MONTH)),
    }
    return table[name]()


def run_experiment(experiment: str, n: int, overrides: Sequence[str] = ()):
    """Endpoints of ``+experiment=<experiment>`` with ``n`` patients and extra overrides."""
    from cartsim.config import load_run_config
    from cartsim.trial import run_trial

    cfg = load_run_config([f"+experiment={experiment}", f"population.n={n}", *overrides])
    return run_trial(cfg.scenario(), cfg.population, cfg.endpoints, options=cfg.trial).endpoints


def evaluate(overrides: Sequence[str] = (), *, replicates: int = 10,
             targets: Sequence[Target] = TARGETS) -> list[dict]:
    """Simulate every trial experiment once (``replicates`` x its size) and score each target.

    Returns rows: target fields plus ``simulated`` and ``inside`` (bool).
    """
    eps = {}
    rows = []
    for t in targets:
        if t.experiment not in eps:
            size = max(x.n_trial for x in targets if x.experiment == t.experiment)
            eps[t.experiment] = run_experiment(t.experiment, size * replicates, overrides)
        sim = statistic(eps[t.experiment], t.statistic)
        rows.append({"name": t.name, "experiment": t.experiment, "observed": t.observed,
                     "lo": t.lo, "hi": t.hi, "simulated": sim,
                     "inside": bool(t.lo <= sim <= t.hi), "source": t.source})
    return rows


def loss(rows: list[dict]) -> float:
    """Sum of squared distances outside each interval, relative to the interval's width
    (log scale for medians of positive quantities), plus a small pull to the centre."""
    total = 0.0
    for r in rows:
        lo, hi, x = r["lo"], r["hi"], r["simulated"]
        if not math.isfinite(x):
            total += 10.0
            continue
        if lo > 0 and x > 0 and hi / lo > 2.5:
            lo, hi, x = math.log(lo), math.log(hi), math.log(x)
        width = max(hi - lo, 1e-3)
        out = max(lo - x, 0.0, x - hi) / width
        centre = (x - 0.5 * (lo + hi)) / width
        total += 10.0 * out**2 + 0.05 * centre**2
    return total


def format_rows(rows: list[dict]) -> str:
    """A plain-text table of :func:`evaluate` rows."""
    lines = [f"{'experiment':<18} {'target':<34} {'observed':<22} {'accepted':<20} "
             f"{'simulated':>10}  ok"]
    for r in rows:
        fmt = (lambda x: f"{x:,.0f}") if r["hi"] > 100 else (lambda x: f"{x:.3g}")
        lines.append(f"{r['experiment']:<18} {r['name']:<34} {r['observed']:<22} "
                     f"{fmt(r['lo']) + ' - ' + fmt(r['hi']):<20} {fmt(r['simulated']):>10}  "
                     f"{'yes' if r['inside'] else 'NO'}")
    n_in = sum(r["inside"] for r in rows)
    lines.append(f"{n_in}/{len(rows)} targets inside their interval")
    return "\n".join(lines)


def calibrate(free: dict[str, tuple[float, float, float]], *, replicates: int = 10,
              maxiter: int = 60, fixed: Sequence[str] = (), log: Callable | None = print):
    """Fit the free values (Hydra keys -> (start, lower, upper)) to the targets.

    Nelder-Mead on log(value) with common random numbers (the trial seeds are fixed in
    the experiment configs), values clipped to their bounds. Returns ``(best, rows)``:
    the best values found and their :func:`evaluate` rows.
    """
    from scipy.optimize import minimize

    keys = list(free)
    lo = np.log([free[k][1] for k in keys])
    hi = np.log([free[k][2] for k in keys])

    def values(z):
        return dict(zip(keys, np.exp(np.clip(z, lo, hi))))

    def objective(z):
        vals = values(z)
        rows = evaluate([*fixed, *(f"{k}={v:.6g}" for k, v in vals.items())],
                        replicates=replicates)
        f = loss(rows)
        if log is not None:
            log(f"loss {f:8.3f}  inside {sum(r['inside'] for r in rows)}/{len(rows)}  "
                + " ".join(f"{k}={v:.4g}" for k, v in vals.items()))
        return f

    z0 = np.log([free[k][0] for k in keys])
    res = minimize(objective, z0, method="Nelder-Mead",
                   options={"maxiter": maxiter, "xatol": 0.02, "fatol": 0.01})
    best = values(res.x)
    return best, evaluate([*fixed, *(f"{k}={v:.6g}" for k, v in best.items())],
                          replicates=replicates)
