"""Virtual trials: a cohort -> compiled batch simulation -> per-patient endpoints -> report.

:func:`run_trial` is the entry point of ``cartsim task=trial`` and of notebooks::

    from cartsim import load_run_config
    from cartsim.trial import run_trial
    cfg = load_run_config(["population.n=200", "product=ns7car"])
    result = run_trial(cfg.scenario(), cfg.population, cfg.endpoints)
    result.summary()            # rows of a clinical paper's results table

The cohort is either drawn from a :class:`~cartsim.population.PopulationSpec`
(seeded) or read from a table (CSV/Parquet, one row per patient). Patients are
integrated as compiled parallel batches of ``chunk_size`` and reduced to
endpoints chunk by chunk, so memory is bounded by the chunk, not the cohort
(10,000 patients with daily output over two years would otherwise hold ~2 GB
of trajectories). Trajectories are kept only on request.

Randomness (:mod:`cartsim.randomness`): one seed drives everything through independent
``numpy.random.SeedSequence`` streams: the cohort stream draws the cohort, the death stream
the death model's per-patient uniforms (keyed by the global patient index, so the result
does not depend on ``chunk_size`` or on the number of threads, and
``cartsim.endpoints(cartsim.simulate(scenarios))`` draws the same deaths).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from cartsim.options import TrialOptions
from cartsim.randomness import stream_seeds  # re-exported: cartsim.trial.stream_seeds
from cartsim.scenario import Scenario

__all__ = ["TrialOptions", "TrialResult", "apply_overrides", "member_overrides", "pinned_keys",
           "read_members", "read_override", "run_trial", "stream_seeds", "trial_trajectories",
           "trial_with_ensemble"]


@dataclass
class TrialResult:
    """A simulated trial.

    Attributes
    ----------
    endpoints : per-patient endpoints (``cartsim.endpoints`` contract) merged with the
        cohort's covariates and random effects, dim ``patient``.
    cohort : the :class:`~cartsim.population.Cohort` simulated.
    trajectories : the simulation Dataset (dims ``patient``, ``time``) if kept, else None.
    title : report title.
    html_report : whether the trial's files include ``report.html``
        (:func:`cartsim.reporting.write_trial` writes them).
    """

    endpoints: xr.Dataset
    cohort: object
    trajectories: xr.Dataset | None = None
    title: str = "cartsim virtual trial"
    html_report: bool = False

    def summary(self) -> list[dict]:
        """Rows of the results table (see :func:`cartsim.report.trial_summary`)."""
        from cartsim.clinical.table import trial_summary

        return trial_summary(self.endpoints)


def run_trial(base: Scenario, population=None, settings=None, *, cohort=None,
              options: TrialOptions | None = None, seed: int | None = None,
              method: str | None = None, simulate_fn=None,
              first_patient: int = 0) -> TrialResult:
    """Simulate a virtual trial and compute every endpoint.

    Parameters
    ----------
    base : the scenario every patient starts from (product, regimen, disease, model,
        solver, output grid); covariates and random effects are applied on top.
    population : :class:`~cartsim.population.PopulationSpec` to draw the cohort from
        (default: ``PopulationSpec()``). Ignored when ``cohort`` or
        ``options.cohort_file`` is given.
    settings : :class:`~cartsim.clinical.EndpointSettings` (default: its defaults).
    cohort : a ready :class:`~cartsim.population.Cohort` (e.g. from ``read_cohort``).
    options : :class:`TrialOptions`.
    seed : run seed (default ``base.seed``).
    method : solver method override (``rodas4``, ``dp5``, ``bdf``).
    simulate_fn : ``f(scenarios, start) -> Dataset`` (dims ``patient``, ``time``) that
        simulates one chunk whose first patient has global index ``start``; default: the
        ODE (:func:`cartsim.simulate`). The stochastic engines plug in here
        (``engine=stochastic``: one realisation per patient).
    first_patient : index of the cohort's first patient in a larger trial (default 0): a
        shard of that trial (:mod:`cartsim.shard`) gives its patients the indices, hence the
        death draws and stochastic streams, they have in the whole trial.

    Returns
    -------
    TrialResult
    """
    from cartsim.clinical import EndpointSettings, endpoints
    from cartsim.population import PopulationSpec, draw_cohort, read_cohort
    from cartsim.simulation import simulate

    options = options or TrialOptions()
    settings = settings or EndpointSettings()
    seed = base.seed if seed is None else int(seed)
    cohort_rng, death_seed = stream_seeds(seed)
    from cartsim.budget import check_trial
    check_trial(base, population, options, cohort)  # population.n=1e8: refused in ms
    if cohort is None:
        if options.cohort_file is not None:
            cohort = read_cohort(options.cohort_file, base)
        else:
            cohort = draw_cohort(base, population or PopulationSpec(), cohort_rng)
    scenarios = [dataclasses.replace(s, seed=seed) for s in cohort.scenarios]
    n = len(scenarios)
    parts, trajectories = [], []
    for start in range(first_patient, first_patient + n, options.chunk_size):
        chunk = scenarios[start - first_patient:start - first_patient + options.chunk_size]
        ds = simulate(chunk, method=method) if simulate_fn is None else simulate_fn(chunk, start)
        ds = ds.assign_coords(patient=("patient", np.arange(start, start + len(chunk)),
                                       ds["patient"].attrs))
        parts.append(endpoints(ds, settings, seed=death_seed))
        if options.save_trajectories:
            trajectories.append(ds)
    ep = xr.concat(parts, dim="patient", combine_attrs="override") if len(parts) > 1 \
        else parts[0]
    table = cohort.table.assign_coords(patient=("patient", np.arange(first_patient,
                                                                     first_patient + n)))
    ep = xr.merge([ep, table], combine_attrs="override", compat="override")
    ep.attrs.update(_trial_attrs(cohort, seed, n, options))
    traj = None
    if trajectories:
        traj = xr.concat(trajectories, dim="patient", combine_attrs="override")
    return TrialResult(endpoints=ep, cohort=cohort, trajectories=traj, title=options.title,
                       html_report=options.html_report)


def trial_trajectories(result: TrialResult, n: int = 200) -> xr.Dataset | None:
    """A trial's trajectories: all the kept ones, else its first ``n`` patients re-simulated
    with the ODE as the trial simulated them (same scenarios, same run seed).

    For figures of a trial that kept no trajectories (the HTML report's waterfall, cohort
    and patient-story figures): a renderer draws what it is given and never simulates.
    None when the result has no cohort to re-simulate.
    """
    if result.trajectories is not None:
        return result.trajectories
    from cartsim.simulation import simulate

    scenarios = list(getattr(result.cohort, "scenarios", []) or [])[:int(n)]
    if not scenarios:
        return None
    seed = int(result.endpoints.attrs.get("seed", scenarios[0].seed))
    return simulate([dataclasses.replace(s, seed=seed) for s in scenarios])


def _trial_attrs(cohort, seed: int, n: int, options: TrialOptions) -> dict:
    src = cohort.table.attrs.get("source", "drawn")
    return {
        "title": options.title,
        "seed": int(seed),
        "n_patients": int(n),
        "cohort_source": str(src),
        "chunk_size": int(options.chunk_size),
        "months_per_day": 1.0 / (365.25 / 12.0),
        "note": "CRS and ICANS grades are model surrogates computed from simulated cytokine "
                "and expansion trajectories, not observed grades",
    } | ({"population_spec": cohort.table.attrs["spec"]} if "spec" in cohort.table.attrs
         else {})


# ------------------------------------------------------------------ over the calibration ensemble
# ``cartsim task=trial trial.ensemble=experiments/calibration_results/ensemble.csv`` runs the
# trial at the shipped defaults and at the first ``k`` parameter sets of the calibration's
# posterior ensemble (a random-order posterior sample, so any first k are a sample)
# (same seed: the same virtual patients) and reports every results-table row with its *cohort*
# interval (the row's own interval at the defaults: between-patient variability and cohort
# size) and its *model* range (the estimate over the members: what the calibration does not pin
# down). Kept here, not in cartsim.calibration, so the trial task does not reach the layer that
# composes experiment configs.


def read_members(path):
    """Ensemble members (a DataFrame, in the file's order) of a file written by
    ``experiments/calibrate.py --posterior`` (a random-order posterior sample: any first k
    members are a posterior sample) or ``--ensemble`` (history matching, the most likely
    first); provenance lines start with ``#``."""
    import json

    import pandas as pd

    members = pd.read_csv(path, comment="#")
    with open(path) as fh:
        head = [ln[2:] for ln in fh if ln.startswith("# ")]
    try:
        members.attrs["provenance"] = json.loads("".join(head)) if head else {}
    except json.JSONDecodeError:  # a hand-made file: its members still run
        members.attrs["provenance"] = {}
    return members


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


def read_override(scenario, population, settings, key: str) -> float | None:
    """The value an ensemble key has in ``(scenario, population, settings)`` (None: unset)."""
    path = key.lstrip("+").split(".")
    if path[:2] == ["model", "params"] and len(path) == 3:
        value = scenario.model.params.get(path[2])
        if value is None:
            from cartsim.models import get_model

            params = get_model(scenario.model.name).parameters
            value = params[path[2]].value if path[2] in params else None
        return None if value is None else float(value)
    obj = {"population": population, "endpoints": settings}.get(path[0], scenario)
    rest = path[1:] if path[0] in ("population", "endpoints") else path
    for name in rest:
        if isinstance(obj, Mapping):
            obj = obj.get(name)
        else:
            obj = getattr(obj, name, None)
        if obj is None:
            return None
    try:
        return float(obj)
    except (TypeError, ValueError):
        return None


def pinned_keys(objects, defaults, keys: Sequence[str]) -> set[str]:
    """Keys whose value in ``objects`` differs from ``defaults`` (both ``(scenario,
    population, settings)``): set by the user or the experiment, so an ensemble member
    leaves them alone, as the calibration did (``cartsim.calibration.run.overrides_for``:
    ``disease.blast_growth_per_day`` is a T-ALL value, not applied to ``disease=cd7_aml``)."""
    out = set()
    for key in keys:
        a, b = read_override(*objects, key), read_override(*defaults, key)
        if a is not None and b is not None and not math.isclose(a, b, rel_tol=1e-9):
            out.add(key)
    return out


def trial_with_ensemble(scenario, population, settings, members, *, k: int = 5,
                        seed: int | None = None, options=None, simulate_fn=None,
                        defaults=None):
    """Run the trial at the defaults and at the ``k`` first members; rows with both intervals.

    ``members``: a DataFrame of ensemble rows (best first, as written by the calibration).
    Returns ``(result, rows)``: the :class:`~cartsim.trial.TrialResult` at the defaults, and
    one dict per results-table row with ``endpoint``, ``stat``, ``unit``, ``value`` (at the
    defaults), ``cohort_lo``/``cohort_hi``, ``model_lo``/``model_hi`` (range over members),
    ``members`` (their estimates) and ``k``.

    ``defaults``: ``(scenario, population, settings)`` of the shipped configuration
    (default: ``cartsim.load_run_config()``'s). A member value is applied only where the
    run has the shipped value (:func:`pinned_keys`): what the user or the experiment set
    stays, and the keys left alone are listed in each row's ``pinned``.
    """
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"trial.ensemble_members={k!r} is not accepted: expected an integer >= 1")
    if len(members) == 0:
        raise ValueError("the ensemble file holds no members")
    base = run_trial(scenario, population, settings, options=options, seed=seed,
                     simulate_fn=simulate_fn)
    rows0 = base.summary()
    if defaults is None:
        from cartsim.config import load_run_config

        cfg = load_run_config()
        defaults = (cfg.scenario(), cfg.population, cfg.endpoints)
    keys = list(member_overrides(members.iloc[0]))
    pinned = pinned_keys((scenario, population, settings), defaults, keys)
    per_member = []
    for _, m in members.head(k).iterrows():
        over = {key: v for key, v in member_overrides(m).items() if key not in pinned}
        sc, pop, st = apply_overrides(scenario, population, settings, over)
        res = run_trial(sc, pop, st, options=options, seed=seed, simulate_fn=simulate_fn)
        per_member.append([r["value"] for r in res.summary()])
    vals = np.array(per_member, dtype=float)  # (members, rows)
    # how much the members say: a posterior resample repeats heavy draws, and at a small
    # effective sample size few distinct parameter sets carry the range
    used = members.head(k)
    distinct = int(used["id"].nunique()) if "id" in used.columns else len(used)
    ess = members.attrs.get("provenance", {}).get("effective_sample_size")
    out = []
    for j, r in enumerate(rows0):
        v = vals[:, j] if vals.shape[1] == len(rows0) else np.full(len(vals), np.nan)
        ok = v[np.isfinite(v)]
        out.append({"section": r["section"], "endpoint": r["endpoint"], "stat": r["stat"],
                    "unit": r["unit"], "value": r["value"], "cohort_lo": r["lo"],
                    "cohort_hi": r["hi"],
                    "model_lo": float(ok.min()) if ok.size else math.nan,
                    "model_hi": float(ok.max()) if ok.size else math.nan,
                    "members": v.tolist(), "k": len(vals), "distinct": distinct,
                    "ess": float(ess) if ess is not None else math.nan,
                    "pinned": sorted(pinned)})
    return base, out
