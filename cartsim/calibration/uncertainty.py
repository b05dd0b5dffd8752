"""Any virtual trial over the calibration ensemble: cohort and model intervals named apart.

``cartsim task=trial trial.ensemble=experiments/calibration_results/ensemble.csv`` runs the
user's trial (any product, dose, disease, population) once at the shipped defaults and once
per ensemble member (the ``k`` most likely parameter sets the calibration kept, same seed:
the same virtual patients), and reports every row of the results table with

* the **cohort** interval: the row's own 95% interval at the shipped defaults (exact
  binomial, Kaplan-Meier log-log, or the range of the patients), i.e. between-patient
  variability and the cohort's size;
* the **model** interval: the range of the row's estimate over the members, i.e. what
  the calibration does not pin down (parameter uncertainty given the trials).

A member is a row of the ensemble file written by ``experiments/calibrate.py --ensemble``:
Hydra override keys (``+model.params.rho_max``, ``disease.em_access``,
``population.poor_expander_probability``, ``endpoints.death.aplasia_hazard_per_day``) and
their values. :func:`apply_overrides` sets them on the typed objects directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["apply_overrides", "format_uncertainty", "member_overrides", "trial_with_ensemble"]

_SCENARIO_SECTIONS = ("patient", "regimen", "product", "disease", "output", "solver")


def member_overrides(member: Mapping, keys: Sequence[str] | None = None) -> dict[str, float]:
    """The override keys and values of one ensemble row (its bookkeeping columns dropped)."""
    keys = [k for k in (member.keys() if keys is None else keys)
            if "." in k and ":" not in k]
    return {k: float(member[k]) for k in keys}


def _replace(obj, path: list[str], value, key: str):
    if not dataclasses.is_dataclass(obj) or path[0] not in {f.name for f in
                                                             dataclasses.fields(obj)}:
        raise ValueError(f"ensemble key {key!r} is not accepted: {path[0]!r} is not a field "
                         f"of {type(obj).__name__}")
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: _replace(getattr(obj, path[0]), path[1:],
                                                         value, key)})


def apply_overrides(scenario, population, settings, overrides: Mapping[str, float]):
    """``(scenario, population, settings)`` with ``overrides`` applied (new objects).

    ``[+]model.params.NAME`` sets a model parameter; ``patient.``/``regimen.``/``product.``/
    ``disease.``/``output.``/``solver.`` fields of the scenario; ``population.FIELD`` of
    the :class:`~cartsim.population.PopulationSpec`; ``endpoints.FIELD[.FIELD]`` of the
    :class:`~cartsim.clinical.EndpointSettings`. Anything else is an error naming the key.
    """
    for key, value in overrides.items():
        path = key.lstrip("+").split(".")
        if path[:2] == ["model", "params"] and len(path) == 3:
            model = dataclasses.replace(scenario.model,
                                        params={**scenario.model.params, path[2]: value})
            scenario = dataclasses.replace(scenario, model=model)
        elif path[0] in _SCENARIO_SECTIONS and len(path) >= 2:
            scenario = _replace(scenario, path, value, key)
        elif path[0] == "population" and len(path) >= 2:
            population = _replace(population, path[1:], value, key)
        elif path[0] == "endpoints" and len(path) >= 2:
            settings = _replace(settings, path[1:], value, key)
        else:
            raise ValueError(f"ensemble key {key!r} is not accepted: expected model.params.NAME, "
                             "a scenario field (patient./regimen./product./disease.), "
                             "population.FIELD or endpoints.FIELD")
    return scenario, population, settings


def trial_with_ensemble(scenario, population, settings, members, *, k: int = 5,
                        seed: int | None = None, options=None, simulate_fn=None):
    """Run the trial at the defaults and at the ``k`` first members; rows with both intervals.

    ``members``: a DataFrame of ensemble rows (best first, as written by the calibration).
    Returns ``(result, rows)``: the :class:`~cartsim.trial.TrialResult` at the defaults, and
    one dict per results-table row with ``endpoint``, ``stat``, ``unit``, ``value`` (at the
    defaults), ``cohort_lo``/``cohort_hi``, ``model_lo``/``model_hi`` (range over members),
    ``members`` (their estimates) and ``k``.
    """
    from cartsim.trial import run_trial

    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"trial.ensemble_members={k!r} is not accepted: expected an integer >= 1")
    if len(members) == 0:
        raise ValueError("the ensemble file holds no members")
    base = run_trial(scenario, population, settings, options=options, seed=seed,
                     simulate_fn=simulate_fn)
    rows0 = base.summary()
    per_member = []
    for _, m in members.head(k).iterrows():
        sc, pop, st = apply_overrides(scenario, population, settings, member_overrides(m))
        res = run_trial(sc, pop, st, options=options, seed=seed, simulate_fn=simulate_fn)
        per_member.append([r["value"] for r in res.summary()])
    vals = np.array(per_member, dtype=float)  # (members, rows)
    out = []
    for j, r in enumerate(rows0):
        v = vals[:, j] if vals.shape[1] == len(rows0) else np.full(len(vals), np.nan)
        ok = v[np.isfinite(v)]
        out.append({"section": r["section"], "endpoint": r["endpoint"], "stat": r["stat"],
                    "unit": r["unit"], "value": r["value"], "cohort_lo": r["lo"],
                    "cohort_hi": r["hi"],
                    "model_lo": float(ok.min()) if ok.size else math.nan,
                    "model_hi": float(ok.max()) if ok.size else math.nan,
                    "members": v.tolist(), "k": len(vals)})
    return base, out


def format_uncertainty(rows: Sequence[dict]) -> str:
    """Text table: estimate, cohort 95% interval and model range, named apart."""
    from cartsim.reporting.rows import fmt_num

    def f(x, stat):
        if not math.isfinite(x):
            return "NA"
        return f"{100 * x:.1f}%" if stat in ("proportion", "km_survival") else fmt_num(x)

    k = rows[0]["k"] if rows else 0
    lines = [f"{'endpoint':<48} {'estimate':>10}  {'cohort interval':<22} "
             f"model range ({k} ensemble members)",
             "cohort: between-patient variability and cohort size at the shipped defaults (95% "
             "CI of rates and KM estimates; the patients' range for medians); model: the "
             "estimate over parameter sets the calibration could not rule out"]
    for r in rows:
        if r["stat"] == "count":
            continue
        s = r["stat"]
        lines.append(f"{r['endpoint'][:48]:<48} {f(r['value'], s):>10}  "
                     f"{f(r['cohort_lo'], s) + ' - ' + f(r['cohort_hi'], s):<22} "
                     f"{f(r['model_lo'], s)} - {f(r['model_hi'], s)}")
    return "\n".join(lines)
