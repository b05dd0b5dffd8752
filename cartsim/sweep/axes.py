"""Swept names -> where they land in a Scenario, their units, the points of a sweep.

A swept name is one of

* a scalar field of a scenario section: ``product.*``, ``disease.*``, ``patient.*``,
  ``regimen.*`` (numbers, booleans, strings; list fields such as ``regimen.car_days``
  are not sweepable);
* a model parameter: ``model.params.<name>`` (any parameter of the model's set, in its
  unit);
* a config group whose options are swept: ``product``, ``disease``, ``regimen`` (values are
  option names of ``conf/<group>/``; the option replaces the whole section, and field axes of
  the same section are applied on top).

Points: a ``grid`` sweep is the Cartesian product of the axes' values (C order: the last
axis varies fastest); ``lhs`` and ``sobol`` sample the unit hypercube with
:mod:`scipy.stats.qmc` (seeded) and map each coordinate to its range, linearly
(``linspace``) or log-uniformly (``logspace``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cartsim.scenario import Scenario, ScenarioError
from cartsim.sweep.options import SweepAxis

__all__ = ["GROUPS", "Axis", "accepted_names", "apply_point", "grid_points", "resolve_axes",
           "sample_points"]

SECTIONS = ("product", "disease", "patient", "regimen")
"""Scenario sections whose scalar fields can be swept."""

GROUPS = ("product", "disease", "regimen")
"""Config groups whose options can be swept (``conf/<group>/<option>.yaml``)."""

FIELD_UNITS: dict[str, tuple[str, str]] = {
    "product.residual_cd7": ("1", "surface CD7 on CAR-T cells relative to a normal CD7+ T cell"),
    "product.donor_derived": ("1", "donor-derived product (True) or autologous (False)"),
    "product.allogeneic": ("1", "allogeneic off-the-shelf product rejected by the host (True)"),
    "product.memory_fraction": ("1", "fraction of the CAR+ dose entering the memory pool"),
    "product.exhausted_fraction": ("1", "fraction of the CAR+ dose entering the exhausted pool"),
    "product.vcn": ("copies/cell", "CAR vector copies per CAR+ cell"),
    "product.name": ("1", "product name"),
    "product.label": ("1", "product description"),
    "disease.blast_growth_per_day": ("1/day", "net blast proliferation rate at low burden"),
    "disease.cd7_density": ("1", "CD7 antigen density on blasts relative to T-ALL blasts"),
    "disease.em_volume_cm3": ("cm3", "extramedullary mass volume"),
    "disease.em_access": ("1", "CAR-T access to the extramedullary mass relative to marrow"),
    "disease.name": ("1", "disease name"),
    "disease.label": ("1", "disease description"),
    "patient.weight_kg": ("kg", "body weight"),
    "patient.height_cm": ("cm", "height"),
    "patient.crcl_ml_min": ("mL/min", "creatinine clearance"),
    "patient.marrow_blast_pct": ("%", "marrow blasts at lymphodepletion"),
    "patient.cd7neg_blast_fraction": ("1", "CD7-negative fraction of blasts at baseline"),
    "patient.lymphocytes_per_ul": ("cells/uL", "absolute lymphocyte count before "
                                   "lymphodepletion"),
    "patient.anc_per_ul": ("cells/uL", "absolute neutrophil count before lymphodepletion"),
    "regimen.flu_mg_m2": ("mg/m2/day", "fludarabine phosphate dose per day"),
    "regimen.cy_mg_m2": ("mg/m2/day", "cyclophosphamide dose per day"),
    "regimen.flu_infusion_h": ("h", "fludarabine infusion duration"),
    "regimen.cy_infusion_h": ("h", "cyclophosphamide infusion duration"),
    "regimen.flu_renal_adjust": ("1", "renal fludarabine dose reduction on (True) or off"),
    "regimen.car_dose_per_kg": ("cells/kg", "CAR+ cells infused per kg body weight"),
    "regimen.toci_il6_threshold": ("pg/mL", "IL-6 level that triggers tocilizumab"),
    "regimen.toci_mg_kg": ("mg/kg", "tocilizumab dose"),
    "regimen.steroid_il6_threshold": ("pg/mL", "IL-6 level that triggers dexamethasone"),
    "regimen.steroid_mg": ("mg", "dexamethasone dose"),
    "regimen.reinfusion_dose_per_kg": ("cells/kg", "CAR+ cells per kg per re-infusion"),
    "regimen.hsct_day": ("day", "day of consolidative allogeneic HSCT"),
    "regimen.hsct_criterion": ("1", "who receives the HSCT"),
    "regimen.hsct_conditioning": ("1", "conditioning before the HSCT (True) or none (False)"),
}
"""Sweepable scalar fields -> (CF unit, long name). A test keeps it in step with the schema."""


@dataclass(frozen=True)
class Axis:
    """A resolved axis: where it lands, its values (grid) or range (sampled), unit, long name."""

    name: str
    kind: str  # "field", "param" or "group"
    section: str
    key: str  # field name, parameter name or "" for a group
    units: str
    long_name: str
    values: tuple = ()
    space: str = "list"
    start: float | None = None
    stop: float | None = None


def accepted_names(model_name: str = "cd7") -> list[str]:
    """Every name a sweep accepts for ``model_name`` (fields, parameters, groups)."""
    from cartsim.models import get_model

    params = [f"model.params.{p}" for p in get_model(model_name).parameters]
    return [*FIELD_UNITS, *params, *GROUPS]


def _describe_accepted(model_name: str) -> str:
    return ("a sweepable scenario field (" + ", ".join(FIELD_UNITS) + "), model.params.<name> "
            f"for a parameter of model {model_name!r}, or a config group ("
            + ", ".join(GROUPS) + ")")


def resolve_axes(axes: Sequence[SweepAxis], base: Scenario, *, key: str = "sweep.axes",
                 numeric: bool = False) -> list[Axis]:
    """Check every axis name against the scenario schema and the model; return resolved axes.

    Parameters
    ----------
    axes : the axes of a :class:`~cartsim.sweep.options.SweepSpec` (or sensitivity parameters).
    base : the base scenario (its model names the accepted parameters).
    key : config key for error messages.
    numeric : only numeric quantities are accepted (sampled sweeps, sensitivity).

    Raises
    ------
    ScenarioError
        An unknown name (the message lists what is accepted), or a non-numeric axis where
        ``numeric`` is required.
    """
    from cartsim.models import get_model

    ps = get_model(base.model.name).parameters
    out = []
    for i, ax in enumerate(axes):
        name, where = ax.name.strip(), f"{key}[{i}].name"
        if name in GROUPS:
            if numeric or ax.space != "list":
                raise ScenarioError(f"{where}={name!r} is not accepted here: a config group is "
                                    "swept over a list of option names (space=list, "
                                    "method=grid), not over a numeric range")
            res = Axis(name, "group", name, "", "1", f"{name} option (conf/{name}/)",
                       values=tuple(str(v) for v in ax.values))
        elif name.startswith("model.params."):
            pname = name[len("model.params."):]
            if pname not in ps.index:
                raise ScenarioError(f"{where}={name!r} is not accepted: {pname!r} is not a "
                                    f"parameter of model {base.model.name!r}; accepted: "
                                    + ", ".join(ps))
            p = ps[pname]
            res = Axis(name, "param", "model", pname, "1" if p.unit == "-" else p.unit,
                       p.description or pname)
        elif name in FIELD_UNITS:
            section, fld = name.split(".")
            units, long_name = FIELD_UNITS[name]
            res = Axis(name, "field", section, fld, units, long_name)
            if numeric and isinstance(getattr(getattr(base, section), fld), (str, bool)):
                raise ScenarioError(f"{where}={name!r} is not accepted here: a numeric "
                                    "quantity is needed for a sampled sweep or a sensitivity "
                                    "analysis")
        else:
            raise ScenarioError(f"{where}={name!r} is not accepted: expected "
                                + _describe_accepted(base.model.name))
        values = res.values or _grid_values(ax)
        out.append(replace(res, values=tuple(values), space=ax.space,
                           start=ax.start, stop=ax.stop))
    return out


def _grid_values(ax: SweepAxis) -> list:
    if ax.space == "list":
        return list(ax.values)
    if ax.num is None:  # a sampled range: no grid values
        return []
    if ax.space == "linspace":
        return np.linspace(ax.start, ax.stop, ax.num).tolist()
    return np.logspace(np.log10(ax.start), np.log10(ax.stop), ax.num).tolist()


def grid_points(axes: Sequence[Axis]) -> list[tuple]:
    """Every combination of the axes' values, C order (the last axis varies fastest)."""
    return list(itertools.product(*(a.values for a in axes)))


