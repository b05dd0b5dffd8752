"""Draw a virtual cohort: one validated Scenario per patient, plus a covariate table.

:func:`draw_cohort` turns a base :class:`~cartsim.scenario.Scenario` and a
:class:`~cartsim.population.spec.PopulationSpec` into a :class:`Cohort`.

Sampling
--------
All draws are vectorised over patients and come from an explicit
``numpy.random.Generator``; the seed is split (``SeedSequence.spawn``) into
independent streams for covariates, extramedullary disease and random
effects, so adding a random effect leaves the drawn covariates unchanged.

Covariates and random effects are both drawn as correlated standard-normal
scores ``z = L e`` (``L`` the Cholesky factor of the correlation matrix,
``e`` i.i.d. N(0, 1)) and mapped to the natural scale:

* normal: ``x = value + sd z``; lognormal: ``x = value exp(sd z)``;
* uniform: ``x = lower + (upper - lower) Phi(z)`` (Gaussian copula);
* random effect: ``theta_i = theta_typical exp(omega z)``, i.e. ``eta = omega z``.

Truncation is by rejection of the whole patient vector: a patient whose
scores put any covariate (or parameter) outside its bounds is redrawn. For
uncorrelated components this is exactly the product of the univariate
truncated distributions; for correlated ones it is the truncated joint
distribution (the usual pharmacometric practice of redrawing etas). The
number of redrawn patients is reported in the table's attributes and the
number of out-of-bounds draws per variable in its ``n_out_of_bounds``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr
import yaml

from cartsim.population.spec import (
    COVARIATE_FIELDS,
    PREFIX,
    PopulationSpec,
    correlation_matrix,
)
from cartsim.scenario import Scenario, ScenarioError

__all__ = ["Cohort", "PatientRejected", "build_scenarios", "covariate_table", "draw_cohort"]

MIN_ACCEPTANCE = 1e-3
"""Smallest fraction of draws that may fall within all bounds (else the bounds are an error)."""
_MAX_BATCH = 1_000_000


@dataclass(repr=False)
class Cohort:
    """A virtual or tabulated cohort.

    Attributes
    ----------
    scenarios : one validated Scenario per patient (sub-objects that do not
        vary are shared with the base scenario: treat them as read-only).
    table : ``xarray.Dataset`` over dim ``patient`` (coordinate ``0..n-1``,
        as in :func:`cartsim.simulate`'s output, so the two merge): every
        covariate of :data:`~cartsim.population.spec.COVARIATE_FIELDS` as
        applied, ``em_present``, and for drawn cohorts ``eta_<param>`` and
        ``<param>``; attrs ``source`` and, when drawn, ``seed``, ``spec``
        (YAML) and the redraw counts.
    """

    scenarios: list[Scenario]
    table: xr.Dataset

    def __post_init__(self) -> None:
        if len(self.scenarios) != self.table.sizes.get("patient", -1):
            raise ValueError(f"cohort has {len(self.scenarios)} scenarios but its table has "
                             f"{self.table.sizes.get('patient')} patients")

    def __len__(self) -> int:
        return len(self.scenarios)

    def __repr__(self) -> str:
        return f"Cohort({len(self)} patients, source={self.table.attrs.get('source')!r})"


class PatientRejected(ScenarioError):
    """The Scenario rejected one patient's values (``index``; ``name`` the covariate, if known)."""

    def __init__(self, index: int, name: str | None, cause: ScenarioError) -> None:
        super().__init__(str(cause))
        self.index, self.name, self.cause = index, name, cause


def build_scenarios(base: Scenario, n: int, values: Mapping[str, np.ndarray],
                    params: Mapping[str, np.ndarray] | None = None) -> list[Scenario]:
    """One validated Scenario per patient: ``base`` with covariates and parameters replaced.

    Parameters
    ----------
    base : the scenario every patient starts from.
    n : number of patients.
    values : covariate short name (:data:`COVARIATE_FIELDS`) -> one value per
        patient, in the covariate's canonical unit.
    params : model parameter name -> one value per patient (merged over
        ``base.model.params``).

    Raises
    ------
    PatientRejected
        If a patient's values fail the Scenario's own validation.
    """
    params = params or {}
    by_section: dict[str, list[tuple[str, list[float]]]] = {}
    for name, column in values.items():
        section, fld = COVARIATE_FIELDS[name].key.split(".")
        by_section.setdefault(section, []).append((fld, np.asarray(column, float).tolist()))
    p_cols = [(k, np.asarray(v, float).tolist()) for k, v in params.items()]
    sections = {s: getattr(base, s) for s in by_section}
    out = []
    for i in range(n):
        try:
            kw: dict[str, Any] = {s: replace(sections[s], **{f: c[i] for f, c in cols})
                                  for s, cols in by_section.items()}
            if p_cols:
                kw["model"] = replace(base.model, params={**base.model.params,
                                                          **{k: c[i] for k, c in p_cols}})
            out.append(replace(base, **kw))
        except ScenarioError as exc:
            raise PatientRejected(i, _culprit(base, values, i), exc) from exc
    return out


def _culprit(base: Scenario, values: Mapping[str, np.ndarray], i: int) -> str | None:
    """The covariate whose value alone makes patient ``i``'s scenario invalid, if one does."""
    for name, column in values.items():
        section, fld = COVARIATE_FIELDS[name].key.split(".")
        try:
            replace(getattr(base, section), **{fld: float(column[i])})
        except ScenarioError:
            return name
    return None


def covariate_table(base: Scenario, values: Mapping[str, np.ndarray], n: int,
                    origin: Mapping[str, str], attrs: Mapping[str, Any]) -> xr.Dataset:
    """Dataset of every covariate as applied (``values``, else the base scenario's value)."""
    data: dict[str, Any] = {}
    for name, f in COVARIATE_FIELDS.items():
        section, fld = f.key.split(".")
        col = values.get(name)
        col = np.full(n, float(getattr(getattr(base, section), fld))) if col is None else col
        data[name] = ("patient", np.asarray(col, float), {
            "units": f.units, "long_name": f.long_name,
            "origin": origin.get(name, f"base scenario ({f.key})")})
    em = values.get("em_present")
    em = np.asarray(data["em_volume_cm3"][1] > 0) if em is None else em
    data["em_present"] = ("patient", np.asarray(em, bool), {
        "units": "1", "long_name": "patient has extramedullary disease"})
    coords = {"patient": ("patient", np.arange(n), {"long_name": "patient index"})}
    from cartsim import __version__

    return xr.Dataset(data, coords=coords, attrs={"cartsim_version": __version__, **attrs})


def sample_scores(rng: np.random.Generator, n: int, corr: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, key: str, names: list[str]) -> tuple[np.ndarray, int, np.ndarray]:
    """``n`` rows of correlated N(0, 1) scores, each row redrawn until within ``[lo, hi]``.

    Returns the scores ``(n, d)``, the number of rejected rows and, per
    column, how many drawn values fell outside its bounds.
    """
    d = len(lo)
    chol = np.linalg.cholesky(corr)
    out = np.empty((n, d))
    filled = drawn = rejected = 0
    out_of_bounds = np.zeros(d, dtype=np.int64)
    while filled < n:
        need = n - filled
        acc = (drawn - rejected) / drawn if drawn else 1.0
        m = int(min(_MAX_BATCH, max(need, math.ceil(need / max(acc, MIN_ACCEPTANCE) * 1.2))))
        z = rng.standard_normal((m, d)) @ chol.T
        bad = (z < lo) | (z > hi)
        good = np.flatnonzero(~bad.any(axis=1))[:need]
        used = good[-1] + 1 if len(good) == need else m  # draws consumed in sequence
        out[filled:filled + len(good)] = z[good]
        filled += len(good)
        drawn += used
        rejected += used - len(good)
        out_of_bounds += bad[:used].sum(axis=0)
        if drawn >= 10_000 and (drawn - rejected) / drawn < MIN_ACCEPTANCE:
            worst = ", ".join(f"{k} {c}" for k, c in zip(names, out_of_bounds.tolist()) if c)
            raise ScenarioError(
                f"{key}: only {drawn - rejected} of {drawn} draws fell within the bounds "
                f"(out of bounds: {worst}); expected at least {MIN_ACCEPTANCE:g} of draws "
                "within them: widen the bounds or reduce sd/omega")
    return out, rejected, out_of_bounds


def _streams(seed: int | np.random.Generator, k: int) -> tuple[list[np.random.Generator], int]:
    """``k`` independent generators from ``seed`` and the seed to record (-1 for a Generator)."""
    if isinstance(seed, np.random.Generator):
        if hasattr(seed, "spawn"):  # numpy >= 1.25
            return list(seed.spawn(k)), -1
        return [np.random.default_rng(s) for s in seed.integers(0, 2**63, size=k)], -1
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise ScenarioError(f"seed={seed!r} is not accepted: expected a non-negative integer "
                            "or a numpy.random.Generator")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(k)], int(seed)


