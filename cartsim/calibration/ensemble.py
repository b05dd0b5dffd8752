"""What the model does not know: the parameter sets the evidence does not rule out, kept and
carried into predictions.

History matching (Craig et al. 1997; Vernon, Goldstein & Bower 2010 Bayesian Anal 5:619):
a stored point is *implausible* when its largest standardised deviation over the targets,
``I(x) = max_j |z_j(x)|``, reaches ``cut`` (3, Pukelsheim's three-sigma rule). The points
that remain form the ensemble, each with a likelihood weight
``w_i = exp(l_i - max l) / sum``. When no point survives the cut the ``fallback`` least
implausible points are kept and the file says so (the model misses some figure at every
point tried: the ensemble is then a statement about the search, not about the evidence).

:func:`propagate` runs a trial at every member and reports each figure with two
intervals named apart: the *cohort* interval (between-patient: the figure's spread over
virtual trials of the trial's size, bootstrap at the best member) and the *model*
interval (between-member: the spread of the expected figure over the ensemble).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cartsim.calibration.design import Space, loglik_matrix, z_matrix
from cartsim.calibration.likelihood import fmt_figure
from cartsim.calibration.targets import TARGETS, Target

__all__ = ["implausibility", "plausible", "ensemble", "provenance", "write_ensemble",
           "read_ensemble", "write_best", "propagate", "format_propagation"]


def implausibility(df: pd.DataFrame, targets: Sequence[Target] = TARGETS) -> np.ndarray:
    """``max_j |z_j|`` of every stored point (inf where a figure could not be computed)."""
    z = np.abs(z_matrix(df, targets))
    return np.where(np.isnan(z), np.inf, z).max(axis=1) if len(targets) else np.zeros(len(df))


def plausible(df: pd.DataFrame, targets: Sequence[Target] = TARGETS, *, cut: float = 3.0,
              fallback: int = 5) -> tuple[np.ndarray, bool]:
    """Boolean mask of the points kept, and whether the cut itself was met by any point.

    The points with implausibility below ``cut``; when fewer than ``fallback`` pass, the
    least implausible others fill the ensemble up to ``fallback`` members (a single
    surviving point would claim no model uncertainty at all). A point whose figures failed
    (non-finite implausibility) is never kept.
    """
    imp = implausibility(df, targets)
    keep = imp < cut
    met = bool(keep.any())
    if keep.sum() >= fallback or not len(df):
        return keep, met
    order = [i for i in np.argsort(imp, kind="stable") if np.isfinite(imp[i])]
    for i in order[:fallback]:
        keep[i] = True
    return keep, met


def ensemble(df: pd.DataFrame, space: Space, targets: Sequence[Target] = TARGETS, *,
             cut: float = 3.0, fallback: int = 5) -> pd.DataFrame:
    """The ensemble members: parameter values, log-likelihood, implausibility, weight.

    Candidates are the design points (a space-filling sample of the plausible region) and
    the single best refined point, if any (the refinement's other steps crowd around the
    optimum and would narrow the ensemble's spread).
    """
    ll_all = loglik_matrix(df, targets).sum(axis=1)
    refined = (df["source"] != "design").to_numpy()
    pick = ~refined
    if refined.any():
        pick[np.flatnonzero(refined)[np.argmax(ll_all[refined])]] = True
    df = df[pick].reset_index(drop=True)
    keep, met = plausible(df, targets, cut=cut, fallback=fallback)
    ll = ll_all[pick]
    out = df.loc[keep, ["id", "source", *space.keys]].copy()
    out["loglik"] = ll[keep]
    out["implausibility"] = implausibility(df, targets)[keep]
    w = np.exp(out["loglik"] - out["loglik"].max())
    out["weight"] = w / w.sum()
    out.attrs["cut_met"] = met
    out.attrs["candidates"] = int(len(df))
    return out.sort_values("loglik", ascending=False).reset_index(drop=True)


def _git() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(config: dict, targets: Sequence[Target] = TARGETS, **extra) -> dict:
    """Date, git commit, the calibration config and the target list of a result."""
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": _git(), "config": config,
            "targets": [f"{t.key}: {t.name} = {t.observed_label} ({t.source})" for t in targets],
            **extra}


def write_ensemble(members: pd.DataFrame, path, prov: dict) -> Path:
    """CSV of the members, preceded by ``# `` lines holding the provenance (JSON)."""
    from cartsim.io import write_text

    head = "".join(f"# {line}\n" for line in json.dumps(
        {**prov, "cut_met": bool(members.attrs.get("cut_met", True))}, indent=1).splitlines())
    return write_text(head + members.to_csv(index=False), path)


def read_ensemble(path) -> tuple[pd.DataFrame, dict]:
    """Members and provenance of a file written by :func:`write_ensemble`."""
    lines = Path(path).read_text().splitlines()
    prov = json.loads("\n".join(ln[2:] for ln in lines if ln.startswith("# ")))
    return pd.read_csv(path, comment="#"), prov


def write_best(space: Space, x, path, prov: dict, rows: Sequence[dict] | None = None) -> Path:
    """The best point as a YAML parameter file: Hydra overrides, with provenance."""
    from cartsim.io import write_text

    doc = {"overrides": {k: float(f"{v:.6g}") for k, v in zip(space.keys, x)},
           "provenance": prov}
    if rows is not None:
        doc["fit"] = {r["key"]: {"observed": float(r["observed"]),
                                 "simulated": float(r["simulated"]),
                                 "z": None if math.isnan(r["z"]) else round(float(r["z"]), 3)}
                      for r in rows}
    text = ("# Best point of the cd7 calibration (experiments/calibrate.py --fit): apply with\n"
            "# the overrides below; 'provenance' says from what and when.\n")
    return write_text(text + yaml.safe_dump(doc, sort_keys=False), path)


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Quantiles ``q`` of ``x`` under weights ``w`` (mid-point rule; NaN and zero weights
    left out)."""
    ok = np.isfinite(x) & (w > 0)
    x, w = x[ok], w[ok]
    if not x.size:
        return np.full(len(q), np.nan)
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    c = np.cumsum(w) - 0.5 * w
    return np.interp(q, c / w.sum(), x)


def propagate(experiment: str, members: pd.DataFrame, space: Space, *, replicates: float = 5,
              targets: Sequence[Target] = TARGETS, fixed: Sequence[str] = (), k: int = 8,
              n_boot: int = 200, seed: int = 0, weighted: bool = False) -> list[dict]:
    """Run ``experiment`` at the first ``k`` members and report every figure with both intervals.

    The first members are the most likely of a history-matching ensemble (written best
    first), or a posterior sample of a posterior ensemble (written in a random order,
    :func:`cartsim.calibration.posterior.resample`).
    Returns rows: figure, observed (if a target), expected at the first member, the cohort
    95% interval (bootstrap of trials of the enrolled size, first member), the model 95%
    interval over members (equal weights, or the file's weights if ``weighted``), and the
    members' expected figures.
    """
    from cartsim.calibration.run import overrides_for, run_experiment
    from cartsim.calibration.statistics import statistic
    from cartsim.config import load_run_config

    mine = [t for t in targets if t.experiment == experiment]
    if not mine:
        raise ValueError(f"no target uses experiment {experiment!r}; experiments with targets: "
                         + ", ".join(dict.fromkeys(t.experiment for t in targets)))
    top = members.head(k)
    n_trial = load_run_config([f"+experiment={experiment}"]).population.n
    rng = np.random.default_rng(seed)
    sims = np.empty((len(top), len(mine)))
    boot = None
    for i, (_, m) in enumerate(top.iterrows()):
        free = space.overrides(m[list(space.keys)])
        ep = run_experiment(experiment, overrides_for(experiment, fixed, free),
                            replicates=replicates)
        sims[i] = [statistic(ep, t.statistic, t.day)[0] for t in mine]
        if i == 0:
            idx = rng.integers(0, ep.sizes["patient"], (n_boot, n_trial))
            boot = np.array([[statistic(ep.isel(patient=j), t.statistic, t.day)[0]
                              for t in mine] for j in idx])
    w = top["weight"].to_numpy(float) if weighted else np.ones(len(top))
    rows = []
    for j, t in enumerate(mine):
        rows.append({"experiment": experiment, "name": t.name, "observed": t.observed,
                     "observed_label": t.observed_label, "expected": sims[0, j],
                     "cohort_lo": float(np.nanquantile(boot[:, j], 0.025)),
                     "cohort_hi": float(np.nanquantile(boot[:, j], 0.975)),
                     "model": tuple(_weighted_quantiles(sims[:, j], w, (0.025, 0.975))),
                     "members": sims[:, j].tolist()})
    return rows


def format_propagation(rows: Sequence[dict]) -> str:
    """Table: expected figure, cohort (between-patient) and model (ensemble) 95% intervals."""
    f = fmt_figure
    lines = [f"{'figure':<44} {'observed':<22} {'expected':>9}  {'cohort 95% (patients)':<22}"
             f"{'model 95% (ensemble)':<22}"]
    for r in rows:
        lines.append(f"{r['name'][:44]:<44} {r['observed_label'][:22]:<22} {f(r['expected']):>9}"
                     f"  {f(r['cohort_lo']) + '-' + f(r['cohort_hi']):<22}"
                     f"{f(r['model'][0]) + '-' + f(r['model'][1]):<22}")
    lines.append(f"cohort: spread of the figure over virtual trials of the enrolled size at the "
                 f"best member (between-patient); model: spread of the expected figure over "
                 f"{len(rows[0]['members']) if rows else 0} ensemble members (parameter "
                 "uncertainty)")
    return "\n".join(lines)