def unit_to_range(axes: Sequence[Axis], u: np.ndarray) -> np.ndarray:
    """Map points of the unit hypercube (n, d) to the axes' ranges (uniform or log-uniform)."""
    u = np.asarray(u, dtype=float)
    out = np.empty_like(u)
    for j, a in enumerate(axes):
        if a.space == "logspace":
            lo, hi = np.log10(a.start), np.log10(a.stop)
            out[:, j] = 10.0 ** (lo + (hi - lo) * u[:, j])
        else:
            out[:, j] = a.start + (a.stop - a.start) * u[:, j]
    return out


def sample_points(axes: Sequence[Axis], method: str, n: int, seed: int) -> np.ndarray:
    """``n`` points (n, d) by Latin hypercube or scrambled Sobol sequence, seeded (the design
    stream of :mod:`cartsim.randomness`)."""
    from scipy.stats import qmc

    from cartsim.randomness import design_rng

    d = len(axes)
    if method == "lhs":
        u = qmc.LatinHypercube(d=d, seed=design_rng(seed)).random(n)
    elif method == "sobol":
        import warnings

        with warnings.catch_warnings():  # n not a power of 2: documented, still usable
            warnings.simplefilter("ignore", UserWarning)
            u = qmc.Sobol(d=d, scramble=True, seed=design_rng(seed)).random(n)
    else:
        raise ValueError(f"method={method!r}: expected lhs or sobol")
    return unit_to_range(axes, u)