def _draw_covariates(rng, spec: PopulationSpec) -> tuple[dict[str, np.ndarray], dict, int]:
    n = spec.n
    values: dict[str, np.ndarray] = {}
    info: dict[str, dict[str, Any]] = {}
    random = [k for k, c in spec.covariates.items() if c.dist != "fixed"]
    for name, c in spec.covariates.items():
        if c.dist == "fixed":
            values[name] = np.full(n, float(c.value))
            info[name] = {"origin": f"fixed at {c.value:g}"}
    if not random:
        return values, info, 0
    covs = [spec.covariates[k] for k in random]
    bounds = [c.score_bounds() if c.dist != "uniform" else (-math.inf, math.inf) for c in covs]
    corr = correlation_matrix(spec.covariate_correlation, random,
                              f"{PREFIX}.covariate_correlation")
    z, redraws, oob = sample_scores(rng, n, corr, np.array([b[0] for b in bounds]),
                                    np.array([b[1] for b in bounds]),
                                    f"{PREFIX}.covariates", random)
    for j, (name, c) in enumerate(zip(random, covs)):
        if c.dist == "normal":
            x = c.value + c.sd * z[:, j]
            what = f"normal(mean {c.value:g}, sd {c.sd:g})"
        elif c.dist == "lognormal":
            x = c.value * np.exp(c.sd * z[:, j])
            what = f"lognormal(median {c.value:g}, sd of ln {c.sd:g})"
        else:
            from scipy.special import ndtr

            x = c.lower + (c.upper - c.lower) * ndtr(z[:, j])
            what = f"uniform({c.lower:g}, {c.upper:g})"
        if c.dist != "uniform":  # exp/affine rounding must not step over an inclusive bound
            x = np.clip(x, -np.inf if c.lower is None else c.lower,
                        np.inf if c.upper is None else c.upper)
            if c.lower is not None or c.upper is not None:
                what += f" truncated to [{c.lower}, {c.upper}]"
        values[name] = x
        info[name] = {"origin": f"drawn: {what}", "n_out_of_bounds": int(oob[j])}
    return values, info, redraws


