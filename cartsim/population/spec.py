"""What a virtual cohort is drawn from: covariate distributions and random effects.

These dataclasses are Hydra structured configs (the ``population`` group,
``conf/population/default.yaml``) and plain objects a notebook builds by
keyword. Values are checked in ``__post_init__``; every error names the dotted
key (``population.covariates.weight_kg.sd``), the value and what is accepted.

Two sources of between-patient variability
------------------------------------------
* **Covariates** (:data:`COVARIATE_FIELDS`): patient and disease fields of the
  :class:`~cartsim.scenario.Scenario`, each drawn from a fixed value or a
  normal, log-normal or uniform distribution, optionally truncated to
  ``[lower, upper]``; pairs may be correlated through a Gaussian copula on the
  normal scores (e.g. weight and height).
* **Random effects** on model parameters, log-normal as in population PK/PD
  (NONMEM-style exponential IIV): ``theta_i = theta_typical * exp(eta_i)``,
  ``eta ~ N(0, Omega)``, ``Omega = D R D`` with ``D = diag(omega)`` and the
  correlation matrix ``R`` from ``random_effect_correlation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from cartsim.scenario import ScenarioError

__all__ = ["COVARIATE_FIELDS", "DISTRIBUTIONS", "Covariate", "CovariateField", "PopulationSpec",
           "correlation_matrix"]

PREFIX = "population"
DISTRIBUTIONS = ("fixed", "normal", "lognormal", "uniform")
MIN_MASS = 1e-3
"""Smallest probability a covariate's ``[lower, upper]`` may hold (else the bounds are an error)."""


class CovariateField(NamedTuple):
    """Where a covariate lands in a Scenario, its canonical unit and its description."""

    key: str
    units: str
    long_name: str


COVARIATE_FIELDS: dict[str, CovariateField] = {
    "weight_kg": CovariateField("patient.weight_kg", "kg", "body weight"),
    "height_cm": CovariateField("patient.height_cm", "cm", "height"),
    "crcl_ml_min": CovariateField("patient.crcl_ml_min", "mL/min", "creatinine clearance"),
    "marrow_blast_pct": CovariateField("patient.marrow_blast_pct", "%",
                                       "marrow blasts at lymphodepletion"),
    "cd7neg_blast_fraction": CovariateField("patient.cd7neg_blast_fraction", "1",
                                            "CD7-negative fraction of blasts at baseline"),
    "lymphocytes_per_ul": CovariateField("patient.lymphocytes_per_ul", "cells/uL",
                                         "absolute lymphocyte count before lymphodepletion"),
    "anc_per_ul": CovariateField("patient.anc_per_ul", "cells/uL",
                                 "absolute neutrophil count before lymphodepletion"),
    "cd7_density": CovariateField("disease.cd7_density", "1",
                                  "CD7 antigen density on blasts relative to T-ALL blasts"),
    "em_volume_cm3": CovariateField("disease.em_volume_cm3", "cm3",
                                    "extramedullary mass volume"),
    "em_access": CovariateField("disease.em_access", "1",
                                "CAR-T access to the extramedullary mass relative to marrow"),
    "car_dose_per_kg": CovariateField("regimen.car_dose_per_kg", "cells/kg",
                                      "CAR+ cells infused per kg body weight"),
    "vcn": CovariateField("product.vcn", "copies/cell",
                          "CAR vector copies per CAR+ cell of the patient's product lot"),
}
"""Covariate short name -> (dotted Scenario field, canonical unit, long name)."""


