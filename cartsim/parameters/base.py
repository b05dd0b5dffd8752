"""Parameter sets: data with a name, value, unit, bounds and source for every entry.

A model states equations and never holds numbers; the numbers live here. A
``ParameterSet`` is an ordered, immutable collection of ``Parameter`` records;
its order defines the layout of the parameter vector handed to compiled
kernels (``ParameterSet.index``), built once in Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from cartsim.scenario import ScenarioError


class ParameterError(ScenarioError):
    """An unknown parameter name or a value outside a parameter's bounds (a
    :class:`~cartsim.scenario.ScenarioError`: one error class for every bad input)."""


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    Attributes
    ----------
    name : identifier used in configs (``model.params.NAME=...``) and fits.
    value : default value, in ``unit``.
    unit : physical unit ("1/day", "cells", "pg/mL", "-" for dimensionless).
    lower, upper : admissible bounds (inclusive), used for validation and fitting.
    source : a citation (author year, journal) or "assumption: <why>".
    description : one line saying what the parameter is.
    """

    name: str
    value: float
    unit: str
    lower: float
    upper: float
    source: str
    description: str = ""

    def __post_init__(self) -> None:
        if not self.unit:
            raise ParameterError(f"parameter {self.name!r} has no unit")
        if not self.source:
            raise ParameterError(f"parameter {self.name!r} has no source")
        if not (self.lower <= self.value <= self.upper) or not math.isfinite(self.value):
            raise ParameterError(
                f"parameter {self.name!r} default {self.value} outside [{self.lower}, {self.upper}]"
            )


class ParameterSet(Mapping[str, Parameter]):
    """Ordered collection of parameters; maps name -> ``Parameter``."""

    def __init__(self, params: Iterable[Parameter], name: str = "") -> None:
        self.name = name
        self._params: dict[str, Parameter] = {}
        for p in params:
            if p.name in self._params:
                raise ParameterError(f"duplicate parameter {p.name!r} in set {name!r}")
            self._params[p.name] = p
        self.index: dict[str, int] = {k: i for i, k in enumerate(self._params)}
        # built once: a model builds one problem per patient from these (issue 18 item 3)
        self._defaults = np.array([p.value for p in self._params.values()], dtype=np.float64)
        self._value_map = MappingProxyType({k: p.value for k, p in self._params.items()})

    def __getitem__(self, key: str) -> Parameter:
        try:
            return self._params[key]
        except KeyError:
            raise ParameterError(
                f"unknown parameter {key!r} for {self.name or 'this model'}; accepted: "
                + ", ".join(self._params)
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._params

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def values(self) -> np.ndarray:  # type: ignore[override]
        """Default values as a float64 vector in kernel order (a new array)."""
        return self._defaults.copy()

    def value_map(self) -> Mapping[str, float]:
        """Default values by name (read-only; shared, not copied)."""
        return self._value_map

    def _checked(self, key: str, value) -> float:
        p = self[key]
        v = float(value)
        if not math.isfinite(v) or not (p.lower <= v <= p.upper):
            raise ParameterError(
                f"model.params.{key}={v!r} is not accepted: expected a finite number in "
                f"[{p.lower}, {p.upper}] {p.unit}"
            )
        return v

    def with_values(self, overrides: Mapping[str, float]) -> ParameterSet:
        """A copy with new values.

        Unknown names or out-of-bounds values raise ``ParameterError``.
        """
        new = dict(self._params)
        for k, v in overrides.items():
            new[k] = replace(self[k], value=self._checked(k, v))
        return ParameterSet(new.values(), name=self.name)

    def vector(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        """Kernel parameter vector with ``overrides`` applied (checked as by
        :meth:`with_values`, without building a new set)."""
        v = self._defaults.copy()
        for k, x in (overrides or {}).items():
            x = self._checked(k, x)  # an unknown name raises here
            v[self.index[k]] = x
        return v

    def table(self) -> str:
        """Markdown table of the set (name, value, unit, bounds, source)."""
        rows = ["| name | value | unit | bounds | source |", "|---|---|---|---|---|"]
        for p in self._params.values():
            rows.append(
                f"| {p.name} | {p.value:g} | {p.unit} | [{p.lower:g}, {p.upper:g}] | {p.source} |"
            )
        return "\n".join(rows)