def _draw_random_effects(rng, spec: PopulationSpec, base: Scenario):
    """Individual values ``theta_typical exp(eta)``: (thetas, table variables, redraws)."""
    from cartsim.models import get_model

    ps = get_model(base.model.name).parameters
    names = list(spec.random_effects)
    lo, hi, typical = [], [], []
    for name in names:
        key = f"{PREFIX}.random_effects.{name}"
        if name not in ps.index:  # ParameterSet.__contains__ raises ParameterError
            raise ScenarioError(f"{key} is not accepted: {name!r} is not a parameter of model "
                                f"{base.model.name!r}; accepted: {', '.join(ps)}")
        p, omega = ps[name], float(spec.random_effects[name])
        t = float(base.model.params.get(name, p.value))
        if not (math.isfinite(t) and p.lower <= t <= p.upper):
            raise ScenarioError(f"model.params.{name}={t!r} is not accepted: expected a finite "
                                f"number in [{p.lower}, {p.upper}] {p.unit}")
        if t <= 0:
            raise ScenarioError(f"{key}={omega!r} is not accepted: a log-normal random effect "
                                f"needs a typical value > 0, and {name} is {t} {p.unit}")
        typical.append(t)
        bl = math.log(p.lower / t) / omega if omega > 0 and p.lower > 0 else -math.inf
        bh = math.log(p.upper / t) / omega if omega > 0 else math.inf
        lo.append(bl)
        hi.append(bh)
    corr = correlation_matrix(spec.random_effect_correlation, names,
                              f"{PREFIX}.random_effect_correlation")
    z, redraws, oob = sample_scores(rng, spec.n, corr, np.array(lo), np.array(hi),
                                    f"{PREFIX}.random_effects", names)
    thetas, data = {}, {}
    for j, name in enumerate(names):
        p, omega = ps[name], float(spec.random_effects[name])
        eta = omega * z[:, j]
        theta = np.clip(typical[j] * np.exp(eta), p.lower, p.upper)
        thetas[name] = theta
        common = {"omega": omega, "typical_value": typical[j], "n_out_of_bounds": int(oob[j])}
        data[f"eta_{name}"] = ("patient", eta, {
            "units": "1", "long_name": f"random effect of {name}: ln(individual / typical value)",
            **common})
        data[name] = ("patient", theta, {
            "units": "1" if p.unit == "-" else p.unit,
            "long_name": p.description or f"individual value of {name}", **common})
    return thetas, data, redraws