GroupResolver = Callable[[str, str], Any]
"""``resolver(group, option) -> section dataclass`` (e.g. ``("product", "ko") -> Product``)."""


def default_group_resolver(group: str, option: str):
    """Compose ``conf/`` with ``group=option`` and return that section (via cartsim.config)."""
    from cartsim.config import ConfigError, load_run_config

    try:
        return getattr(load_run_config([f"{group}={option}"]), group)
    except ConfigError as exc:
        raise ScenarioError(f"sweep axis {group!r}: option {option!r} is not accepted: "
                            f"{exc}") from exc


def apply_point(base: Scenario, axes: Sequence[Axis], point: Sequence,
                groups: dict[tuple[str, str], Any] | None = None) -> Scenario:
    """``base`` with the swept values of one point, validated by the Scenario's own checks.

    Group axes first (they replace whole sections), then fields and model parameters.
    ``groups`` maps ``(group, option)`` to the resolved section (see :func:`resolve_groups`).
    """
    sections: dict[str, Any] = {}
    for a, v in zip(axes, point):
        if a.kind == "group":
            sections[a.section] = groups[(a.section, str(v))]
    fields: dict[str, dict] = {}
    params: dict[str, float] = {}
    for a, v in zip(axes, point):
        if a.kind == "field":
            cur = getattr(base, a.section)
            v = _cast(cur, a.key, v)
            fields.setdefault(a.section, {})[a.key] = v
        elif a.kind == "param":
            params[a.key] = float(v)
    try:
        for section, kw in fields.items():
            sections[section] = replace(sections.get(section, getattr(base, section)), **kw)
        if params:
            sections["model"] = replace(base.model, params={**base.model.params, **params})
    except ScenarioError as exc:
        raise ScenarioError(f"sweep point {dict(zip([a.name for a in axes], point))} is not a "
                            f"valid scenario: {exc}") from exc
    return replace(base, **sections) if sections else base


def _cast(section, key: str, v):
    """The value in the field's Python type (YAML may give 1 for 1.0, numpy scalars...)."""
    cur = getattr(section, key)
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(cur, bool) or isinstance(v, bool):
        return v
    ftype = {f.name: f.type for f in dataclasses.fields(section)}[key]
    if isinstance(v, (int, float)) and "float" in str(ftype):
        return float(v)
    return v


def resolve_groups(axes: Sequence[Axis], resolver: GroupResolver | None = None) -> dict:
    """``(group, option) -> section`` for every option of every group axis."""
    resolver = resolver or default_group_resolver
    return {(a.section, v): resolver(a.section, v) for a in axes if a.kind == "group"
            for v in a.values}