def _fail(key: str, value: Any, accepted: str) -> ScenarioError:
    return ScenarioError(f"{key}={value!r} is not accepted: expected {accepted}")


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _phi(x: float) -> float:
    """Standard normal CDF (math.erfc keeps ``import cartsim.population`` free of scipy)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@dataclass
class Covariate:
    """The distribution of one covariate across patients.

    Attributes
    ----------
    dist : ``fixed`` (everyone gets ``value``), ``normal`` (mean ``value``, SD
        ``sd`` in the covariate's unit), ``lognormal`` (median ``value``, ``sd``
        the SD of the natural log) or ``uniform`` on ``[lower, upper]``.
    value : the fixed value, the normal mean or the log-normal median (covariate unit).
    sd : normal: SD in the covariate unit; lognormal: SD of ln(covariate) (-).
    lower, upper : truncation bounds (covariate unit, inclusive; null = none);
        the range of a uniform. A draw outside is redrawn, so the covariate
        follows the truncated distribution.

    A field that ``dist`` does not use must be null (``sd`` of a fixed
    covariate, ``value``/``sd`` of a uniform one), so nothing is silently
    ignored. Values are checked where the covariate is placed in a
    :class:`PopulationSpec`, so that the error can name its full key.
    """

    dist: str = "fixed"
    value: float | None = None
    sd: float | None = None
    lower: float | None = None
    upper: float | None = None

    def check(self, key: str = "covariate") -> None:
        """Raise :class:`~cartsim.scenario.ScenarioError` naming ``key.<field>`` if invalid."""
        if self.dist not in DISTRIBUTIONS:
            raise _fail(f"{key}.dist", self.dist, "one of " + ", ".join(DISTRIBUTIONS))
        for name in ("value", "sd", "lower", "upper"):
            v = getattr(self, name)
            if v is not None and not _is_number(v):
                raise _fail(f"{key}.{name}", v, "a finite number or null")
        uses = {"fixed": ("value",), "normal": ("value", "sd"), "lognormal": ("value", "sd"),
                "uniform": ("lower", "upper")}[self.dist]
        for name in uses:
            if getattr(self, name) is None:
                raise _fail(f"{key}.{name}", None, f"a number (dist={self.dist} needs it)")
        for name in {"fixed": ("sd",), "uniform": ("value", "sd")}.get(self.dist, ()):
            if getattr(self, name) is not None:
                raise _fail(f"{key}.{name}", getattr(self, name),
                            f"null ({name} is not used by dist={self.dist})")
        lo, hi = self.lower, self.upper
        if lo is not None and hi is not None and not lo < hi:
            raise _fail(f"{key}.upper", hi, f"a number > lower ({lo})")
        if self.dist in ("normal", "lognormal") and not self.sd > 0:
            raise _fail(f"{key}.sd", self.sd, "a number > 0 (use dist: fixed for no spread)")
        if self.dist == "lognormal":
            if not self.value > 0:
                raise _fail(f"{key}.value", self.value, "a median > 0 for dist=lognormal")
            if lo is not None and lo < 0:
                raise _fail(f"{key}.lower", lo, "a number >= 0 for dist=lognormal")
        if self.dist == "fixed":
            if (lo is not None and self.value < lo) or (hi is not None and self.value > hi):
                raise _fail(f"{key}.value", self.value, f"a value within [{lo}, {hi}]")
        elif self.dist != "uniform":
            mass = self.mass_within_bounds()
            if mass < MIN_MASS:
                raise ScenarioError(
                    f"{key}: bounds [{lo}, {hi}] hold only {mass:.2g} of the {self.dist} "
                    f"distribution (value={self.value}, sd={self.sd}); expected bounds holding "
                    f"at least {MIN_MASS:g} of it: widen them or move value")

    def score_bounds(self) -> tuple[float, float]:
        """Truncation bounds on the standard-normal score z of a normal or log-normal covariate.

        normal: ``x = value + sd z``; lognormal: ``x = value exp(sd z)``. Infinite where unbounded.
        """
        if self.dist == "normal":
            to_z = lambda x: (x - self.value) / self.sd  # noqa: E731
        else:
            to_z = lambda x: (math.log(x / self.value) / self.sd  # noqa: E731
                              if x > 0 else -math.inf)
        lo = -math.inf if self.lower is None else to_z(self.lower)
        hi = math.inf if self.upper is None else to_z(self.upper)
        return lo, hi

    def mass_within_bounds(self) -> float:
        """Probability that an untruncated normal/log-normal draw falls in ``[lower, upper]``."""
        lo, hi = self.score_bounds()
        return _phi(hi) - _phi(lo)


def correlation_matrix(entries: list[list[Any]], names: list[str], key: str) -> np.ndarray:
    """Correlation matrix over ``names`` from ``[name1, name2, rho]`` entries.

    Raises :class:`~cartsim.scenario.ScenarioError` naming ``key[i]`` for a
    malformed entry, an unknown name, a repeated pair or ``rho`` outside
    (-1, 1), and naming ``key`` if the matrix is not positive definite.
    """
    index = {n: i for i, n in enumerate(names)}
    r = np.eye(len(names))
    seen: set[frozenset[str]] = set()
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        ok = isinstance(entry, (list, tuple)) and len(entry) == 3
        if not ok:
            raise _fail(where, entry, "a list [name1, name2, rho]")
        a, b, rho = entry
        for name in (a, b):
            if name not in index:
                raise _fail(where, entry, f"names from {', '.join(names) or '(none)'}; "
                            f"{name!r} is not one of them")
        if a == b:
            raise _fail(where, entry, "two different names")
        if frozenset((a, b)) in seen:
            raise _fail(where, entry, f"each pair once; {a}-{b} is repeated")
        seen.add(frozenset((a, b)))
        if not (_is_number(rho) and -1.0 < rho < 1.0):
            raise _fail(where, entry, "a correlation rho strictly between -1 and 1")
        r[index[a], index[b]] = r[index[b], index[a]] = float(rho)
    if entries:
        eig = np.linalg.eigvalsh(r)
        if eig.min() <= 1e-10:
            raise ScenarioError(
                f"{key}={[list(e) for e in entries]!r} is not accepted: expected correlations "
                f"forming a positive definite matrix (smallest eigenvalue {eig.min():.3g}); "
                "lower the magnitude of some rho")
    return r


def _default_covariates() -> dict[str, Covariate]:
    # Must equal conf/population/default.yaml (units and sources are given there).
    return {
        "weight_kg": Covariate("lognormal", 60.0, 0.2, 25.0, 130.0),
        "height_cm": Covariate("normal", 165.0, 9.0, 135.0, 195.0),
        "crcl_ml_min": Covariate("normal", 96.0, 25.0, 35.0, 180.0),
        "marrow_blast_pct": Covariate("lognormal", 30.0, 1.2, 0.1, 95.0),
        "cd7neg_blast_fraction": Covariate("lognormal", 3.0e-5, 2.3, 1.0e-9, 0.05),
        "lymphocytes_per_ul": Covariate("lognormal", 800.0, 0.8, 50.0, 10000.0),
        "anc_per_ul": Covariate("lognormal", 1200.0, 0.7, 100.0, 20000.0),
        "cd7_density": Covariate("lognormal", 1.0, 0.3, 0.2, 3.0),
        "em_volume_cm3": Covariate("lognormal", 20.0, 1.0, 1.0, 1000.0),
        "vcn": Covariate("lognormal", 1.5, 0.5, 0.3, 5.0),
    }


def _default_random_effects() -> dict[str, float]:
    return {"rho_max": 0.19, "delta_e": 0.5, "delta_m": 0.93, "k_em0": 0.89, "k_kill": 0.5,
            "s_il6": 0.5, "k_reject": 1.0}


@dataclass
class PopulationSpec:
    """A virtual population: how many patients, and how they differ.

    Attributes
    ----------
    n : number of patients (>= 1).
    covariates : short name (a key of :data:`COVARIATE_FIELDS`) -> :class:`Covariate`.
        Scenario fields without an entry keep the base scenario's value.
    covariate_correlation : ``[name1, name2, rho]`` entries: correlation of the
        normal scores of two non-fixed covariates (Gaussian copula).
    em_probability : probability that a patient has extramedullary disease
        (-, [0, 1]); a patient without gets ``em_volume_cm3 = 0``, one with it
        the drawn ``em_volume_cm3`` (or the base scenario's). null: every
        patient keeps the drawn or base ``em_volume_cm3``.
    cd7neg_clone_probability : probability that a patient carries a pre-existing
        CD7-negative clone (-, [0, 1]); a patient without gets
        ``cd7neg_blast_fraction = 0``, one with it the drawn (or base) fraction.
        null: every patient keeps the drawn or base fraction.
    poor_expander_probability : probability that a patient's product belongs to the
        poor-expander class (-, [0, 1]; null: none), whose individual ``rho_max`` is
        multiplied by ``poor_expander_factor`` (-, (0, 1]); after the two-class mixture of
        Mueller-Schoell et al. 2021 (axi-cel: 19.7% low expanders, expansion ~12x lower).
    em_refractory_probability : probability that a patient's extramedullary disease is
        refractory to CAR-T entry (-, [0, 1]; null: none): its ``em_access`` is multiplied
        by ``em_refractory_factor`` (-, (0, 1]). Only patients with a mass are drawn into
        the class. A two-class mixture, not a spread around one value: a lesion that CAR-T
        cells barely reach hardly shrinks and adds a small, lasting stimulus (its antigen
        counts with the same access; the patient's peak comes a few days later), while a
        reachable lesion is cleared within weeks. (One lower access for every mass would
        instead slow every lesion's clearance and, with it, delay every patient's peak.)
    random_effects : model parameter name -> omega, the SD of
        ``eta = ln(theta_i / theta_typical)`` (-, >= 0). The typical value is
        the base scenario's ``model.params`` entry, else the parameter default;
        names are checked against the model's parameter set when drawing.
    random_effect_correlation : ``[param1, param2, rho]`` entries: correlation of the etas.
    """

    n: int = 100
    covariates: dict[str, Covariate] = field(default_factory=_default_covariates)
    covariate_correlation: list[list[Any]] = field(
        default_factory=lambda: [["weight_kg", "height_cm", 0.6]])
    em_probability: float | None = 0.2
    cd7neg_clone_probability: float | None = 0.2
    poor_expander_probability: float | None = 0.125388
    poor_expander_factor: float = 0.3
    em_refractory_probability: float | None = 0.240795
    em_refractory_factor: float = 0.0754722
    random_effects: dict[str, float] = field(default_factory=_default_random_effects)
    random_effect_correlation: list[list[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (isinstance(self.n, (int, np.integer)) and not isinstance(self.n, bool)
                and self.n >= 1):
            raise _fail(f"{PREFIX}.n", self.n, "a positive integer")
        for name, cov in self.covariates.items():
            key = f"{PREFIX}.covariates.{name}"
            if name not in COVARIATE_FIELDS:
                raise _fail(f"{PREFIX}.covariates", name,
                            "covariate names from " + ", ".join(COVARIATE_FIELDS))
            if isinstance(cov, dict):  # a notebook may pass plain dicts
                cov = self.covariates[name] = Covariate(**cov)
            if not isinstance(cov, Covariate):
                raise _fail(key, cov, "a Covariate (dist, value, sd, lower, upper)")
            cov.check(key)
        fixed = [k for k, c in self.covariates.items() if c.dist == "fixed"]
        random = [k for k in self.covariates if k not in fixed]
        for i, entry in enumerate(self.covariate_correlation):
            hit = [n for n in fixed if isinstance(entry, (list, tuple)) and n in entry[:2]]
            if hit:
                raise _fail(f"{PREFIX}.covariate_correlation[{i}]", entry,
                            f"non-fixed covariates; {hit[0]} has dist=fixed")
        correlation_matrix(self.covariate_correlation, random, f"{PREFIX}.covariate_correlation")
        for name in ("em_probability", "cd7neg_clone_probability", "poor_expander_probability",
                     "em_refractory_probability"):
            q = getattr(self, name)
            if q is not None and not (_is_number(q) and 0.0 <= q <= 1.0):
                raise _fail(f"{PREFIX}.{name}", q, "a probability in [0, 1] or null")
        for name in ("poor_expander_factor", "em_refractory_factor"):
            f = getattr(self, name)
            if not (_is_number(f) and 0.0 < f <= 1.0):
                raise _fail(f"{PREFIX}.{name}", f, "a factor in (0, 1]")
        for name, omega in self.random_effects.items():
            if not (_is_number(omega) and omega >= 0):
                raise _fail(f"{PREFIX}.random_effects.{name}", omega,
                            "an omega (SD of eta, -) >= 0")
        correlation_matrix(self.random_effect_correlation, list(self.random_effects),
                           f"{PREFIX}.random_effect_correlation")