def draw_cohort(base: Scenario, spec: PopulationSpec,
                seed: int | np.random.Generator, *, patients: range | None = None) -> Cohort:
    """Draw ``spec.n`` virtual patients around ``base``.

    Parameters
    ----------
    base : the scenario every patient starts from (product, regimen, model, ...).
    spec : covariate distributions, extramedullary probability and random effects.
    seed : a non-negative integer or a ``numpy.random.Generator``; the same
        seed gives the same cohort. A Generator is recorded as seed -1.
    patients : a ``range(a, b)`` of patient indices (step 1, within ``0..spec.n``): the
        values of all ``spec.n`` patients are drawn (the draw is one sequence, so a
        patient's values depend on the patients drawn before it), but only these patients'
        scenarios and table rows are built, the table's ``patient`` coordinate holding their
        indices ``a..b-1``: the rows ``a..b-1`` of the whole cohort, at the cost of the
        vectorised draw (a shard of a trial, :mod:`cartsim.shard`). Default: all.

    Returns
    -------
    Cohort
        ``scenarios`` (validated) and ``table`` (see :class:`Cohort`).

    Raises
    ------
    ScenarioError
        A bad seed, a random effect on an unknown parameter or on one whose
        typical value is 0, extramedullary probability without a mass volume,
        bounds that almost no draw satisfies, or a drawn value the Scenario
        rejects (naming the ``population.covariates.<name>`` key and patient).
    """
    spec = dataclasses.replace(spec)  # re-validate: fields may have changed since it was built
    # stream order is part of the seed's meaning: append new streams, never reorder
    (rng_cov, rng_em, rng_re, rng_clone, rng_pe, rng_emr), seed_attr = _streams(seed, 6)
    n = spec.n
    rows = None if patients is None else _rows(patients, n)
    values, info, cov_redraws = _draw_covariates(rng_cov, spec)
    p = spec.em_probability
    present = None
    if p is not None:
        present = rng_em.random(n) < p
        vol = values.get("em_volume_cm3")
        if vol is None:
            if base.disease.em_volume_cm3 <= 0 and p > 0:
                raise ScenarioError(
                    f"{PREFIX}.em_probability={p!r} is not accepted with "
                    f"disease.em_volume_cm3={base.disease.em_volume_cm3!r} and no "
                    f"{PREFIX}.covariates.em_volume_cm3: expected a volume to give the patients "
                    "with extramedullary disease (add the covariate or use a disease with a mass)")
            vol = np.full(n, float(base.disease.em_volume_cm3))
        values["em_volume_cm3"] = np.where(present, vol, 0.0)
        what = info.get("em_volume_cm3", {}).get("origin", "base scenario value")
        info.setdefault("em_volume_cm3", {})["origin"] = (
            f"{what} with probability {p:g} ({PREFIX}.em_probability), else 0")
    q = spec.cd7neg_clone_probability
    if q is not None:
        has_clone = rng_clone.random(n) < q
        frac = values.get("cd7neg_blast_fraction",
                          np.full(n, float(base.patient.cd7neg_blast_fraction)))
        values["cd7neg_blast_fraction"] = np.where(has_clone, frac, 0.0)
        what = info.get("cd7neg_blast_fraction", {}).get("origin", "base scenario value")
        info.setdefault("cd7neg_blast_fraction", {})["origin"] = (
            f"{what} with probability {q:g} ({PREFIX}.cd7neg_clone_probability), else 0")
    refractory = _em_refractory(rng_emr, spec, base, values, info)
    thetas, re_data, re_redraws = ({}, {}, 0)
    if spec.random_effects:
        thetas, re_data, re_redraws = _draw_random_effects(rng_re, spec, base)
    poor = _poor_expanders(rng_pe, spec, base, thetas, re_data)
    if rows is not None:
        values, thetas = ({k: np.asarray(v)[rows] for k, v in d.items()} for d in (values, thetas))
        re_data = {k: (dims, arr[rows], attrs) for k, (dims, arr, attrs) in re_data.items()}
        present, poor, refractory = (None if a is None else a[rows]
                                     for a in (present, poor, refractory))
        n = rows.stop - rows.start
    try:
        scenarios = build_scenarios(base, n, values, thetas)
    except PatientRejected as exc:
        where = f"{PREFIX}.covariates.{exc.name}" if exc.name else f"{PREFIX}.covariates"
        index = exc.index + (0 if rows is None else rows.start)
        raise ScenarioError(f"{where}: drawn patient {index} is not a valid scenario: "
                            f"{exc.cause}; set bounds (lower/upper) that keep draws in the "
                            "accepted range") from exc
    attrs = {"source": "drawn", "seed": seed_attr, "model": base.model.name,
             "spec": yaml.safe_dump(dataclasses.asdict(spec), sort_keys=False),
             "n_redraws_covariates": int(cov_redraws),
             "n_redraws_random_effects": int(re_redraws)}
    origin = {k: v["origin"] for k, v in info.items()}
    table = covariate_table(base, {**values, **({"em_present": present} if p is not None
                                                else {})}, n, origin, attrs)
    for name, meta in info.items():
        if "n_out_of_bounds" in meta:
            table[name].attrs["n_out_of_bounds"] = meta["n_out_of_bounds"]
    clash = set(re_data) & set(table.data_vars)
    if clash:
        raise ScenarioError(f"{PREFIX}.random_effects: parameter names {sorted(clash)} clash "
                            "with covariate table variables")
    table = table.assign(re_data)
    if rows is not None:
        table = table.assign_coords(patient=("patient", np.arange(rows.start, rows.stop),
                                             table["patient"].attrs))
    if poor is not None:
        table["poor_expander"] = ("patient", poor, {
            "units": "1", "long_name": "product in the poor-expander class (rho_max x "
            f"{spec.poor_expander_factor:g}, probability {spec.poor_expander_probability:g})"})
    if refractory is not None:
        table["em_refractory"] = ("patient", refractory, {
            "units": "1", "long_name": "extramedullary disease refractory to CAR-T entry "
            f"(em_access x {spec.em_refractory_factor:g}, probability "
            f"{spec.em_refractory_probability:g} among patients with a mass)"})
    return Cohort(scenarios, table)


