"""Options of ``cartsim task=sweep`` (``conf/sweep/``) and ``task=sensitivity``.

``task=sensitivity`` reads ``conf/sensitivity/``.

These dataclasses are Hydra structured configs (plain types, lists, nested
dataclasses) and plain objects a notebook builds by keyword::

    SweepSpec(axes=[SweepAxis("regimen.car_dose_per_kg", space="logspace",
                              start=1e5, stop=1e7, num=5),
                    SweepAxis("patient.marrow_blast_pct", values=[5.0, 40.0, 80.0])])

Values are checked in ``__post_init__``; an error names the dotted key
(``sweep.axes[0].num``), the value and what is accepted. Whether an axis *name*
exists is checked when the sweep is built (:func:`cartsim.sweep.axes.resolve_axes`),
where the model and the config tree are known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cartsim.scenario import ScenarioError

__all__ = ["DEFAULT_ENDPOINTS", "METHODS", "SPACES", "SensitivityOptions", "SweepAxis",
           "SweepSpec"]

METHODS = ("grid", "lhs", "sobol")
"""Accepted ``sweep.method``: full factorial grid, Latin hypercube, scrambled Sobol sequence."""

SPACES = ("list", "linspace", "logspace")
"""Accepted ``axis.space``: explicit ``values``, or evenly spaced on a linear / log10 scale."""

DEFAULT_ENDPOINTS = ["cr_d28", "mrd_neg_cr_d28", "crs_g3plus", "icans_g3plus", "cmax_qpcr",
                     "il6_peak", "pfs_12m", "relapse_cd7neg"]
"""Endpoints a sweep keeps unless told otherwise (see :mod:`cartsim.sweep.endpoints`)."""


def _fail(key: str, value: Any, accepted: str) -> ScenarioError:
    return ScenarioError(f"{key}={value!r} is not accepted: expected {accepted}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _positive_int(key: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(key, value, f"an integer >= {minimum}")


@dataclass
class SweepAxis:
    """One swept quantity.

    Attributes
    ----------
    name : what is varied: a dotted scenario field (``regimen.car_dose_per_kg``,
        ``patient.marrow_blast_pct``, ``product.residual_cd7``), a model parameter
        (``model.params.k_kill``) or a config group whose options are swept
        (``product``, ``disease``, ``regimen``: values are option names of ``conf/<group>/``).
    values : the values of a ``list`` axis, in the field's unit (numbers, booleans, or
        option names for a group axis). Grid sweeps only.
    space : ``list`` (use ``values``), ``linspace`` or ``logspace`` (``num`` values evenly
        spaced from ``start`` to ``stop`` on a linear or log10 scale). For ``lhs`` and
        ``sobol`` sweeps and for sensitivity analysis the axis is a range: ``linspace``
        samples uniformly in ``[start, stop]``, ``logspace`` log-uniformly.
    start, stop : ends of the range, in the field's unit (``logspace``: both > 0).
    num : number of grid values (``linspace``/``logspace`` grid axes, >= 1).
    """

    name: str = ""
    values: list[Any] | None = None
    space: str = "list"
    start: float | None = None
    stop: float | None = None
    num: int | None = None

    def check(self, key: str, sampled: bool) -> None:
        """Raise :class:`~cartsim.scenario.ScenarioError` naming ``key.<field>`` if invalid.

        ``sampled``: the axis is a range to sample (LHS/Sobol/sensitivity), not a grid axis.
        """
        if not isinstance(self.name, str) or not self.name.strip():
            raise _fail(f"{key}.name", self.name, "a dotted config path such as "
                        "regimen.car_dose_per_kg, model.params.k_kill, or a group name")
        if self.space not in SPACES:
            raise _fail(f"{key}.space", self.space, "one of " + ", ".join(SPACES))
        if self.space == "list":
            if sampled:
                raise _fail(f"{key}.space", self.space, "linspace or logspace (a range with "
                            "start and stop) for a sampled sweep or a sensitivity analysis")
            if not self.values:
                raise _fail(f"{key}.values", self.values, "a non-empty list of values")
            for i, v in enumerate(self.values):
                if not (_number(v) or isinstance(v, (str, bool))):
                    raise _fail(f"{key}.values[{i}]", v, "a finite number, a boolean or an "
                                "option name")
            if len({repr(v) for v in self.values}) != len(self.values):
                raise _fail(f"{key}.values", self.values, "values without repeats")
            for name in ("start", "stop", "num"):
                if getattr(self, name) is not None:
                    raise _fail(f"{key}.{name}", getattr(self, name),
                                "null with space=list (the values are listed)")
            return
        if self.values is not None:
            raise _fail(f"{key}.values", self.values, f"null with space={self.space} "
                        "(values come from start, stop and num)")
        for name in ("start", "stop"):
            v = getattr(self, name)
            if not _number(v):
                raise _fail(f"{key}.{name}", v, "a finite number")
            if self.space == "logspace" and v <= 0:
                raise _fail(f"{key}.{name}", v, "a number > 0 with space=logspace")
        if sampled:
            if not self.stop > self.start:
                raise _fail(f"{key}.stop", self.stop, f"a number > start ({self.start}) "
                            "for a sampled range")
            if self.num is not None:
                raise _fail(f"{key}.num", self.num, "null for a sampled sweep (the number "
                            "of points is sweep.n_samples)")
        else:
            _positive_int(f"{key}.num", self.num)
            if self.num > 1 and self.start == self.stop:
                raise _fail(f"{key}.stop", self.stop, f"a number other than start "
                            f"({self.start}) when num > 1")


@dataclass
class SweepSpec:
    """What ``cartsim task=sweep`` varies and keeps.

    The sweep runs in one job as compiled, parallel batches of ``chunk_size``
    patients; each completed chunk is written atomically so that re-running the
    same command resumes (see :func:`cartsim.sweep.run_sweep`).

    Attributes
    ----------
    name : label of the sweep (in the result's attributes and file names).
    axes : the swept quantities (:class:`SweepAxis`); none = one point (the base scenario).
    method : ``grid`` (every combination of the axes' values; one dim per axis),
        ``lhs`` (Latin hypercube) or ``sobol`` (scrambled Sobol sequence) over the axes'
        ranges, ``n_samples`` points along a ``sample`` dim.
    n_samples : number of sampled points (``lhs``/``sobol``; must be 0 for ``grid``).
        ``sobol`` keeps its balance properties for powers of 2.
    population_n : virtual patients per point, drawn from ``population`` (common random
        numbers: the same draws at every point); 0 = the single scenario per point.
    endpoints : endpoints kept per point: names of :func:`cartsim.endpoints` variables or the
        derived ones of :data:`cartsim.sweep.endpoints.DERIVED`.
    chunk_size : patients integrated and reduced to endpoints at a time (bounds memory;
        also the unit of resumption). A chunk holds whole points.
    resume : skip chunks already written by an earlier run of the same sweep.
    resume_dir : directory of the chunk files (relative to the launch directory);
        null = ``<output dir>/sweep_chunks``. Set it to resume across invocations.
    save_trajectories : also write every chunk's trajectories (``trajectories_*.nc``).
    ci_level : confidence level of the Clopper-Pearson intervals of population
        proportions (-, in (0, 1)).
    """

    name: str = "sweep"
    axes: list[SweepAxis] = field(default_factory=list)
    method: str = "grid"
    n_samples: int = 0
    population_n: int = 0
    endpoints: list[str] = field(default_factory=lambda: list(DEFAULT_ENDPOINTS))
    chunk_size: int = 1000
    resume: bool = True
    resume_dir: str | None = None
    save_trajectories: bool = False
    ci_level: float = 0.95

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() \
                or any(c in self.name for c in "/\\"):
            raise _fail("sweep.name", self.name, "a non-empty label without slashes")
        if self.method not in METHODS:
            raise _fail("sweep.method", self.method, "one of " + ", ".join(METHODS))
        sampled = self.method != "grid"
        names = []
        for i, axis in enumerate(self.axes):
            if isinstance(axis, dict):  # a plain mapping from a notebook
                axis = self.axes[i] = SweepAxis(**axis)
            axis.check(f"sweep.axes[{i}]", sampled)
            names.append(axis.name)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise _fail("sweep.axes", dup, "each name swept once")
        if sampled:
            _positive_int("sweep.n_samples", self.n_samples)
            if not self.axes:
                raise _fail("sweep.axes", self.axes, f"at least one axis for method="
                            f"{self.method}")
        elif self.n_samples != 0:
            raise _fail("sweep.n_samples", self.n_samples, "0 for method=grid (the grid "
                        "size is the product of the axes' lengths)")
        _positive_int("sweep.population_n", self.population_n, minimum=0)
        if not self.endpoints or not all(isinstance(e, str) and e for e in self.endpoints):
            raise _fail("sweep.endpoints", self.endpoints, "a non-empty list of endpoint names")
        if len(set(self.endpoints)) != len(self.endpoints):
            raise _fail("sweep.endpoints", self.endpoints, "names without repeats")
        _positive_int("sweep.chunk_size", self.chunk_size)
        if self.resume_dir is not None and not str(self.resume_dir).strip():
            raise _fail("sweep.resume_dir", self.resume_dir, "a directory path or null")
        if not (_number(self.ci_level) and 0.0 < self.ci_level < 1.0):
            raise _fail("sweep.ci_level", self.ci_level, "a number strictly between 0 and 1")


SENSITIVITY_METHODS = ("sobol", "morris")
"""Accepted ``sensitivity.method``."""


@dataclass
class SensitivityOptions:
    """What ``cartsim task=sensitivity`` analyses (global sensitivity with SALib).

    Attributes
    ----------
    method : ``sobol`` (Saltelli sampling, variance-based first, total and optionally
        second-order indices; Saltelli 2002 Comput Phys Commun 145:280, Saltelli et al.
        2010 Comput Phys Commun 181:259) or ``morris`` (elementary effects mu*, sigma;
        Morris 1991 Technometrics 33:161, Campolongo et al. 2007 Environ Model Softw
        22:1509).
    parameters : the inputs, as ranges (:class:`SweepAxis` with ``space`` linspace =
        uniform or logspace = log-uniform, ``start``, ``stop``), any numeric name a sweep
        accepts.
    endpoints : outputs analysed (names as for ``sweep.endpoints``); booleans are
        analysed as 0/1 (with a population: as probabilities).
    n_base : Sobol: base sample size N (N (2D + 2) model runs with second order,
        N (D + 2) without; a power of 2). Morris: number of trajectories r
        (r (D + 1) runs).
    second_order : Sobol only: also estimate second-order indices.
    num_levels : Morris only: levels of the grid (an even number >= 2).
    population_n : virtual patients per sample (0 = the single scenario).
    chunk_size : patients per compiled batch.
    conf_level : confidence level of the bootstrap intervals (-).
    num_resamples : bootstrap resamples for the intervals.
    """

    method: str = "sobol"
    parameters: list[SweepAxis] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=lambda: ["cr_d28", "crs_g3plus",
                                                          "cmax_qpcr", "pfs_12m"])
    n_base: int = 64
    second_order: bool = False
    num_levels: int = 4
    population_n: int = 0
    chunk_size: int = 1000
    conf_level: float = 0.95
    num_resamples: int = 100

    def __post_init__(self) -> None:
        if self.method not in SENSITIVITY_METHODS:
            raise _fail("sensitivity.method", self.method,
                        "one of " + ", ".join(SENSITIVITY_METHODS))
        names = []
        for i, axis in enumerate(self.parameters):
            if isinstance(axis, dict):
                axis = self.parameters[i] = SweepAxis(**axis)
            axis.check(f"sensitivity.parameters[{i}]", sampled=True)
            names.append(axis.name)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise _fail("sensitivity.parameters", dup, "each name once")
        if not self.endpoints or not all(isinstance(e, str) and e for e in self.endpoints):
            raise _fail("sensitivity.endpoints", self.endpoints,
                        "a non-empty list of endpoint names")
        _positive_int("sensitivity.n_base", self.n_base, minimum=2)
        if self.method == "sobol" and self.n_base & (self.n_base - 1):
            raise _fail("sensitivity.n_base", self.n_base, "a power of 2 for method=sobol "
                        "(Saltelli/Sobol sequence balance)")
        if isinstance(self.num_levels, bool) or not isinstance(self.num_levels, int) \
                or self.num_levels < 2 or self.num_levels % 2:
            raise _fail("sensitivity.num_levels", self.num_levels, "an even integer >= 2")
        _positive_int("sensitivity.population_n", self.population_n, minimum=0)
        _positive_int("sensitivity.chunk_size", self.chunk_size)
        if not (_number(self.conf_level) and 0.0 < self.conf_level < 1.0):
            raise _fail("sensitivity.conf_level", self.conf_level,
                        "a number strictly between 0 and 1")
        _positive_int("sensitivity.num_resamples", self.num_resamples)