def _rows(patients, n: int) -> slice:
    """``patients`` (a step-1 range within ``0..n``) as a slice, or a ScenarioError."""
    ok = (isinstance(patients, range) and patients.step == 1
          and 0 <= patients.start < patients.stop <= n)
    if not ok:
        raise ScenarioError(f"patients={patients!r} is not accepted: expected range(a, b) with "
                            f"0 <= a < b <= population.n={n}")
    return slice(patients.start, patients.stop)


def _em_refractory(rng, spec: PopulationSpec, base: Scenario, values: dict, info: dict):
    """Draw the refractory-lesion class and scale those patients' ``em_access`` (in place).

    Returns per-patient class flags (False without a mass), or None when the population
    has no such class (``em_refractory_probability`` null or 0). A uniform is drawn for
    every patient, so the class of patient i does not depend on the others' masses.
    """
    q = spec.em_refractory_probability
    if not q:
        return None
    u = rng.random(spec.n)
    vol = values.get("em_volume_cm3", np.full(spec.n, float(base.disease.em_volume_cm3)))
    refractory = (u < q) & (np.asarray(vol) > 0.0)
    acc = values.get("em_access", np.full(spec.n, float(base.disease.em_access)))
    values["em_access"] = np.where(refractory, acc * spec.em_refractory_factor, acc)
    what = info.get("em_access", {}).get("origin", "base scenario value")
    info.setdefault("em_access", {})["origin"] = (
        f"{what}, x {spec.em_refractory_factor:g} for a refractory mass (probability "
        f"{q:g} among patients with one, {PREFIX}.em_refractory_probability)")
    return refractory


def _poor_expanders(rng, spec: PopulationSpec, base: Scenario, thetas: dict, re_data: dict):
    """Draw the poor-expander class and scale those patients' ``rho_max`` (in place).

    Returns the per-patient class flags, or None when the population has no such class
    (``poor_expander_probability`` null or 0, or a model without ``rho_max``).
    """
    from cartsim.models import get_model

    q = spec.poor_expander_probability
    ps = get_model(base.model.name).parameters
    if not q or "rho_max" not in ps.index:
        return None
    poor = rng.random(spec.n) < q
    p = ps["rho_max"]
    rho = thetas.get("rho_max", np.full(spec.n, float(base.model.params.get("rho_max", p.value))))
    thetas["rho_max"] = np.where(poor, np.clip(rho * spec.poor_expander_factor, p.lower, p.upper),
                                 rho)
    if "rho_max" in re_data:
        dims, _, attrs = re_data["rho_max"]
        re_data["rho_max"] = (dims, thetas["rho_max"], {
            **attrs, "long_name": attrs["long_name"] + " (poor expanders scaled)"})
    return poor
